/**
 * Reads session.db rows for export, in order, after a per-table watermark (the highest `seq`
 * already delivered). Every decision (with its rule matches and the stored event), finding and
 * protocol row becomes one `ExportRow`; the fleet exporter publishes them and hands the new
 * watermarks back to the writer (`LedgerWriter.setWatermarks`). Read-only SQL; no I/O besides the
 * connection it is given.
 */
import type { Db } from './schema.js';

export const EXPORT_TABLES = [
  'event_rows',
  'detection_findings',
  'net_events',
  'dns_events',
  'mcp_calls',
  'exec_events',
] as const;
export type ExportTable = (typeof EXPORT_TABLES)[number];
export type ExportKind = 'decision' | 'finding' | 'net' | 'dns' | 'mcp' | 'exec';
export type Watermarks = Record<ExportTable, number>;

const KIND: Record<ExportTable, ExportKind> = {
  event_rows: 'decision',
  detection_findings: 'finding',
  net_events: 'net',
  dns_events: 'dns',
  mcp_calls: 'mcp',
  exec_events: 'exec',
};
/** The event family of the protocol tables (DESIGN §4). */
const FAMILY: Partial<Record<ExportTable, string>> = {
  net_events: 'http',
  dns_events: 'dns',
  mcp_calls: 'mcp',
  exec_events: 'process',
};

export interface ExportRow {
  table: ExportTable;
  seq: number;
  kind: ExportKind;
  family: string;
  session_id: string;
  event_id: string;
  /** Set for findings (part of their message id). */
  rule_id: string | null;
  /** The row as published: a JSON object of its columns, JSON columns inlined (not re-encoded). */
  body: string;
}

export function emptyWatermarks(): Watermarks {
  return {
    event_rows: 0,
    detection_findings: 0,
    net_events: 0,
    dns_events: 0,
    mcp_calls: 0,
    exec_events: 0,
  };
}

/** The stored watermarks (schema v3's `fleet_watermarks`); 0 for a table never exported. */
export function readWatermarks(db: Db): Watermarks {
  const marks = emptyWatermarks();
  for (const r of db.prepare('SELECT name, seq FROM fleet_watermarks').all() as {
    name: string;
    seq: number;
  }[]) {
    if ((EXPORT_TABLES as readonly string[]).includes(r.name)) marks[r.name as ExportTable] = r.seq;
  }
  return marks;
}

/** Rows each table holds past its watermark (the export backlog). */
export function exportBacklog(db: Db, marks: Watermarks): number {
  let n = 0;
  for (const t of EXPORT_TABLES)
    n += (db.prepare(`SELECT COUNT(*) AS n FROM ${t} WHERE seq > ?`).get(marks[t]) as { n: number })
      .n;
  return n;
}

/** A stored JSON column inlined as-is when it is JSON text, else encoded as a string. */
function raw(text: unknown): string {
  if (typeof text !== 'string' || text === '') return JSON.stringify(text ?? null);
  const c = text[0];
  return c === '{' || c === '[' ? text : JSON.stringify(text);
}

/**
 * The stored event with its identity facts put back (the ledger keeps them in columns; see
 * storedEventJson and readers.ts readEvents). The writer's format starts with `{"common":{`, so the
 * facts are spliced in without decoding the event; anything else is decoded and re-encoded.
 */
function eventWithIdentity(eventJson: unknown, identity: Record<string, unknown>): string {
  const head = '{"common":{';
  if (typeof eventJson === 'string' && eventJson.startsWith(head)) {
    const id = JSON.stringify(identity);
    const rest = eventJson.slice(head.length);
    return `${head}${id.slice(1, -1)}${rest.startsWith('}') ? '' : ','}${rest}`;
  }
  try {
    const e = JSON.parse(String(eventJson)) as { common?: Record<string, unknown> };
    e.common = { ...e.common, ...identity };
    return JSON.stringify(e);
  } catch {
    return JSON.stringify(eventJson);
  }
}

/**
 * Encodes a raw (array) row of a statement as a JSON object, column by column: JSON text columns
 * are inlined under a new name, `skip` columns are left out, everything else is JSON-encoded.
 * Raw rows and one string per row: about a third less CPU per row than row objects passed through
 * JSON.stringify (bench/fleet.ts, export part).
 */
class RowEncoder {
  private readonly keys: string[];
  private readonly inline: boolean[];
  private readonly keep: boolean[];
  readonly index: Record<string, number> = {};
  constructor(
    columns: readonly string[],
    inlineAs: Record<string, string> = {},
    skip: readonly string[] = [],
  ) {
    this.keys = columns.map((c, i) => {
      this.index[c] = i;
      return `${JSON.stringify(inlineAs[c] ?? c)}:`;
    });
    this.inline = columns.map((c) => inlineAs[c] !== undefined);
    this.keep = columns.map((c) => !skip.includes(c));
  }
  encode(row: readonly unknown[], extra = ''): string {
    let out = '{';
    let first = true;
    for (let i = 0; i < row.length; i++) {
      if (!this.keep[i]) continue;
      out += `${first ? '' : ','}${this.keys[i]}${this.inline[i] ? raw(row[i]) : JSON.stringify(row[i] ?? null)}`;
      first = false;
    }
    return `${out}${extra === '' ? '' : `${first ? '' : ','}${extra}`}}`;
  }
}

