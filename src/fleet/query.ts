/**
 * Reading the fleet's event stream for the CLI (`celgate fleet events|stats`, `ir hunt --fleet`):
 * an ordered consumer over a subject filter, from the start or from a time, until the messages
 * present when the query started have been read. Also the `--since` parser and the aggregation of
 * `fleet stats`.
 */
import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { CelgateError } from '../errors.js';
import { eventFilter } from './names.js';

export interface StreamQuery {
  gateway?: string | undefined;
  session?: string | undefined;
  family?: string | undefined;
  /** Only messages stored at or after this time (ms since the epoch). */
  sinceMs?: number | undefined;
}

export interface StreamMessage {
  seq: number;
  subject: string;
  /** When the stream stored it (ms). */
  time_ms: number;
  /** The published row: `kind`, `gateway_id` and the row's columns. */
  data: Record<string, unknown>;
}

const UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `--since`: a duration back from now (`90s`, `15m`, `2h`, `7d`) or an ISO 8601 time. */
export function parseSince(text: string, now = Date.now()): number {
  const m = /^(\d+)([smhd])$/.exec(text.trim());
  if (m !== null) return now - Number(m[1]) * UNITS[m[2]!]!;
  const t = Date.parse(text);
  if (Number.isNaN(t))
    throw new CelgateError(
      'E_CONFIG',
      `--since "${text}": use a duration (90s, 15m, 2h, 7d) or an ISO time (2026-12-05T10:00:00Z)`,
    );
  return t;
}

/** Yields the matching messages stored when the query starts, oldest first. */
export async function* readStream(
  nc: NatsConnection,
  stream: string,
  q: StreamQuery,
): AsyncGenerator<StreamMessage> {
  const filter = eventFilter(q);
  const jsm = await jetstreamManager(nc);
  let last: number;
  try {
    const info = await jsm.streams.info(stream, { subjects_filter: filter });
    last = info.state.last_seq;
    const matching = Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0);
    if (matching === 0) return;
  } catch (err) {
    if (/not found/i.test((err as Error).message))
      throw new CelgateError(
        'E_FLEET',
        `stream ${stream} does not exist yet (no gateway has exported to it)`,
      );
    throw err;
  }
  const js = jetstream(nc);
  const consumer = await js.consumers.get(stream, {
    filter_subjects: filter, // a string: filter_subject, which NATS 2.9 (Debian's) understands
    ...(q.sinceMs === undefined
      ? { deliver_policy: DeliverPolicy.All }
      : {
          deliver_policy: DeliverPolicy.StartTime,
          opt_start_time: new Date(q.sinceMs).toISOString(),
        }),
  });
  const decoder = new TextDecoder();
  for (;;) {
    const batch = await consumer.fetch({ max_messages: 1_000, expires: 1_000 });
    let got = 0;
    let done = false;
    for await (const m of batch) {
      got++;
      let data: Record<string, unknown>;
      try {
        data = JSON.parse(decoder.decode(m.data)) as Record<string, unknown>;
      } catch {
        data = { kind: 'unreadable' };
      }
      yield {
        seq: m.seq,
        subject: m.subject,
        time_ms: Math.floor(m.info.timestampNanos / 1e6),
        data,
      };
      if (m.seq >= last || m.info.pending === 0) done = true;
    }
    if (done || got === 0) return;
  }
}

export interface FleetStats {
  messages: number;
  by_gateway: Record<
    string,
    {
      decisions: number;
      allow: number;
      block: number;
      error: number;
      findings: number;
      rows: number;
    }
  >;
  by_family: Record<string, number>;
  top_block_rules: { rule_id: string; count: number }[];
  findings_by_severity: Record<string, number>;
  first_ms: number | null;
  last_ms: number | null;
}

/** Aggregates stream messages into the `fleet stats` summary. */
export async function fleetStats(messages: AsyncIterable<StreamMessage>): Promise<FleetStats> {
  const s: FleetStats = {
    messages: 0,
    by_gateway: {},
    by_family: {},
    top_block_rules: [],
    findings_by_severity: {},
    first_ms: null,
    last_ms: null,
  };
  const blocks = new Map<string, number>();
  for await (const m of messages) {
    s.messages++;
    const d = m.data;
    const ts = typeof d.timestamp_ms === 'number' ? d.timestamp_ms : m.time_ms;
    s.first_ms = s.first_ms === null ? ts : Math.min(s.first_ms, ts);
    s.last_ms = s.last_ms === null ? ts : Math.max(s.last_ms, ts);
    const gw = String(d.gateway_id ?? '?');
    const g = (s.by_gateway[gw] ??= {
      decisions: 0,
      allow: 0,
      block: 0,
      error: 0,
      findings: 0,
      rows: 0,
    });
    if (d.kind === 'decision') {
      g.decisions++;
      const verdict = String(d.decision);
      if (verdict === 'allow' || verdict === 'block' || verdict === 'error') g[verdict]++;
      const fam = String(d.family ?? m.subject.split('.').pop());
      s.by_family[fam] = (s.by_family[fam] ?? 0) + 1;
      if (verdict === 'block' && typeof d.rule_id === 'string')
        blocks.set(d.rule_id, (blocks.get(d.rule_id) ?? 0) + 1);
    } else if (d.kind === 'finding') {
      g.findings++;
      const sev = String(d.severity ?? '?');
      s.findings_by_severity[sev] = (s.findings_by_severity[sev] ?? 0) + 1;
    } else g.rows++;
  }
  s.top_block_rules = [...blocks]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 10)
    .map(([rule_id, count]) => ({ rule_id, count }));
  return s;
}
