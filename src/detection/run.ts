/**
 * Backtest and hunt: run candidate packs over a stream of recorded events through the policy engine
 * (exactly the inline evaluation), collect findings, dedupe them by evidence signature, and compare
 * expected outcomes when the corpus gives them. Takes an (async) iterable of events; it never opens
 * files or databases itself (the CLI and control API wire the sources). No I/O.
 */
import { eventFromJson } from '../events/build.js';
import type { SecurityEvent } from '../events/types.js';
import { formatIssue, type Issue } from '../errors.js';
import { CorrelationEngine, DEFAULT_MAX_GROUPS, type CorrelationStats } from './correlate.js';
import {
  EvidenceDeduper,
  correlationSignature,
  eventSummary,
  evidenceSignature,
  type DedupeReport,
  DEFAULT_MAX_ROWS,
} from './evidence.js';
import { detectionEngine, type LoadedPack } from './install.js';
import type { IrRuleSource } from './types.js';

/** Bound on one corpus line (one event). */
export const MAX_CORPUS_LINE_BYTES = 1024 * 1024;
/** Samples of errors and expectation mismatches kept in a report. */
export const MAX_SAMPLES = 20;

export interface CorpusItem {
  event: SecurityEvent;
  /** Rule ids expected to fire on this event ([] = none); undefined = no expectation. */
  expect?: readonly string[];
  /** Where the item came from, e.g. `events.jsonl:12`. */
  where?: string;
}

export interface RunOptions {
  maxRows?: number;
  /** Called every `progressEvery` events and once at the end. */
  onProgress?: (scanned: number) => void;
  progressEvery?: number;
  /** Yield to the event loop every this many events (hunts run inside the gateway process). */
  yieldEvery?: number;
  /** Bound on open correlation groups (default DEFAULT_MAX_GROUPS, as in the gateway). */
  maxGroups?: number;
}

/** One correlation finding of a run: the event that completed it and the events it counted. */
export interface CorrelationRow {
  rule_id: string;
  pack_id: string;
  event_id: string;
  timestamp_ms: number;
  type: string;
  group: Record<string, string>;
  count: number;
  event_ids: string[];
}

/** Default for `yieldEvery`: keeps a long hunt from starving the gateway's sockets. */
export const YIELD_EVERY = 512;

export interface Mismatch {
  where: string | undefined;
  event_id: string;
  expected: string[];
  actual: string[];
}

export interface RunReport extends DedupeReport {
  kind: 'backtest' | 'hunt';
  packs: { id: string; version: string; rules: string[] }[];
  /** Provenance of the rules that matched (imported rules only), by rule id. */
  sources: Record<string, IrRuleSource>;
  events_scanned: number;
  errors: { count: number; samples: { event_id: string; rule_id: string; message: string }[] };
  expectations: { checked: number; passed: number; failed: number; mismatches: Mismatch[] } | null;
  /** Correlation findings (at most max_rows, in stream order) and the window statistics. */
  correlations: { findings: CorrelationRow[]; truncated: boolean } & CorrelationStats;
  /** False when an expectation failed or a rule errored. */
  ok: boolean;
}

