/**
 * What the session report shows (docs/report.md), aggregated in SQL from one session.db: the
 * summary, counts by protocol and decision, packs and generations, a per-second timeline by
 * decision, the blocks (capped), per-rule hits, top targets per protocol, findings by severity with
 * deduplicated evidence, and decision latency per protocol. Bounded output whatever the session's
 * size: a 100,000-event session yields the same few hundred rows as a small one.
 *
 * Reads only; never writes the ledger.
 */
import type { Db } from './schema.js';

/** Blocks listed one by one (newest first); the counts cover them all. */
export const MAX_BLOCK_ROWS = 2000;
/** Timeline points at most: longer sessions are bucketed into wider steps. */
export const MAX_TIMELINE_POINTS = 600;
/** Targets listed per protocol. */
export const TOP_TARGETS = 10;
/** Upper bounds (µs) of the decision-latency histogram buckets; the last catches the rest. */
export const LATENCY_BUCKETS_US = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000, Infinity];

export interface ReportData {
  generated_ms: number;
  session: {
    session_id: string;
    profile: string;
    celgate_version: string;
    started_ms: number | null;
    ended_ms: number | null;
    first_event_ms: number | null;
    last_event_ms: number | null;
  };
  totals: { events: number; allow: number; block: number; error: number };
  /** Per protocol family (http, dns, mcp, process): events by decision. */
  by_protocol: { family: string; allow: number; block: number; error: number }[];
  packs: { pack_id: string; rules: number; matches: number }[];
  generations: { generation: number; events: number; first_ms: number; last_ms: number }[];
  timeline: {
    step_s: number;
    points: { t_ms: number; allow: number; block: number; error: number }[];
  };
  blocks: {
    t_ms: number;
    family: string;
    event_type: string;
    target: string;
    decision: string;
    rule_id: string | null;
    reason: string;
    process: string;
  }[];
  blocks_total: number;
  rules: {
    rule_id: string;
    pack_id: string;
    mode: string;
    action: string;
    matches: number;
    decisive: number;
    last_ms: number;
  }[];
  top_targets: { family: string; target: string; events: number; blocked: number }[];
  findings: {
    severity: string;
    rule_id: string;
    title: string;
    count: number;
    first_ms: number;
    last_ms: number;
    evidence: string[];
  }[];
  latency: {
    family: string;
    samples: number;
    p50_us: number;
    p95_us: number;
    p99_us: number;
    max_us: number;
    buckets: number[];
  }[];
}

/** The target of an event from its stored JSON, in SQL (the same forms as `celgate events`). */
const TARGET = `CASE e.event_type
    WHEN 'http.request' THEN coalesce(json_extract(e.event_json, '$.http.request.host'), '') || coalesce(json_extract(e.event_json, '$.http.request.path'), '')
    WHEN 'http.response' THEN coalesce(json_extract(e.event_json, '$.http.request.host'), '') || coalesce(json_extract(e.event_json, '$.http.request.path'), '')
    WHEN 'dns.request' THEN coalesce(json_extract(e.event_json, '$.dns.request.qname'), '')
    WHEN 'dns.response' THEN coalesce(json_extract(e.event_json, '$.dns.request.qname'), '')
    WHEN 'mcp.request' THEN coalesce(json_extract(e.event_json, '$.mcp.request.server_id'), '') || ' ' || coalesce(nullif(json_extract(e.event_json, '$.mcp.request.tool_name'), ''), json_extract(e.event_json, '$.mcp.request.method'), '')
    WHEN 'mcp.response' THEN coalesce(json_extract(e.event_json, '$.mcp.request.server_id'), '') || ' ' || coalesce(json_extract(e.event_json, '$.mcp.request.tool_name'), '')
    WHEN 'process.exec' THEN coalesce(json_extract(e.event_json, '$.process.activity.command'), '')
    ELSE '' END`;

const n = (v: unknown) => Number(v ?? 0);

