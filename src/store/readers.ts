/**
 * Read-side of session.db: recent events, events by rule, per-rule summaries, and `readEvents`
 * which replays the stored (redacted) SecurityEvents for Detection IR hunts. Opens files
 * read-only; never writes; never on the request path.
 */
import { eventFromJson } from '../events/build.js';
import type { SecurityEvent } from '../events/types.js';
import { CelgateError } from '../errors.js';
import { openLedgerReadOnly, type Db } from './schema.js';

/** Upper bound of rows any list reader returns. */
export const MAX_LIST_LIMIT = 1000;
export const DEFAULT_LIST_LIMIT = 50;

export interface EventRow {
  seq: number;
  event_id: string;
  session_id: string;
  timestamp_ms: number;
  event_type: string;
  family: string;
  process_name: string;
  decision: string;
  rule_id: string | null;
  reason: string;
  mode: string;
  generation: number;
  eval_ns: number;
  match_count: number;
  /** Rules that matched this event (decisive or not). */
  matched_rules: string[];
  /** What the event was about: host + path, qname, server + tool, or the command. */
  target: string;
}

/** The target of an event, from its stored JSON (SQLite's JSON functions; no parsing in JS). */
const TARGET = `CASE e.event_type
    WHEN 'http.request' THEN coalesce(json_extract(e.event_json, '$.http.request.host'), '') || coalesce(json_extract(e.event_json, '$.http.request.path'), '')
    WHEN 'http.response' THEN coalesce(json_extract(e.event_json, '$.http.request.host'), '') || coalesce(json_extract(e.event_json, '$.http.request.path'), '') || ' → ' || coalesce(json_extract(e.event_json, '$.http.response.status'), '')
    WHEN 'dns.request' THEN coalesce(json_extract(e.event_json, '$.dns.request.qname'), '')
    WHEN 'dns.response' THEN coalesce(json_extract(e.event_json, '$.dns.request.qname'), '') || ' → ' || coalesce(json_extract(e.event_json, '$.dns.response.rcode'), '')
    WHEN 'mcp.request' THEN coalesce(json_extract(e.event_json, '$.mcp.request.server_id'), '') || ' ' || coalesce(nullif(json_extract(e.event_json, '$.mcp.request.tool_name'), ''), json_extract(e.event_json, '$.mcp.request.method'), '')
    WHEN 'mcp.response' THEN coalesce(json_extract(e.event_json, '$.mcp.request.server_id'), json_extract(e.event_json, '$.mcp.response.server_id'), '') || ' ' || coalesce(nullif(json_extract(e.event_json, '$.mcp.request.tool_name'), ''), json_extract(e.event_json, '$.mcp.response.tool_name'), '')
    WHEN 'process.exec' THEN coalesce(json_extract(e.event_json, '$.process.activity.command'), '')
    ELSE '' END AS target`;

export interface RuleSummary {
  rule_id: string;
  pack_id: string;
  matches: number;
  decisive: number;
  first_ms: number;
  last_ms: number;
  last_event_id: string;
}

export interface EventQuery {
  limit?: number;
  /** Events this rule matched (decisive or not). */
  rule?: string;
  event_type?: string;
  decision?: string;
}

function clampLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_LIST_LIMIT;
  if (!Number.isInteger(limit) || limit < 1)
    throw new CelgateError('E_CONFIG', 'limit must be a positive integer');
  return Math.min(limit, MAX_LIST_LIMIT);
}

const EVENT_COLUMNS = `e.seq, e.event_id, e.session_id, e.timestamp_ms, e.event_type, e.family, e.process_name, e.decision, e.rule_id,
  e.reason, e.mode, e.generation, e.eval_ns, e.match_count`;