export async function runDetections(
  packs: readonly LoadedPack[],
  items: Iterable<CorpusItem> | AsyncIterable<CorpusItem>,
  kind: RunReport['kind'],
  options: RunOptions = {},
): Promise<RunReport> {
  const { engine } = detectionEngine(packs);
  const ours = new Set(packs.flatMap((p) => p.rules.map((r) => r.rule.id)));
  const maxRows = options.maxRows ?? DEFAULT_MAX_ROWS;
  const dedupe = new EvidenceDeduper(maxRows);
  const correlator = new CorrelationEngine(
    packs.map((p) => p.pack),
    options.maxGroups ?? DEFAULT_MAX_GROUPS,
  );
  const correlationRows: CorrelationRow[] = [];
  let correlationCount = 0;
  const every = Math.max(1, options.progressEvery ?? 1000);
  const yieldEvery = Math.max(1, options.yieldEvery ?? YIELD_EVERY);
  let scanned = 0;
  const errors: RunReport['errors'] = { count: 0, samples: [] };
  let checked = 0;
  let failed = 0;
  const mismatches: Mismatch[] = [];
  for await (const item of items) {
    const ev = item.event;
    scanned++;
    const d = engine.decide(ev);
    for (const e of d.errors) {
      errors.count++;
      if (errors.samples.length < MAX_SAMPLES)
        errors.samples.push({
          event_id: ev.common.event_id,
          rule_id: e.rule_id,
          message: e.message,
        });
    }
    let signature: string | undefined;
    const fired: string[] = [];
    const own = d.findings.filter((f) => ours.has(f.rule_id));
    // Rules with `generate: false` feed correlations only, as in the gateway.
    for (const f of correlator.published(own)) {
      fired.push(f.rule_id);
      signature ??= evidenceSignature(ev);
      dedupe.add(f, signature, ev.common.timestamp_ms, () => eventSummary(ev));
    }
    // The same correlation engine as the gateway's sink, fed the same findings in the same order.
    for (const f of correlator.observe(ev, own)) {
      fired.push(f.rule_id);
      const c = f.correlation;
      dedupe.add(
        f,
        correlationSignature(f.rule_id, c.group),
        ev.common.timestamp_ms,
        () => `${c.type} ${c.count} in ${c.timespan_ms / 1000} s ${JSON.stringify(c.group)}`,
      );
      correlationCount++;
      if (correlationRows.length < maxRows)
        correlationRows.push({
          rule_id: f.rule_id,
          pack_id: f.pack_id,
          event_id: f.event_id,
          timestamp_ms: ev.common.timestamp_ms,
          type: c.type,
          group: c.group,
          count: c.count,
          event_ids: c.event_ids,
        });
    }
    if (item.expect !== undefined) {
      checked++;
      const expected = [...new Set(item.expect)].sort();
      const actual = [...new Set(fired)].sort();
      if (expected.join('\n') !== actual.join('\n')) {
        failed++;
        if (mismatches.length < MAX_SAMPLES)
          mismatches.push({ where: item.where, event_id: ev.common.event_id, expected, actual });
      }
    }
    if (scanned % every === 0) options.onProgress?.(scanned);
    if (scanned % yieldEvery === 0) await new Promise<void>((resolve) => setImmediate(resolve));
  }
  options.onProgress?.(scanned);
  return {
    kind,
    packs: packs.map((p) => ({
      id: p.pack.id,
      version: p.pack.version,
      rules: p.rules.map((r) => r.rule.id),
    })),
    events_scanned: scanned,
    sources: matchedSources(packs, dedupe),
    ...dedupe.report(),
    errors,
    expectations: checked === 0 ? null : { checked, passed: checked - failed, failed, mismatches },
    correlations: {
      findings: correlationRows,
      truncated: correlationCount > correlationRows.length,
      ...correlator.stats(),
    },
    ok: failed === 0 && errors.count === 0,
  };
}

function matchedSources(
  packs: readonly LoadedPack[],
  dedupe: EvidenceDeduper,
): Record<string, IrRuleSource> {
  const fired = dedupe.report().by_rule;
  const out: Record<string, IrRuleSource> = {};
  for (const p of packs)
    for (const r of p.rules)
      if (r.rule.source !== undefined && Object.hasOwn(fired, r.rule.id))
        out[r.rule.id] = r.rule.source;
  return out;
}

export type CorpusLine = { ok: true; item: CorpusItem | null } | { ok: false; issue: Issue };

/**
 * One JSONL line: an event (as `eventFromJson` reads it), or `{"event": {...}, "expect": [rule ids]}`.
 * Blank lines and lines starting with `#` yield null.
 */
export function parseCorpusLine(line: string, lineNo: number, file = '<events>'): CorpusLine {
  const where: Issue = { file, line: lineNo, path: '', message: '' };
  const trimmed = line.trim();
  if (trimmed === '' || trimmed.startsWith('#')) return { ok: true, item: null };
  if (line.length > MAX_CORPUS_LINE_BYTES)
    return {
      ok: false,
      issue: { ...where, message: `line is longer than ${MAX_CORPUS_LINE_BYTES} bytes` },
    };
  let value: unknown;
  try {
    value = JSON.parse(trimmed);
  } catch (err) {
    return { ok: false, issue: { ...where, message: `not JSON: ${(err as Error).message}` } };
  }
  return corpusItem(value, `${file}:${lineNo}`, where);
}

/** A corpus item from a parsed value (JSONL line or an API body element). */
export function corpusItem(
  value: unknown,
  whereText: string,
  where: Issue = { path: '', message: '' },
): CorpusLine {
  let raw = value;
  let expect: string[] | undefined;
  if (typeof value === 'object' && value !== null && !Array.isArray(value) && 'event' in value) {
    const o = value as { event: unknown; expect?: unknown };
    raw = o.event;
    if (o.expect !== undefined) {
      if (!Array.isArray(o.expect) || !o.expect.every((x) => typeof x === 'string')) {
        return {
          ok: false,
          issue: {
            ...where,
            path: 'expect',
            message: '"expect" must be a list of rule ids ([] for none)',
          },
        };
      }
      expect = o.expect as string[];
    }
  }
  const ev = eventFromJson(raw, { session_id: 'corpus' });
  if (!ev.ok)
    return {
      ok: false,
      issue: { ...where, message: `invalid event: ${ev.issues.map(formatIssue).join('; ')}` },
    };
  const item: CorpusItem = { event: ev.value, where: whereText };
  if (expect !== undefined) item.expect = expect;
  return { ok: true, item };
}
