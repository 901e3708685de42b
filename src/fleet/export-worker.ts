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
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { jetstreamManager } from '@nats-io/jetstream';
import { createInbox, headers, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { openLedgerReadOnly, type Db } from '../store/schema.js';
import {
  EXPORT_TABLES,
  readExportBatch,
  readWatermarks,
  exportBacklog,
  type ExportRow,
  type Watermarks,
} from '../store/export-rows.js';
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
const state: ExportState = {
  connected: false,
  published: 0,
  backlog: 0,
  last_error: null,
  last_publish_ms: null,
};
let stopping = false;
let nc: NatsConnection | null = null;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const post = (msg: unknown) => parentPort?.postMessage(msg);
const encoder = new TextEncoder();
const gatewayJson = JSON.stringify(data.gatewayId);

parentPort?.on('message', (m: { type: string }) => {
  if (m.type === 'stop') {
    stopping = true;
    void nc?.close();
  }
});

/** How long a round waits for the stream's acknowledgements before it is retried. */
export const ACK_TIMEOUT_MS = 5_000;

/**
 * Publishes to JetStream asynchronously: every message carries a reply subject under one inbox
 * subscription, and the stream's acknowledgement (PubAck JSON) settles it by index. One subscription
 * and a counter per round instead of a request (promise, timer, reply routing) per message, which
 * cost three times the CPU per row in bench/fleet.ts's export part.
 */
class AsyncPublisher {
  private readonly prefix = createInbox();
  private round = 0;
  /** Rounds waiting for acknowledgements: round → settle(index, ok, duplicate, error). */
  private readonly open = new Map<
    number,
    (i: number, ok: boolean, duplicate: boolean, error: string | null) => void
  >();

  constructor(private readonly nc: NatsConnection) {
    nc.subscribe(`${this.prefix}.*.*`, {
      callback: (err, msg: Msg) => {
        if (err !== null) return;
        const parts = msg.subject.slice(this.prefix.length + 1).split('.');
        const settle = this.open.get(Number(parts[0]));
        if (settle === undefined) return; // a late ack of a round given up on (its rows are published again)
        // A PubAck is `{"stream":…,"seq":N[,"duplicate":true]}` or `{"error":{…}}`: read by search,
        // not JSON.parse, on this per-row path (bench/fleet.ts, export part).
        const text = msg.data.length === 0 ? '' : msg.string();
        const ok = text.includes('"seq":') && !text.includes('"error"');
        const duplicate = ok && text.includes('"duplicate":true');
        let why: string | null = null;
        if (!ok) {
          try {
            why =
              (JSON.parse(text) as { error?: { description?: string } }).error?.description ??
              'no acknowledgement';
          } catch {
            why =
              msg.headers?.description || 'not a JetStream acknowledgement (is the stream there?)';
          }
        }
        settle(Number(parts[1]), ok, duplicate, why);
      },
    });
  }

  /** Publishes `rows` now; resolves with which were acknowledged (and how many of those were new). */
  publish(rows: ExportRow[]): Promise<{ acked: boolean[]; fresh: number; error: string | null }> {
    const round = ++this.round;
    const acked = new Array<boolean>(rows.length).fill(false);
    let pending = rows.length;
    let fresh = 0;
    let error: string | null = null;
    let done!: () => void;
    const all = new Promise<void>((r) => (done = r));
    this.open.set(round, (i, ok, duplicate, err) => {
      if (i >= rows.length || acked[i] === true) return;
      if (ok) {
        acked[i] = true;
        if (!duplicate) fresh++;
      } else error ??= err;
      if (--pending === 0) done();
    });
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]!;
      const h = headers();
      h.set('Nats-Msg-Id', messageId(r.kind, r.event_id, r.rule_id));
      this.nc.publish(
        eventSubject(data.gatewayId, r.session_id, r.family),
        encoder.encode(`{"kind":"${r.kind}","gateway_id":${gatewayJson},${r.body.slice(1)}`),
        {
          reply: `${this.prefix}.${round}.${i}`,
          headers: h,
        },
      );
    }
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      all,
      new Promise<void>((r) => (timer = setTimeout(r, ACK_TIMEOUT_MS))),
    ]).then(() => {
      clearTimeout(timer);
      this.open.delete(round);
      if (pending > 0)
        error ??= `${pending} of ${rows.length} rows were not acknowledged within ${ACK_TIMEOUT_MS} ms`;
      return { acked, fresh, error };
    });
  }
}

/** Per table, the last seq of the acknowledged prefix of `rows`. */
function advance(rows: ExportRow[], acked: boolean[], marks: Watermarks): Watermarks {
  const next = { ...marks };
  const blocked = new Set<string>();
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    if (!acked[i]) blocked.add(r.table);
    else if (!blocked.has(r.table)) next[r.table] = r.seq;
  }
  return next;
}

function changed(a: Watermarks, b: Watermarks): boolean {
  return EXPORT_TABLES.some((t) => a[t] !== b[t]);
}

/** The exporter thread's nice value: on Linux a thread's own, so the kernel runs enforcement first. */
export const EXPORT_NICE = 19;

async function main(): Promise<void> {
  try {
    // pid 0 is the calling thread on Linux (nice is per thread there).
    setPriority(0, EXPORT_NICE);
  } catch {
    // not permitted or not supported: export at the process's priority
  }
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
  const publisher = new AsyncPublisher(nc);
  let streamReady = false;
  let lastSample = 0;
  // Two rounds in flight: the next batch is read and published while the stream acknowledges the
  // previous one. `readMarks` is how far has been sent, `marks` how far has been acknowledged.
  let readMarks = marks;
  type Round = { rows: ExportRow[]; result: ReturnType<AsyncPublisher['publish']> };
  let inflight = null as Round | null;
  const sample = (force: boolean) => {
    if (!force && Date.now() - lastSample < 1_000) return;
    lastSample = Date.now();
    state.backlog = exportBacklog(db, marks);
    post({ type: 'state', state });
  };
  while (!stopping) {
    try {
      if (!streamReady) {
        await ensureStream(await jetstreamManager(nc), {
          name: data.stream,
          replicas: data.replicas,
          duplicateWindowS: data.duplicateWindowS,
        });
        streamReady = true;
      }
      if (!state.connected) {
        // Nothing is published into the client's reconnect buffer; the backlog waits in session.db.
        await sleep(data.pollMs);
        continue;
      }
      const rows = readExportBatch(db, readMarks, data.batch);
      let started = null as Round | null;
      if (rows.length > 0) {
        started = { rows, result: publisher.publish(rows) };
        readMarks = { ...readMarks };
        for (const r of rows) readMarks[r.table] = r.seq;
      }
      if (inflight !== null) {
        const prev = inflight;
        inflight = null;
        const out = await prev.result;
        state.published += out.fresh;
        const next = advance(prev.rows, out.acked, marks);
        if (changed(next, marks)) {
          marks = next;
          state.last_publish_ms = Date.now();
          post({ type: 'watermarks', marks });
        }
        if (out.error !== null) {
          if (started !== null) await started.result.catch(() => {});
          throw new Error(out.error);
        }
        state.last_error = null;
      }
      inflight = started;
      if (inflight === null) {
        sample(false);
        await sleep(data.pollMs);
      } else sample(false);
    } catch (err) {
      if (stopping) break;
      inflight = null;
      readMarks = marks;
      state.last_error = (err as Error).message;
      sample(true);
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