/** Newest first. */
export function recentEvents(db: Db, query: EventQuery = {}): EventRow[] {
  const where: string[] = [];
  const args: unknown[] = [];
  if (query.rule !== undefined) {
    where.push('e.seq IN (SELECT event_seq FROM rule_matches WHERE rule_id = ?)');
    args.push(query.rule);
  }
  if (query.event_type !== undefined) {
    where.push('e.event_type = ?');
    args.push(query.event_type);
  }
  if (query.decision !== undefined) {
    where.push('e.decision = ?');
    args.push(query.decision);
  }
  const sql = `SELECT ${EVENT_COLUMNS}, ${TARGET}, (SELECT group_concat(rule_id, char(31)) FROM (SELECT rule_id FROM rule_matches m WHERE m.event_seq = e.seq ORDER BY m.idx)) AS matched
    FROM security_events e ${where.length === 0 ? '' : `WHERE ${where.join(' AND ')}`} ORDER BY e.seq DESC LIMIT ?`;
  const rows = db.prepare(sql).all(...args, clampLimit(query.limit)) as (Omit<
    EventRow,
    'matched_rules'
  > & { matched: string | null })[];
  return rows.map(({ matched, ...row }) => ({
    ...row,
    matched_rules: matched === null ? [] : matched.split('\u001f'),
  }));
}

export function eventsByRule(db: Db, ruleId: string, limit?: number): EventRow[] {
  return recentEvents(db, { rule: ruleId, limit });
}

/** Per-rule totals from rule_matches, most matched first. */
export function ruleSummaries(db: Db): RuleSummary[] {
  return db
    .prepare(
      `SELECT r.rule_id, r.pack_id, COUNT(*) AS matches, SUM(r.decisive) AS decisive, MIN(e.timestamp_ms) AS first_ms,
         MAX(e.timestamp_ms) AS last_ms,
         (SELECT e2.event_id FROM rule_matches r2 JOIN security_events e2 ON e2.seq = r2.event_seq
           WHERE r2.rule_id = r.rule_id ORDER BY r2.event_seq DESC LIMIT 1) AS last_event_id
       FROM rule_matches r JOIN security_events e ON e.seq = r.event_seq GROUP BY r.rule_id, r.pack_id ORDER BY matches DESC, r.rule_id`,
    )
    .all() as RuleSummary[];
}

export function countRows(db: Db, table: string): number {
  if (!/^[a-z_]+$/.test(table)) throw new CelgateError('E_INTERNAL', `bad table name ${table}`);
  return (db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n;
}

interface StoredRow {
  seq: number;
  event_id: string;
  event_type: string;
  session_id: string;
  process_name: string;
  timestamp_ms: number;
  event_json: string;
}

/**
 * Replays the stored events of a session.db in append order. Values the ledger redacted stay
 * redacted (credential headers read back as "[redacted]": present, value unknown). A row whose
 * JSON no longer validates is skipped and reported through `onSkip`.
 */
export function* readEvents(
  dbPath: string,
  options: { onSkip?: (seq: number, message: string) => void; batch?: number } = {},
): Generator<SecurityEvent> {
  const db = openLedgerReadOnly(dbPath);
  const batch = options.batch ?? 1000;
  const page = db.prepare(
    'SELECT seq, event_id, event_type, session_id, process_name, timestamp_ms, event_json FROM security_events WHERE seq > ? ORDER BY seq LIMIT ?',
  );
  try {
    let after = 0;
    for (;;) {
      const rows = page.all(after, batch) as StoredRow[];
      if (rows.length === 0) return;
      for (const row of rows) {
        after = row.seq;
        let parsed: unknown;
        try {
          parsed = JSON.parse(row.event_json);
        } catch (err) {
          options.onSkip?.(row.seq, (err as Error).message);
          continue;
        }
        if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
          options.onSkip?.(row.seq, 'event_json is not an object');
          continue;
        }
        // The columns hold the identity facts; event_json holds the rest (see storedEventJson).
        const obj = parsed as { common?: Record<string, unknown> };
        obj.common = {
          ...obj.common,
          event_id: row.event_id,
          event_type: row.event_type,
          session_id: row.session_id,
          process_name: row.process_name,
          timestamp_ms: row.timestamp_ms,
        };
        const ev = eventFromJson(obj);
        if (ev.ok) yield ev.value;
        else options.onSkip?.(row.seq, ev.issues.map((i) => `${i.path}: ${i.message}`).join('; '));
      }
    }
  } finally {
    db.close();
  }
}
