/**
 * The main thread's side of the exporter: starts the worker (export-worker.ts), stores the
 * watermarks it reports through the ledger writer (the one writer of session.db) and keeps the
 * worker's last reported state for /v1/health and `fleet status`.
 */
import { Worker } from 'node:worker_threads';
import type { ExportState, ExportWorkerData } from './export-worker.js';

export interface WatermarkSink {
  setWatermarks(marks: Record<string, number>): void;
}

export class FleetExporter {
  private readonly worker: Worker;
  private state_: ExportState = {
    connected: false,
    published: 0,
    backlog: 0,
    last_error: null,
    last_publish_ms: null,
  };
  private exited = false;

  constructor(data: ExportWorkerData, ledger: WatermarkSink, onFatal: (message: string) => void) {
    this.worker = new Worker(new URL('./export-worker.js', import.meta.url), { workerData: data });
    this.worker.unref();
    this.worker.on(
      'message',
      (m: {
        type: string;
        marks?: Record<string, number>;
        state?: ExportState;
        message?: string;
      }) => {
        if (m.type === 'watermarks' && m.marks !== undefined) ledger.setWatermarks(m.marks);
        else if (m.type === 'state' && m.state !== undefined) this.state_ = m.state;
        else if (m.type === 'fatal') onFatal(m.message ?? 'unknown');
      },
    );
    this.worker.on('error', (err) => {
      this.state_ = { ...this.state_, connected: false, last_error: err.message };
      onFatal(err.message);
    });
    this.worker.on('exit', () => (this.exited = true));
  }

  state(): ExportState {
    return { ...this.state_ };
  }

  /** Stops publishing; rows not yet acknowledged are published by the next start (same session). */
  async close(): Promise<void> {
    if (this.exited) return;
    this.worker.postMessage({ type: 'stop' });
    const done = new Promise<void>((r) => this.worker.once('exit', () => r()));
    const timer = setTimeout(() => void this.worker.terminate(), 2_000);
    await done;
    clearTimeout(timer);
  }
}
