/**
 * The single writer of a session.db, implementing EventSink. `decision/net/dns/mcp/exec` only push
 * a reference onto an in-memory queue (no serialisation, no I/O on the request path); a timer
 * flushes the queue in one transaction at least every FLUSH_INTERVAL_MS, and `close()` flushes the
 * rest. Rows record the decision that was enforced; nothing here evaluates rules. An event is a
 * narrow `event_rows` row plus `match_rows`; the facts that repeat across events are numbered once
 * into `event_contexts` / `match_kinds` (schema v2, see docs/ledger.md).
 */
import type { Decision, Finding } from '../events/decision.js';
import type { DnsRow, EventSink, ExecRow, McpCallRow, NetRow } from '../events/sink.js';
import type { SecurityEvent } from '../events/types.js';
import { CelgateError } from '../errors.js';
import { bound, redactJson, redactQuery, scrubSecrets, storedEventJson } from './redact.js';
import type Database from 'better-sqlite3';
import { statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import { openLedger, type Db } from './schema.js';
import { EVENTS_PER_STATEMENT, Interner, MATCHES_PER_STATEMENT, MultiInsert } from './batch.js';

export const FLUSH_INTERVAL_MS = 50;
/** Default free-space reserve (`ledger.min_free_bytes`): below it new requests are refused. */
export const DEFAULT_MIN_FREE_BYTES = 64 * 1024 * 1024;
/** How often free space is checked while nothing flushes (a flush checks it too). */
export const FREE_SPACE_CHECK_MS = 1000;
/** Rows written per transaction at most (a longer queue takes several transactions). */
export const MAX_BATCH = 8_192;
/** When this many items wait, the next append flushes synchronously (backpressure, never loss). */
export const MAX_QUEUE = 500_000;

/** Items are kept in fixed-size chunks of parallel slots: an append allocates nothing and never
 * copies the queue (a growing array would, and that copy would land on some request). */
export const CHUNK_SIZE = 4096;
const K_DECISION = 0;
const K_NET = 1;
const K_DNS = 2;
const K_MCP = 3;
const K_EXEC = 4;

class Chunk {
  readonly kind = new Uint8Array(CHUNK_SIZE);
  readonly a: unknown[] = new Array<unknown>(CHUNK_SIZE).fill(null);
  readonly b: unknown[] = new Array<unknown>(CHUNK_SIZE).fill(null);
  n = 0;
  clear(): void {
    this.a.fill(null, 0, this.n);
    this.b.fill(null, 0, this.n);
    this.n = 0;
  }
}

export interface LedgerStats {
  queued: number;
  written: number;
  batches: number;
  /** Batches of which not one row could be written (the file is failing). */
  failed_batches: number;
  /** Single rows SQLite refused (malformed values); the rest of their batch was written. */
  rejected_rows: number;
  last_error: string | null;
  last_flush_ms: number | null;
}

export interface SessionInfo {
  session_id: string;
  profile: string;
  celgate_version: string;
  config: unknown;
}

const POLICY =
  'event_id, session_id, timestamp_ms, decision, rule_id, reason, generation, process_name';
const P = '?, ?, ?, ?, ?, ?, ?, ?';
const policy = (r: NetRow | DnsRow | McpCallRow | ExecRow) => [
  r.event_id,
  r.session_id,
  r.timestamp_ms,
  r.decision,
  r.rule_id,
  r.reason,
  r.generation,
  r.process_name,
];

export class LedgerWriter implements EventSink {
  readonly path: string;
  private readonly db: Db;
  private chunks: Chunk[] = [new Chunk()];
  private spare: Chunk[] = [];
  private queued = 0;
  private lastBatchFailed = false;
  private nextSeq = 1;
  private readonly contexts: Interner;
  private readonly kinds: Interner;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly stats_: LedgerStats = {
    queued: 0,
    written: 0,
    batches: 0,
    failed_batches: 0,
    rejected_rows: 0,
    last_error: null,
    last_flush_ms: null,
  };
  private readonly insert: (chunks: Chunk[], marks: Record<string, number> | null) => void;
  /** Export watermarks waiting for the next flush (`setWatermarks`). */
  private watermarks: Record<string, number> | null = null;
  private readonly upsertWatermark: Database.Statement;
  /** Called when a batch or a row cannot be written (those rows are lost; the error is kept). */
  onError: (err: Error) => void = () => {};
  /** Free bytes the ledger's file system must keep (0: no reserve). */
  private readonly minFreeBytes: number;
  /** Why new decisions must be refused because of disk space, or null. */
  private lowSpace: string | null = null;
  private lastSpaceCheck = 0;
  private readonly spaceTimer: NodeJS.Timeout | null;

  constructor(path: string, session?: SessionInfo, options: { minFreeBytes?: number } = {}) {
    this.path = path;
    this.minFreeBytes = options.minFreeBytes ?? DEFAULT_MIN_FREE_BYTES;
    this.db = openLedger(path);
    this.checkSpace(true);
    this.spaceTimer =
      this.minFreeBytes > 0 ? setInterval(() => this.checkSpace(true), FREE_SPACE_CHECK_MS) : null;
    this.spaceTimer?.unref();
    if (session !== undefined) {
      this.db
        .prepare(
          'INSERT OR IGNORE INTO sessions (session_id, started_ms, profile, celgate_version, config_json) VALUES (?, ?, ?, ?, ?)',
        )
        .run(
          session.session_id,
          Date.now(),
          session.profile,
          session.celgate_version,
          JSON.stringify(session.config ?? {}),
        );
    }
    // The writer owns the file, so it numbers events itself: rule_matches can reference an event's
    // seq before the multi-row INSERT that creates it has run.
    const max = (sql: string) => ((this.db.prepare(sql).get() as { m: number | null }).m ?? 0) + 1;
    this.nextSeq = max('SELECT MAX(seq) AS m FROM event_rows');
    this.contexts = new Interner(max('SELECT MAX(ref) AS m FROM event_contexts'));
    this.kinds = new Interner(max('SELECT MAX(ref) AS m FROM match_kinds'));
    const context = this.db.prepare(
      `INSERT INTO event_contexts (ref, session_id, process_name, event_type, family, decision, rule_id, reason, mode, generation)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const kind = this.db.prepare(
      'INSERT INTO match_kinds (ref, rule_id, pack_id, kind, action, mode, severity) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    const ev = new MultiInsert(
      this.db,
      'INSERT INTO event_rows (seq, event_id, timestamp_ms, context, eval_ns, match_count, errors_json, event_json)',
      8,
      EVENTS_PER_STATEMENT,
    );
    const match = new MultiInsert(
      this.db,
      'INSERT INTO match_rows (event_seq, idx, kind_ref, decisive)',
      4,
      MATCHES_PER_STATEMENT,
      // match_rows reference event_rows (foreign keys are on): write the events still buffered first.
      () => ev.drain(),
    );
    const finding = this.db.prepare(
      `INSERT INTO detection_findings (event_seq, event_id, timestamp_ms, rule_id, pack_id, severity, confidence, title, tags_json,
       matched_fields_json, correlation_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const approval = this.db.prepare(
      `INSERT INTO approvals (event_seq, event_id, timestamp_ms, approval_id, rule_id, protocol, target, answer, answered_by,
       waited_ms, remember) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const net = this.db.prepare(
      `INSERT INTO net_events (${POLICY}, scheme, method, host, port, path, query, sni, host_header_mismatch, status, bytes_in, bytes_out,
       duration_ms, error) VALUES (${P}, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const dns = this.db.prepare(
      `INSERT INTO dns_events (${POLICY}, qname, qtype, transport, rcode, answers_json, upstream_ms, cached) VALUES (${P}, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const mcp = this.db.prepare(
      `INSERT INTO mcp_calls (${POLICY}, direction, server_id, method, tool_name, request_id, args_digest, args_preview, is_error, duration_ms, transport)
       VALUES (${P}, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const exec = this.db.prepare(
      `INSERT INTO exec_events (${POLICY}, executable, argv_json, command, cwd, command_class, exit_code, duration_ms)
       VALUES (${P}, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.upsertWatermark = this.db.prepare(
      'INSERT INTO fleet_watermarks (name, seq, updated_ms) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET seq = excluded.seq, updated_ms = excluded.updated_ms',
    );
    this.insert = this.db.transaction((chunks: Chunk[], marks: Record<string, number> | null) => {
      ev.reset();
      match.reset();
      const findings: [number, number, Finding][] = [];
      const approvals: [number, SecurityEvent, Decision][] = [];
      for (const chunk of chunks) {
        for (let i = 0; i < chunk.n; i++) {
          switch (chunk.kind[i]) {
            case K_DECISION: {
              const e = chunk.a[i] as SecurityEvent;
              const d = chunk.b[i] as Decision;
              const c = e.common;
              const seq = this.nextSeq++;
              const reason = bound(d.reason, 1024);
              const ctx = this.contexts.ref(
                [
                  d.rule_id,
                  reason,
                  d.action,
                  d.mode,
                  d.generation,
                  c.event_type,
                  c.family,
                  c.process_name,
                  c.session_id,
                ],
                (ref) =>
                  context.run(
                    ref,
                    c.session_id,
                    c.process_name,
                    c.event_type,
                    c.family,
                    d.action,
                    d.rule_id,
                    reason,
                    d.mode,
                    d.generation,
                  ),
              );
              ev.args.push(
                seq,
                c.event_id,
                c.timestamp_ms,
                ctx,
                Math.round(d.eval_ns),
                d.matches.length,
                d.errors.length === 0 ? '[]' : JSON.stringify(d.errors),
                storedEventJson(e),
              );
              ev.row();
              for (let j = 0; j < d.matches.length; j++) {
                const m = d.matches[j]!;
                const ref = this.kinds.ref(
                  [m.rule_id, m.pack_id, m.kind, m.action, m.mode, m.severity],
                  (r) => kind.run(r, m.rule_id, m.pack_id, m.kind, m.action, m.mode, m.severity),
                );
                match.args.push(seq, j, ref, m.decisive ? 1 : 0);
                match.row();
              }
              // Findings reference their event_rows row, which the multi-row insert may not
              // have written yet: insert them after the drain below.
              for (const f of d.findings) findings.push([seq, c.timestamp_ms, f]);
              if (d.approval !== undefined) approvals.push([seq, e, d]);
              break;
            }
            case K_NET: {
              const r = chunk.a[i] as NetRow;
              net.run(
                ...policy(r),
                r.scheme,
                r.method,
                bound(r.host, 512),
                r.port,
                bound(r.path),
                redactQuery(r.query),
                bound(r.sni, 512),
                bound(r.host_header_mismatch, 512),
                r.status,
                r.bytes_in,
                r.bytes_out,
                r.duration_ms,
                r.error,
              );
              break;
            }
            case K_DNS: {
              const r = chunk.a[i] as DnsRow;
              dns.run(
                ...policy(r),
                bound(r.qname, 512),
                r.qtype,
                r.transport,
                r.rcode,
                JSON.stringify(r.answers.slice(0, 64)),
                r.upstream_ms,
                r.cached ? 1 : 0,
              );
              break;
            }
            case K_MCP: {
              const r = chunk.a[i] as McpCallRow;
              mcp.run(
                ...policy(r),
                r.direction,
                r.server_id,
                r.method,
                r.tool_name,
                r.request_id,
                r.args_digest,
                scrubSecrets(bound(r.args_preview, 1024)),
                r.is_error ? 1 : 0,
                r.duration_ms,
                r.transport ?? 'vsock',
              );
              break;
            }
            case K_EXEC: {
              const r = chunk.a[i] as ExecRow;
              exec.run(
                ...policy(r),
                bound(r.executable, 1024),
                JSON.stringify(redactJson(r.argv)),
                scrubSecrets(bound(r.command)),
                bound(r.cwd, 1024),
                r.command_class,
                r.exit_code,
                r.duration_ms,
              );
              break;
            }
          }
        }
      }
      ev.drain();
      match.drain();
      for (const [seq, ts, f] of findings) {
        finding.run(
          seq,
          f.event_id,
          ts,
          f.rule_id,
          f.pack_id,
          f.severity,
          f.confidence,
          f.title,
          JSON.stringify(f.tags),
          JSON.stringify(f.matched_fields),
          f.correlation === undefined ? null : JSON.stringify(f.correlation),
        );
      }
      for (const [seq, e, d] of approvals) {
        const a = d.approval!;
        approval.run(
          seq,
          e.common.event_id,
          e.common.timestamp_ms,
          a.id,
          d.rule_id,
          a.protocol,
          bound(a.target, 1024),
          a.answer,
          a.by,
          a.waited_ms,
          a.remember,
        );
      }
      if (marks !== null) {
        const now = Date.now();
        for (const [name, seq] of Object.entries(marks)) this.upsertWatermark.run(name, seq, now);
      }
    });
  }

  decision(event: SecurityEvent, decision: Decision): void {
    this.push(K_DECISION, event, decision);
  }
  net(row: NetRow): void {
    this.push(K_NET, row, null);
  }
  dns(row: DnsRow): void {
    this.push(K_DNS, row, null);
  }
  mcp(row: McpCallRow): void {
    this.push(K_MCP, row, null);
  }
  exec(row: ExecRow): void {
    this.push(K_EXEC, row, null);
  }

  private push(kind: number, a: unknown, b: unknown): void {
    if (this.closed) throw new CelgateError('E_LEDGER', 'the session ledger is closed');
    let c = this.chunks[this.chunks.length - 1]!;
    if (c.n === CHUNK_SIZE) {
      c = this.spare.pop() ?? new Chunk();
      this.chunks.push(c);
    }
    c.kind[c.n] = kind;
    c.a[c.n] = a;
    c.b[c.n] = b;
    c.n++;
    this.queued++;
    if (this.queued >= MAX_QUEUE) this.flush();
    else if (this.timer === null) this.timer = setTimeout(this.onTimer, FLUSH_INTERVAL_MS);
  }

  /**
   * Records how far each table has been exported (src/fleet). Kept in memory and written with the
   * next flush of rows (or at close), so the ledger stays the one writer of session.db and no
   * transaction is added for it; a newer call replaces an older one. A watermark lost in a crash
   * only means those rows are published again, and the stream drops them as duplicates.
   */
  setWatermarks(marks: Record<string, number>): void {
    if (this.closed) return;
    this.watermarks = { ...(this.watermarks ?? {}), ...marks };
  }

  private writeWatermarks(): void {
    const marks = this.watermarks;
    if (marks === null) return;
    this.watermarks = null;
    const now = Date.now();
    try {
      this.db.transaction(() => {
        for (const [name, seq] of Object.entries(marks)) this.upsertWatermark.run(name, seq, now);
      })();
    } catch (err) {
      // Not a ledger row: a lost watermark only means those rows are published again (and
      // de-duplicated by the stream). Keep it for the next flush.
      this.watermarks = { ...marks, ...(this.watermarks ?? {}) };
      this.stats_.last_error = (err as Error).message;
    }
  }

  private readonly onTimer = (): void => {
    this.timer = null;
    this.flush();
  };

  /** Writes every queued item now, in transactions of about MAX_BATCH items. */
  flush(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.checkSpace();
    if (this.queued === 0) return;
    const pending = this.chunks;
    this.chunks = [this.spare.pop() ?? new Chunk()];
    this.queued = 0;
    const perBatch = Math.max(1, Math.floor(MAX_BATCH / CHUNK_SIZE));
    for (let i = 0; i < pending.length; i += perBatch) {
      const batch = pending.slice(i, i + perBatch);
      const rows = batch.reduce((n, c) => n + c.n, 0);
      const seqBefore = this.nextSeq;
      const ctxBefore = this.contexts.next;
      const kindBefore = this.kinds.next;
      const marks = i === 0 ? this.watermarks : null;
      try {
        this.insert(batch, marks);
        if (marks !== null && this.watermarks === marks) this.watermarks = null;
        this.lastBatchFailed = false;
        this.stats_.written += rows;
        this.stats_.batches++;
        this.stats_.last_flush_ms = Date.now();
      } catch (err) {
        // The transaction rolled back: reuse its numbers and forget the contexts it had stored.
        this.nextSeq = seqBefore;
        this.contexts.forget(ctxBefore);
        this.kinds.forget(kindBefore);
        // One malformed row must not cost the whole batch: write the items one by one and drop only
        // the rows SQLite refuses. If none can be written the file itself is failing.
        const retry = this.writeOneByOne(batch);
        this.stats_.written += retry.written;
        this.stats_.rejected_rows += retry.rejected;
        this.lastBatchFailed = retry.written === 0;
        if (this.lastBatchFailed) this.stats_.failed_batches++;
        this.stats_.last_error = (retry.error ?? (err as Error)).message;
        this.onError(retry.error ?? (err as Error));
      }
      for (const c of batch) {
        c.clear();
        if (this.spare.length < 8) this.spare.push(c);
      }
    }
  }

  private writeOneByOne(batch: Chunk[]): {
    written: number;
    rejected: number;
    error: Error | null;
  } {
    const one = new Chunk();
    let written = 0;
    let rejected = 0;
    let error: Error | null = null;
    for (const c of batch) {
      for (let i = 0; i < c.n; i++) {
        one.kind[0] = c.kind[i]!;
        one.a[0] = c.a[i];
        one.b[0] = c.b[i];
        one.n = 1;
        const seq = this.nextSeq;
        const ctx = this.contexts.next;
        const kind = this.kinds.next;
        try {
          this.insert([one], null);
          written++;
        } catch (err) {
          this.nextSeq = seq;
          this.contexts.forget(ctx);
          this.kinds.forget(kind);
          rejected++;
          error = err as Error;
        }
      }
    }
    one.clear();
    return { written, rejected, error };
  }

  /**
   * Checks the free space of the ledger's file system (at most every 100 ms unless forced): below
   * `minFreeBytes` new decisions are refused, so the rows of what is let through still fit.
   */
  private checkSpace(force = false): void {
    if (this.minFreeBytes <= 0) return;
    const now = performance.now();
    if (!force && now - this.lastSpaceCheck < 100) return;
    this.lastSpaceCheck = now;
    try {
      const s = statfsSync(dirname(this.path));
      const free = s.bavail * s.bsize;
      this.lowSpace =
        free < this.minFreeBytes
          ? `only ${Math.floor(free / 1048576)} MiB free where the ledger is, below ledger.min_free_bytes (${Math.floor(this.minFreeBytes / 1048576)} MiB)`
          : null;
    } catch (err) {
      this.lowSpace = `cannot check free space: ${(err as Error).message}`;
    }
  }

  /** Why decisions cannot be recorded now (closed, writes failing, disk below the reserve), or null. */
  unavailableReason(): string | null {
    if (this.closed) return 'the session ledger is closed';
    if (this.lastBatchFailed)
      return `writes to session.db are failing: ${this.stats_.last_error ?? 'unknown error'}`;
    return this.lowSpace;
  }

  /** False once closed, while the most recent batch failed, or while free space is below the reserve. */
  available(): boolean {
    return this.unavailableReason() === null;
  }

  stats(): LedgerStats {
    return { ...this.stats_, queued: this.queued };
  }

  /** Flushes, marks the session ended and closes the file. Further appends throw E_LEDGER. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.writeWatermarks();
    this.closed = true;
    if (this.spaceTimer !== null) clearInterval(this.spaceTimer);
    try {
      this.db.prepare('UPDATE sessions SET ended_ms = ?').run(Date.now());
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } finally {
      this.db.close();
    }
  }
}
