import { describe, expect, it } from 'vitest';
import { EvidenceDeduper, evidenceSignature } from '../../src/detection/evidence.js';
import { parseCorpusLine, runDetections, type CorpusItem } from '../../src/detection/run.js';
import type { Finding } from '../../src/events/decision.js';
import { event, load, packWith, readRepo } from './helpers.js';

const reference = JSON.parse(readRepo('test/fixtures/events/reference-http.json')) as Record<
  string,
  any
>;
const refPack = () => load(readRepo('detection-ir/google-secret-egress.yaml'));

function corpus(text: string, file = 'corpus.jsonl'): CorpusItem[] {
  return text.split('\n').flatMap((line, i) => {
    const r = parseCorpusLine(line, i + 1, file);
    if (!r.ok) throw new Error(r.issue.message);
    return r.item === null ? [] : [r.item];
  });
}

describe('evidence signature', () => {
  it('ignores ids, session, VM, profile and time, but not facts', () => {
    const a = event(reference);
    const b = event({
      ...reference,
      common: {
        ...reference.common,
        event_id: 'other',
        session_id: 'x',
        vm_id: 'y',
        profile_id: 'z',
        timestamp_ms: 1,
      },
    });
    const c = event({
      ...reference,
      http: { request: { ...reference.http.request, path: '/other' } },
    });
    const d = event({ ...reference, common: { ...reference.common, process_name: 'curl' } });
    expect(evidenceSignature(a)).toBe(evidenceSignature(b));
    expect(evidenceSignature(a)).not.toBe(evidenceSignature(c));
    expect(evidenceSignature(a)).not.toBe(evidenceSignature(d));
    expect(evidenceSignature(a)).toMatch(/^[0-9a-f]{32}$/);
  });

  it('ignores the JSON-RPC request id of MCP calls', () => {
    const m = JSON.parse(readRepo('test/fixtures/events/mcp-request.json'));
    const other = { ...m, mcp: { request: { ...m.mcp.request, request_id: 'other-id' } } };
    expect(evidenceSignature(event(m))).toBe(evidenceSignature(event(other)));
  });
});

describe('dedupe', () => {
  const finding = (rule: string, id: string): Finding => ({
    event_id: id,
    rule_id: rule,
    pack_id: 'p',
    severity: 'low',
    confidence: 1,
    title: rule,
    tags: [],
    matched_fields: [],
  });

  it('counts total matches and unique evidence per rule and keeps at most N rows', () => {
    const d = new EvidenceDeduper(2);
    d.add(finding('a', 'e1'), 's1', 1, () => 'one');
    d.add(finding('a', 'e2'), 's1', 2, () => 'one');
    d.add(finding('b', 'e2'), 's1', 2, () => 'one');
    d.add(finding('a', 'e3'), 's2', 3, () => 'two');
    const r = d.report();
    expect(r).toMatchObject({
      total_matches: 4,
      unique_evidence: 3,
      truncated: true,
      by_rule: { a: { matches: 3, unique_evidence: 2 }, b: { matches: 1, unique_evidence: 1 } },
    });
    expect(r.rows).toHaveLength(2);
    expect(r.rows[0]).toMatchObject({
      rule_id: 'a',
      signature: 's1',
      count: 2,
      first_event_id: 'e1',
      last_event_id: 'e2',
      first_seen_ms: 1,
      last_seen_ms: 2,
    });
  });

  it('is not truncated when every piece of evidence has a row', () => {
    const d = new EvidenceDeduper();
    for (let i = 0; i < 1000; i++) d.add(finding('a', `e${i}`), `s${i % 100}`, i, () => '');
    expect(d.report()).toMatchObject({
      total_matches: 1000,
      unique_evidence: 100,
      truncated: false,
    });
    expect(d.report().rows).toHaveLength(100);
  });
});

describe('backtest', () => {
  it('reports 2 matches / 1 unique evidence for the reference pack over the reference corpus', async () => {
    const report = await runDetections(
      [refPack()],
      corpus(readRepo('test/fixtures/detection/backtest-corpus.jsonl')),
      'backtest',
    );
    expect(report).toMatchObject({
      events_scanned: 6,
      total_matches: 2,
      unique_evidence: 1,
      truncated: false,
      ok: true,
    });
    expect(report.rows).toEqual([
      expect.objectContaining({
        rule_id: 'google-secret-egress',
        count: 2,
        first_event_id: 'evt-bt-1',
        last_event_id: 'evt-bt-2',
        summary: 'POST https://googleapis.com/admin/upload?source=bench',
      }),
    ]);
    expect(report.expectations).toEqual({ checked: 5, passed: 5, failed: 0, mismatches: [] });
  });

  it('fires on the reference event', async () => {
    const report = await runDetections([refPack()], [{ event: event(reference) }], 'backtest');
    expect(report.total_matches).toBe(1);
  });

  it('reports expectation mismatches with where they came from', async () => {
    const items = corpus(JSON.stringify({ event: reference, expect: [] }), 'x.jsonl');
    const report = await runDetections([refPack()], items, 'backtest');
    expect(report.ok).toBe(false);
    expect(report.expectations?.mismatches).toEqual([
      {
        where: 'x.jsonl:1',
        event_id: 'evt-reference-0001',
        expected: [],
        actual: ['google-secret-egress'],
      },
    ]);
  });

  it('accepts async iterables and reports progress', async () => {
    async function* gen() {
      for (let i = 0; i < 5; i++) yield { event: event(reference) };
    }
    const seen: number[] = [];
    const report = await runDetections([refPack()], gen(), 'hunt', {
      progressEvery: 2,
      onProgress: (n) => seen.push(n),
    });
    expect(report).toMatchObject({ kind: 'hunt', total_matches: 5, unique_evidence: 1 });
    expect(seen).toEqual([2, 4, 5]);
  });

  it('caps rows and sets truncated', async () => {
    const pack = load(packWith({ field: 'http.request.host', endswith: ['.com'] }));
    const items = Array.from({ length: 30 }, (_, i) => ({
      event: event({
        common: { event_type: 'http.request' },
        http: { request: { host: `h${i}.com` } },
      }),
    }));
    const report = await runDetections([pack], items, 'backtest', { maxRows: 10 });
    expect(report).toMatchObject({ total_matches: 30, unique_evidence: 30, truncated: true });
    expect(report.rows).toHaveLength(10);
  });

  it('reports each bad corpus line with its line number instead of throwing', () => {
    const lines = readRepo('test/fixtures/detection/bad-corpus.jsonl').split('\n');
    const results = lines.map((l, i) => parseCorpusLine(l, i + 1, 'bad.jsonl'));
    expect(results[0]).toMatchObject({ ok: true });
    expect(results[1]).toMatchObject({
      ok: false,
      issue: { line: 2, message: expect.stringMatching(/not JSON/) },
    });
    expect(results[2]).toMatchObject({
      ok: false,
      issue: { line: 3, message: expect.stringMatching(/invalid event/) },
    });
    expect(results[3]).toMatchObject({ ok: false, issue: { path: 'expect' } });
  });
});
