/**
 * Evidence signatures and dedupe. A signature hashes an event's facts without its identity (event,
 * session, VM and profile ids, request ids, times), so identical requests collapse to one piece of
 * evidence. The deduper counts total matches and unique evidence per rule and keeps at most N rows.
 * Pure; no I/O.
 */
import { createHash } from 'node:crypto';
import type { Finding } from '../events/decision.js';
import type { SecurityEvent } from '../events/types.js';

export const DEFAULT_MAX_ROWS = 100;
export const MAX_ROWS_LIMIT = 10_000;

/** Identity facts left out of the signature: who/when, not what. */
const IDENTITY_COMMON = new Set(['event_id', 'session_id', 'vm_id', 'profile_id', 'timestamp_ms']);

/** JSON with sorted keys, so equal facts give equal text whatever the key order. */
function canonical(value: unknown, skip?: (key: string) => boolean): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((v) => canonical(v)).join(',')}]`;
  const keys = Object.keys(value).sort();
  let out = '{';
  for (const k of keys) {
    if (skip?.(k)) continue;
    const v = (value as Record<string, unknown>)[k];
    if (v === undefined) continue;
    if (out.length > 1) out += ',';
    out += `${JSON.stringify(k)}:${canonical(v)}`;
  }
  return `${out}}`;
}

/** sha256 over the canonical facts, hex, first 128 bits. */
export function evidenceSignature(event: SecurityEvent): string {
  const e = event as unknown as Record<string, unknown>;
  let text = canonical(e.common, (k) => IDENTITY_COMMON.has(k));
  for (const key of Object.keys(e).sort()) {
    if (key === 'common') continue;
    const v =
      key === 'mcp'
        ? Object.fromEntries(
            Object.entries(e.mcp as Record<string, Record<string, unknown>>).map(([k, x]) => [
              k,
              stripRequestId(x),
            ]),
          )
        : e[key];
    text += `|${key}:${canonical(v)}`;
  }
  return createHash('sha256').update(text).digest('hex').slice(0, 32);
}

function stripRequestId(v: Record<string, unknown>): Record<string, unknown> {
  if (!('request_id' in v)) return v;
  const { request_id: _ignored, ...rest } = v;
  return rest;
}

/** A correlation's evidence is its group: the same group firing again is the same evidence. */
export function correlationSignature(ruleId: string, group: Record<string, string>): string {
  return createHash('sha256')
    .update(`correlation|${ruleId}|${canonical(group)}`)
    .digest('hex')
    .slice(0, 32);
}

/** A short human line about what the event did, for rows and reports. */
export function eventSummary(event: SecurityEvent): string {
  const e = event as unknown as {
    http?: { request: { method: string; url: string }; response?: { status: number } };
    dns?: { request: { qtype: string; qname: string } };
    mcp?: {
      request?: { method: string; server_id: string; tool_name: string };
      response?: { method: string; server_id: string; tool_name: string };
    };
    process?: { activity: { command: string } };
  };
  if (e.http?.response !== undefined)
    return `${e.http.response.status} <- ${e.http.request.method} ${e.http.request.url}`;
  if (e.http !== undefined) return `${e.http.request.method} ${e.http.request.url}`;
  if (e.dns !== undefined) return `DNS ${e.dns.request.qtype} ${e.dns.request.qname}`;
  const m = e.mcp?.request ?? e.mcp?.response;
  if (m !== undefined)
    return `MCP ${e.mcp?.response !== undefined ? '<- ' : ''}${m.method} ${m.server_id}/${m.tool_name}`;
  if (e.process !== undefined) return `exec ${e.process.activity.command}`;
  return event.common.event_type;
}

export interface EvidenceRow {
  rule_id: string;
  pack_id: string;
  severity: Finding['severity'];
  title: string;
  signature: string;
  /** Matches carrying this evidence. */
  count: number;
  first_event_id: string;
  last_event_id: string;
  first_seen_ms: number;
  last_seen_ms: number;
  summary: string;
}

export interface RuleTally {
  matches: number;
  unique_evidence: number;
}

export interface DedupeReport {
  total_matches: number;
  unique_evidence: number;
  rows: EvidenceRow[];
  /** True when there was more unique evidence than rows kept. */
  truncated: boolean;
  by_rule: Record<string, RuleTally>;
}

/** Collapses findings by (rule, signature), keeping the first `maxRows` pieces of evidence as rows. */
export class EvidenceDeduper {
  #total = 0;
  #unique = 0;
  readonly #rows: EvidenceRow[] = [];
  /** rule id → signature → its row (null once rows are full). */
  readonly #index = new Map<string, Map<string, EvidenceRow | null>>();
  readonly #byRule: Record<string, RuleTally> = {};
  readonly #maxRows: number;

  constructor(maxRows: number = DEFAULT_MAX_ROWS) {
    this.#maxRows = Math.max(0, Math.min(MAX_ROWS_LIMIT, Math.trunc(maxRows)));
  }

  /** Records one finding. `summary` is computed lazily, only for new rows. */
  add(finding: Finding, signature: string, timestampMs: number, summary: () => string): void {
    this.#total++;
    const tally = (this.#byRule[finding.rule_id] ??= { matches: 0, unique_evidence: 0 });
    tally.matches++;
    let bySig = this.#index.get(finding.rule_id);
    if (bySig === undefined) this.#index.set(finding.rule_id, (bySig = new Map()));
    const row = bySig.get(signature);
    if (row === undefined) {
      this.#unique++;
      tally.unique_evidence++;
      if (this.#rows.length < this.#maxRows) {
        const r: EvidenceRow = {
          rule_id: finding.rule_id,
          pack_id: finding.pack_id,
          severity: finding.severity,
          title: finding.title,
          signature,
          count: 1,
          first_event_id: finding.event_id,
          last_event_id: finding.event_id,
          first_seen_ms: timestampMs,
          last_seen_ms: timestampMs,
          summary: summary(),
        };
        this.#rows.push(r);
        bySig.set(signature, r);
      } else bySig.set(signature, null);
    } else if (row !== null) {
      row.count++;
      row.last_event_id = finding.event_id;
      row.last_seen_ms = timestampMs;
    }
  }

  report(): DedupeReport {
    return {
      total_matches: this.#total,
      unique_evidence: this.#unique,
      rows: this.#rows.map((r) => ({ ...r })),
      truncated: this.#unique > this.#rows.length,
      by_rule: structuredClone(this.#byRule),
    };
  }
}
