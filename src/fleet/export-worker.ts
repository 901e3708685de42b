/**
 * The fleet exporter's worker thread: reads session.db (read-only) past the export watermarks and
 * publishes every row to the JetStream stream, at least once, with a de-duplication id; after the
 * stream acknowledges a contiguous run of a table's rows it posts the new watermark to the main
 * thread, whose ledger writer stores it. It runs on its own thread so publishing never competes
 * with enforcement for the event loop, and it only reads the ledger, so it never blocks its writer.
 *
 * Messages to the parent: {type:'watermarks', marks}, {type:'state', ...ExportState}. From the
 * parent: {type:'stop'}.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { openLedgerReadOnly, type Db } from '../store/schema.js';
import { EXPORT_TABLES, readExportBatch, readWatermarks, exportBacklog, type ExportRow, type Watermarks } from '../store/export-rows.js';
import { connectForever, type NatsAuth } from './connection.js';
import { eventSubject, messageId } from './names.js';
import { ensureStream } from './stream.js';

export interface ExportWorkerData {
  auth: NatsAuth;
  gatewayId: string;
  sessionDb: string;
  stream: string;
  replicas: number;
  duplicateWindowS: number;
  /** Rows read per table per round. */
  batch: number;
  /** Pause when nothing is new. */
  pollMs: number;
}

export interface ExportState {
  connected: boolean;
  published: number;
  /** Rows in session.db not yet acknowledged by the stream (sampled). */
  backlog: number;
  last_error: string | null;
  last_publish_ms: number | null;
}

const data = workerData as ExportWorkerData;
const state: ExportState = { connected: false, published: 0, backlog: 0, last_error: null, last_publish_ms: null };
let stopping = false;
let nc: NatsConnection | null = null;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const post = (msg: unknown) => parentPort?.postMessage(msg);
const encoder = new TextEncoder();

parentPort?.on('message', (m: { type: string }) => {
  if (m.type === 'stop') {
    stopping = true;
    void nc?.close();
  }
});

/** Publishes `rows`; returns, per table, the last seq of the acknowledged prefix. */
async function publish(js: JetStreamClient, rows: ExportRow[], marks: Watermarks): Promise<{ marks: Watermarks; failed: Error | null }> {
  const results = await Promise.allSettled(
    rows.map((r) =>
      js.publish(eventSubject(data.gatewayId, r.session_id, r.family), encoder.encode(JSON.stringify({ kind: r.kind, gateway_id: data.gatewayId, ...r.payload })), {
        msgID: messageId(r.kind, r.event_id, r.rule_id),
      }),
    ),
  );
  const next = { ...marks };
  const blocked = new Set<string>();
  let failed: Error | null = null;
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    const res = results[i]!;
    if (res.status === 'rejected') {
      blocked.add(r.table);
      failed ??= res.reason as Error;
      continue;
    }
    if (blocked.has(r.table)) continue;
    next[r.table] = r.seq;
    if (!res.value.duplicate) state.published++;
  }
  return { marks: next, failed };
}

function changed(a: Watermarks, b: Watermarks): boolean {
  return EXPORT_TABLES.some((t) => a[t] !== b[t]);
}

async function main(): Promise<void> {
  const db: Db = openLedgerReadOnly(data.sessionDb);
  let marks = readWatermarks(db);
  nc = await connectForever(data.auth, `celgate-export-${data.gatewayId}`);
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') state.connected = false;
      if (s.type === 'reconnect') state.connected = true;
      post({ type: 'state', state });
    }
  })();
  state.connected = true;
  const js = jetstream(nc, { timeout: 5_000 });
  let streamReady = false;
  let lastSample = 0;
  while (!stopping) {
    try {
      if (!streamReady) {
        await ensureStream(await jetstreamManager(nc), { name: data.stream, replicas: data.replicas, duplicateWindowS: data.duplicateWindowS });
        streamReady = true;
      }
      const rows = readExportBatch(db, marks, data.batch);
      if (rows.length === 0) {
        if (Date.now() - lastSample > 1_000) {
          lastSample = Date.now();
          state.backlog = 0;
          post({ type: 'state', state });
        }
        await sleep(data.pollMs);
        continue;
      }
      const out = await publish(js, rows, marks);
      if (changed(out.marks, marks)) {
        marks = out.marks;
        state.last_publish_ms = Date.now();
        post({ type: 'watermarks', marks });
      }
      if (out.failed !== null) throw out.failed;
      state.last_error = null;
      if (Date.now() - lastSample > 1_000) {
        lastSample = Date.now();
        state.backlog = exportBacklog(db, marks);
        post({ type: 'state', state });
      }
    } catch (err) {
      if (stopping) break;
      state.last_error = (err as Error).message;
      state.backlog = exportBacklog(db, marks);
      post({ type: 'state', state });
      // The rows after the watermark are published again (the stream drops duplicates by id).
      await sleep(500);
    }
  }
  db.close();
}

main().catch((err: unknown) => {
  state.last_error = (err as Error).message;
  post({ type: 'state', state });
  post({ type: 'fatal', message: (err as Error).message });
});