export function reportData(db: Db): ReportData {
  const s = (db
    .prepare(
      'SELECT session_id, profile, celgate_version, started_ms, ended_ms FROM sessions ORDER BY started_ms LIMIT 1',
    )
    .get() ?? {}) as Record<string, unknown>;
  const span = db
    .prepare(
      'SELECT MIN(timestamp_ms) AS a, MAX(timestamp_ms) AS b, COUNT(*) AS c FROM security_events',
    )
    .get() as { a: number | null; b: number | null; c: number };
  const byProtocol = db
    .prepare(
      `SELECT family, SUM(decision = 'allow') AS allow, SUM(decision = 'block') AS block, SUM(decision = 'error') AS error
       FROM security_events GROUP BY family ORDER BY COUNT(*) DESC`,
    )
    .all() as ReportData['by_protocol'];
  const totals = { events: span.c, allow: 0, block: 0, error: 0 };
  for (const p of byProtocol) {
    p.allow = n(p.allow);
    p.block = n(p.block);
    p.error = n(p.error);
    totals.allow += p.allow;
    totals.block += p.block;
    totals.error += p.error;
  }

  // Timeline: one point per step, the step growing with the session so points stay bounded.
  const first = span.a ?? 0;
  const last = span.b ?? 0;
  const stepS = Math.max(1, Math.ceil((last - first) / 1000 / MAX_TIMELINE_POINTS));
  const points = (
    db
      .prepare(
        `SELECT CAST((timestamp_ms - ?) / ? AS INTEGER) AS bucket, SUM(decision = 'allow') AS allow, SUM(decision = 'block') AS block, SUM(decision = 'error') AS error
         FROM security_events GROUP BY bucket ORDER BY bucket`,
      )
      .all(first, stepS * 1000) as { bucket: number; allow: number; block: number; error: number }[]
  ).map((p) => ({
    t_ms: first + p.bucket * stepS * 1000,
    allow: n(p.allow),
    block: n(p.block),
    error: n(p.error),
  }));

  const blocks = db
    .prepare(
      `SELECT e.timestamp_ms AS t_ms, e.family, e.event_type, ${TARGET} AS target, e.decision, e.rule_id, e.reason, e.process_name AS process
       FROM security_events e WHERE e.decision != 'allow' ORDER BY e.seq DESC LIMIT ?`,
    )
    .all(MAX_BLOCK_ROWS) as ReportData['blocks'];

  const rules = (
    db
      .prepare(
        `SELECT m.rule_id, m.pack_id, m.mode, m.action, COUNT(*) AS matches, SUM(m.decisive) AS decisive, MAX(e.timestamp_ms) AS last_ms
         FROM rule_matches m JOIN security_events e ON e.seq = m.event_seq GROUP BY m.rule_id, m.pack_id, m.mode, m.action ORDER BY matches DESC`,
      )
      .all() as ReportData['rules']
  ).map((r) => ({ ...r, decisive: n(r.decisive) }));
  const packs = db
    .prepare(
      'SELECT pack_id, COUNT(DISTINCT rule_id) AS rules, COUNT(*) AS matches FROM rule_matches GROUP BY pack_id ORDER BY matches DESC',
    )
    .all() as ReportData['packs'];
  const generations = db
    .prepare(
      'SELECT generation, COUNT(*) AS events, MIN(timestamp_ms) AS first_ms, MAX(timestamp_ms) AS last_ms FROM security_events GROUP BY generation ORDER BY generation',
    )
    .all() as ReportData['generations'];

  const topTargets: ReportData['top_targets'] = [];
  for (const { family } of byProtocol) {
    const rows = db
      .prepare(
        `SELECT e.family, ${TARGET} AS target, COUNT(*) AS events, SUM(e.decision != 'allow') AS blocked
         FROM security_events e WHERE e.family = ? AND e.event_type NOT IN ('http.response', 'mcp.response') GROUP BY target ORDER BY events DESC LIMIT ?`,
      )
      .all(family, TOP_TARGETS) as ReportData['top_targets'];
    topTargets.push(...rows.map((r) => ({ ...r, blocked: n(r.blocked) })));
  }

  const findings = (
    db
      .prepare(
        `SELECT f.severity, f.rule_id, f.title, COUNT(*) AS count, MIN(f.timestamp_ms) AS first_ms, MAX(f.timestamp_ms) AS last_ms,
           (SELECT group_concat(t, char(31)) FROM (SELECT DISTINCT ${TARGET.replaceAll('e.', 'e2.')} AS t FROM detection_findings f2 JOIN security_events e2 ON e2.seq = f2.event_seq
              WHERE f2.rule_id = f.rule_id AND f2.title = f.title LIMIT 5)) AS evidence
         FROM detection_findings f GROUP BY f.severity, f.rule_id, f.title
         ORDER BY CASE f.severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 WHEN 'low' THEN 3 ELSE 4 END, count DESC`,
      )
      .all() as (Omit<ReportData['findings'][number], 'evidence'> & { evidence: string | null })[]
  ).map((f) => ({ ...f, evidence: f.evidence === null ? [] : f.evidence.split('\u001f') }));

  // Latency per family: percentiles by offset (SQLite sorts), histogram by bucket.
  const latency: ReportData['latency'] = [];
  for (const { family } of byProtocol) {
    const count = (
      db
        .prepare('SELECT COUNT(*) AS c, MAX(eval_ns) AS m FROM security_events WHERE family = ?')
        .get(family) as { c: number; m: number }
    ).c;
    if (count === 0) continue;
    const at = (q: number) =>
      n(
        (
          db
            .prepare(
              'SELECT eval_ns FROM security_events WHERE family = ? ORDER BY eval_ns LIMIT 1 OFFSET ?',
            )
            .get(family, Math.min(count - 1, Math.floor(q * count))) as
            { eval_ns: number } | undefined
        )?.eval_ns,
      ) / 1000;
    const max =
      n(
        (
          db
            .prepare('SELECT MAX(eval_ns) AS m FROM security_events WHERE family = ?')
            .get(family) as { m: number }
        ).m,
      ) / 1000;
    const bucketSql = LATENCY_BUCKETS_US.map((b, i) =>
      b === Infinity ? `ELSE ${i}` : `WHEN eval_ns <= ${b * 1000} THEN ${i}`,
    ).join(' ');
    const rows = db
      .prepare(
        `SELECT CASE ${bucketSql} END AS b, COUNT(*) AS c FROM security_events WHERE family = ? GROUP BY b`,
      )
      .all(family) as { b: number; c: number }[];
    const buckets = LATENCY_BUCKETS_US.map(() => 0);
    for (const r of rows) buckets[r.b] = r.c;
    latency.push({
      family,
      samples: count,
      p50_us: at(0.5),
      p95_us: at(0.95),
      p99_us: at(0.99),
      max_us: max,
      buckets,
    });
  }

  return {
    generated_ms: Date.now(),
    session: {
      session_id: String(s.session_id ?? ''),
      profile: String(s.profile ?? ''),
      celgate_version: String(s.celgate_version ?? ''),
      started_ms: (s.started_ms as number | null) ?? null,
      ended_ms: (s.ended_ms as number | null) ?? null,
      first_event_ms: span.a,
      last_event_ms: span.b,
    },
    totals,
    by_protocol: byProtocol,
    packs,
    generations,
    timeline: { step_s: stepS, points },
    blocks,
    blocks_total: totals.block + totals.error,
    rules,
    top_targets: topTargets,
    findings,
    latency,
  };
}
