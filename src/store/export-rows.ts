/**
 * Reads session.db rows for export, in order, after a per-table watermark (the highest `seq`
 * already delivered). Every decision (with its rule matches and the stored event), finding and
 * protocol row becomes one `ExportRow`; the fleet exporter publishes them and hands the new
 * watermarks back to the writer (`LedgerWriter.setWatermarks`). Read-only SQL; no I/O besides the
 * connection it is given.
 */
import type { Db } from './schema.js';

export const EXPORT_TABLES = ['event_rows', 'detection_findings', 'net_events', 'dns_events', 'mcp_calls', 'exec_events'] as const;
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
const FAMILY: Partial<Record<ExportTable, string>> = { net_events: 'http', dns_events: 'dns', mcp_calls: 'mcp', exec_events: 'process' };

export interface ExportRow {
  table: ExportTable;
  seq: number;
  kind: ExportKind;
  family: string;
  session_id: string;
  event_id: string;
  /** Set for findings (part of their message id). */
  rule_id: string | null;
  /** The row as published: its columns, JSON columns parsed. */
  payload: Record<string, unknown>;
}

export function emptyWatermarks(): Watermarks {
  return { event_rows: 0, detection_findings: 0, net_events: 0, dns_events: 0, mcp_calls: 0, exec_events: 0 };
}

/** The stored watermarks (schema v3's `fleet_watermarks`); 0 for a table never exported. */
export function readWatermarks(db: Db): Watermarks {
  const marks = emptyWatermarks();
  for (const r of db.prepare('SELECT name, seq FROM fleet_watermarks').all() as { name: string; seq: number }[]) {
    if ((EXPORT_TABLES as readonly string[]).includes(r.name)) marks[r.name as ExportTable] = r.seq;
  }
  return marks;
}

/** Rows each table holds past its watermark (the export backlog). */
export function exportBacklog(db: Db, marks: Watermarks): number {
  let n = 0;
  for (const t of EXPORT_TABLES) n += (db.prepare(`SELECT COUNT(*) AS n FROM ${t} WHERE seq > ?`).get(marks[t]) as { n: number }).n;
  return n;
}

const parse = (text: unknown): unknown => {
  if (typeof text !== 'string') return text;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
};

interface Statements {
  decisions: import('better-sqlite3').Statement;
  matches: import('better-sqlite3').Statement;
  findings: import('better-sqlite3').Statement;
  protocol: Map<ExportTable, import('better-sqlite3').Statement>;
}

const prepared = new WeakMap<Db, Statements>();

function statements(db: Db): Statements {
  let s = prepared.get(db);
  if (s === undefined) {
    s = {
      decisions: db.prepare(
        `SELECT e.seq, e.event_id, c.session_id, e.timestamp_ms, c.event_type, c.family, c.process_name, c.decision, c.rule_id,
           c.reason, c.mode, c.generation, e.eval_ns, e.match_count, e.errors_json, e.event_json
         FROM event_rows e CROSS JOIN event_contexts c ON c.ref = e.context WHERE e.seq > ? ORDER BY e.seq LIMIT ?`,
      ),
      matches: db.prepare(
        `SELECT m.event_seq, m.idx, k.rule_id, k.pack_id, k.kind, k.action, k.mode, k.severity, m.decisive
         FROM match_rows m JOIN match_kinds k ON k.ref = m.kind_ref WHERE m.event_seq BETWEEN ? AND ? ORDER BY m.event_seq, m.idx`,
      ),
      findings: db.prepare(
        `SELECT f.*, c.family, c.session_id FROM detection_findings f
           JOIN event_rows e ON e.seq = f.event_seq JOIN event_contexts c ON c.ref = e.context
         WHERE f.seq > ? ORDER BY f.seq LIMIT ?`,
      ),
      protocol: new Map(
        (['net_events', 'dns_events', 'mcp_calls', 'exec_events'] as const).map((t) => [t, db.prepare(`SELECT * FROM ${t} WHERE seq > ? ORDER BY seq LIMIT ?`)]),
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

  const decisions = st.decisions.all(marks.event_rows, limit) as Record<string, unknown>[];
  if (decisions.length > 0) {
    const first = decisions[0]!.seq as number;
    const last = decisions[decisions.length - 1]!.seq as number;
    const bySeq = new Map<number, Record<string, unknown>[]>();
    for (const m of st.matches.all(first, last) as Record<string, unknown>[]) {
      const seq = m.event_seq as number;
      const list = bySeq.get(seq) ?? [];
      list.push({ rule_id: m.rule_id, pack_id: m.pack_id, kind: m.kind, action: m.action, mode: m.mode, severity: m.severity, decisive: m.decisive === 1 });
      bySeq.set(seq, list);
    }
    for (const d of decisions) {
      const { errors_json, event_json, ...cols } = d;
      // The columns hold the identity facts; event_json the rest (as readers.ts readEvents joins them).
      const event = parse(event_json);
      if (event !== null && typeof event === 'object' && !Array.isArray(event)) {
        const e = event as { common?: Record<string, unknown> };
        e.common = { ...e.common, event_id: d.event_id, event_type: d.event_type, family: d.family, session_id: d.session_id, process_name: d.process_name, timestamp_ms: d.timestamp_ms };
      }
      out.push({
        table: 'event_rows',
        seq: d.seq as number,
        kind: 'decision',
        family: d.family as string,
        session_id: d.session_id as string,
        event_id: d.event_id as string,
        rule_id: (d.rule_id as string | null) ?? null,
        payload: { ...cols, errors: parse(errors_json), matches: bySeq.get(d.seq as number) ?? [], event },
      });
    }
  }

  for (const f of st.findings.all(marks.detection_findings, limit) as Record<string, unknown>[]) {
    const { tags_json, matched_fields_json, family, session_id, ...cols } = f;
    out.push({
      table: 'detection_findings',
      seq: f.seq as number,
      kind: 'finding',
      family: family as string,
      session_id: session_id as string,
      event_id: f.event_id as string,
      rule_id: f.rule_id as string,
      payload: { ...cols, session_id, family, tags: parse(tags_json), matched_fields: parse(matched_fields_json) },
    });
  }

  for (const [table, stmt] of st.protocol) {
    for (const r of stmt.all(marks[table], limit) as Record<string, unknown>[]) {
      const payload: Record<string, unknown> = { ...r };
      if (table === 'dns_events') payload.answers = parse(payload.answers_json);
      if (table === 'exec_events') payload.argv = parse(payload.argv_json);
      delete payload.answers_json;
      delete payload.argv_json;
      out.push({
        table,
        seq: r.seq as number,
        kind: KIND[table],
        family: FAMILY[table]!,
        session_id: r.session_id as string,
        event_id: r.event_id as string,
        rule_id: null,
        payload,
      });
    }
  }
  return out;
}
