/**
 * Serves the live report's data (GET /ui, /ui/data.json) from a worker thread (report-worker.ts):
 * started on the first request, one aggregation at a time (requests that arrive meanwhile share
 * it), bounded by LIVE_REPORT_TIMEOUT_MS. Owns the worker's lifetime; never touches the ledger
 * writer.
 */
import { Worker } from 'node:worker_threads';
import { CelgateError } from '../errors.js';
import type { ReportData } from '../store/report-data.js';

/** Longest the live page waits for its data before the request fails (504). */
export const LIVE_REPORT_TIMEOUT_MS = 20_000;

export class LiveReport {
  private worker: Worker | null = null;
  private nextId = 1;
  private inflight: Promise<ReportData> | null = null;
  private readonly waiting = new Map<
    number,
    { resolve: (d: ReportData) => void; reject: (e: Error) => void }
  >();

  constructor(private readonly sessionDb: string) {}

  private start(): Worker {
    if (this.worker !== null) return this.worker;
    const w = new Worker(new URL('./report-worker.js', import.meta.url), {
      workerData: { sessionDb: this.sessionDb },
    });
    w.unref();
    w.on('message', (m: { id: number; data?: ReportData; error?: string }) => {
      const p = this.waiting.get(m.id);
      if (p === undefined) return;
      this.waiting.delete(m.id);
      if (m.data !== undefined) p.resolve(m.data);
      else p.reject(new CelgateError('E_INTERNAL', `report failed: ${m.error ?? 'unknown error'}`));
    });
    const fail = (err: Error) => {
      for (const p of this.waiting.values()) p.reject(err);
      this.waiting.clear();
      this.worker = null;
    };
    w.on('error', fail);
    w.on('exit', () => fail(new CelgateError('E_INTERNAL', 'the report worker stopped')));
    this.worker = w;
    return w;
  }

  /** The current ReportData (a request already running is shared). */
  data(): Promise<ReportData> {
    if (this.inflight !== null) return this.inflight;
    const id = this.nextId++;
    const worker = this.start();
    this.inflight = new Promise<ReportData>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(
          new CelgateError('E_TIMEOUT', `the report took longer than ${LIVE_REPORT_TIMEOUT_MS} ms`),
        );
      }, LIVE_REPORT_TIMEOUT_MS);
      timer.unref();
      this.waiting.set(id, {
        resolve: (d) => (clearTimeout(timer), resolve(d)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      worker.postMessage({ id });
    }).finally(() => {
      this.inflight = null;
    });
    return this.inflight;
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    if (w !== null) await w.terminate();
  }
}