interface Encoded {
  stmt: import('better-sqlite3').Statement;
  enc: RowEncoder;
}

interface Statements {
  decisions: Encoded;
  matches: import('better-sqlite3').Statement;
  findings: Encoded;
  protocol: Map<ExportTable, Encoded>;
}

const prepared = new WeakMap<Db, Statements>();

function encoded(
  db: Db,
  sql: string,
  inlineAs: Record<string, string> = {},
  skip: readonly string[] = [],
): Encoded {
  const stmt = db.prepare(sql).raw(true);
  return {
    stmt,
    enc: new RowEncoder(
      stmt.columns().map((c) => c.name),
      inlineAs,
      skip,
    ),
  };
}

function statements(db: Db): Statements {
  let s = prepared.get(db);
  if (s === undefined) {
    s = {
      decisions: encoded(
        db,
        `SELECT e.seq, e.event_id, c.session_id, e.timestamp_ms, c.event_type, c.family, c.process_name, c.decision, c.rule_id,
           c.reason, c.mode, c.generation, e.eval_ns, e.match_count, e.errors_json, e.event_json
         FROM event_rows e CROSS JOIN event_contexts c ON c.ref = e.context WHERE e.seq > ? ORDER BY e.seq LIMIT ?`,
        { errors_json: 'errors' },
        ['event_json'],
      ),
      matches: db.prepare(
        `SELECT m.event_seq, k.rule_id, k.pack_id, k.kind, k.action, k.mode, k.severity, m.decisive
         FROM match_rows m JOIN match_kinds k ON k.ref = m.kind_ref WHERE m.event_seq BETWEEN ? AND ? ORDER BY m.event_seq, m.idx`,
      ),
      findings: encoded(
        db,
        `SELECT f.*, c.family, c.session_id FROM detection_findings f
           JOIN event_rows e ON e.seq = f.event_seq JOIN event_contexts c ON c.ref = e.context
         WHERE f.seq > ? ORDER BY f.seq LIMIT ?`,
        { tags_json: 'tags', matched_fields_json: 'matched_fields' },
      ),
      protocol: new Map(
        (['net_events', 'dns_events', 'mcp_calls', 'exec_events'] as const).map((t) => [
          t,
          encoded(db, `SELECT * FROM ${t} WHERE seq > ? ORDER BY seq LIMIT ?`, {
            answers_json: 'answers',
            argv_json: 'argv',
          }),
        ]),
      ),
    };
    prepared.set(db, s);
  }
  return s;
}

/** Up to `limit` rows per table past `marks`, each table in `seq` order. */
export function readExportBatch(db: Db, marks: Watermarks, limit: number): ExportRow[] {
  const st = statements(db);
  const out: ExportRow[] = [];

  const d = st.decisions;
  const di = d.enc.index;
  const decisions = d.stmt.all(marks.event_rows, limit) as unknown[][];
  if (decisions.length > 0) {
    const first = decisions[0]![di.seq!] as number;
    const last = decisions[decisions.length - 1]![di.seq!] as number;
    const bySeq = new Map<number, Record<string, unknown>[]>();
    for (const m of st.matches.all(first, last) as Record<string, unknown>[]) {
      const seq = m.event_seq as number;
      let list = bySeq.get(seq);
      if (list === undefined) bySeq.set(seq, (list = []));
      list.push({
        rule_id: m.rule_id,
        pack_id: m.pack_id,
        kind: m.kind,
        action: m.action,
        mode: m.mode,
        severity: m.severity,
        decisive: m.decisive === 1,
      });
    }
    for (const row of decisions) {
      const seq = row[di.seq!] as number;
      const matches = bySeq.get(seq);
      const identity = {
        event_id: row[di.event_id!],
        event_type: row[di.event_type!],
        family: row[di.family!],
        session_id: row[di.session_id!],
        process_name: row[di.process_name!],
        timestamp_ms: row[di.timestamp_ms!],
      };
      out.push({
        table: 'event_rows',
        seq,
        kind: 'decision',
        family: identity.family as string,
        session_id: identity.session_id as string,
        event_id: identity.event_id as string,
        rule_id: (row[di.rule_id!] as string | null) ?? null,
        body: d.enc.encode(
          row,
          `"matches":${matches === undefined ? '[]' : JSON.stringify(matches)},"event":${eventWithIdentity(row[di.event_json!], identity)}`,
        ),
      });
    }
  }

  const f = st.findings;
  const fi = f.enc.index;
  for (const row of f.stmt.all(marks.detection_findings, limit) as unknown[][]) {
    out.push({
      table: 'detection_findings',
      seq: row[fi.seq!] as number,
      kind: 'finding',
      family: row[fi.family!] as string,
      session_id: row[fi.session_id!] as string,
      event_id: row[fi.event_id!] as string,
      rule_id: row[fi.rule_id!] as string,
      body: f.enc.encode(row),
    });
  }

  for (const [table, p] of st.protocol) {
    const pi = p.enc.index;
    for (const row of p.stmt.all(marks[table], limit) as unknown[][]) {
      out.push({
        table,
        seq: row[pi.seq!] as number,
        kind: KIND[table],
        family: FAMILY[table]!,
        session_id: row[pi.session_id!] as string,
        event_id: row[pi.event_id!] as string,
        rule_id: null,
        body: p.enc.encode(row),
      });
    }
  }
  return out;
}
