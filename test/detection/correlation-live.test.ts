/**
 * The same events give the same correlation findings live (the correlating sink in front of a real
 * session.db ledger), in a backtest over JSONL, and in a hunt over that session.db.
 */
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { detectionEngine } from '../../src/detection/install.js';
import { CorrelatingSink } from '../../src/detection/live.js';
import { parseCorpusLine, runDetections, type CorpusItem } from '../../src/detection/run.js';
import { LedgerWriter } from '../../src/store/writer.js';
import { formatRunReport } from '../../src/detection/report.js';
import { readEvents } from '../../src/store/readers.js';
import type { SecurityEvent } from '../../src/events/types.js';
import { correlationPack, dnsAnswer, exec } from './correlation-helpers.js';
import { load, readRepo } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'celgate-corr-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const dnsPack = load(readRepo('detection-ir/dns-tunnel-nxdomain.yaml'));
const execPack = load(
  correlationPack(
    ['a', 'b'],
    [
      {
        id: 'three-a',
        title: 'three a in 10 s per directory',
        type: 'event_count',
        rules: ['a'],
        group_by: ['process.activity.cwd'],
        timespan: '10s',
        condition: { gte: 3 },
        severity: 'medium',
      },
      {
        id: 'a-then-b',
        title: 'a then b within 5 s',
        type: 'temporal_ordered',
        rules: ['a', 'b'],
        timespan: '5s',
        severity: 'high',
      },
    ],
  ),
);
const packs = [dnsPack, execPack];

/** 25 NXDOMAIN names under one domain, 10 under another, NOERROR noise, and exec bursts. */
function corpus(): SecurityEvent[] {
  const out: SecurityEvent[] = [];
  let t = 1_700_000_000_000;
  for (let i = 0; i < 25; i++) {
    out.push(dnsAnswer(`c${i}x9.t.tunnel.test`, 'NXDOMAIN', (t += 700)));
    if (i < 10) out.push(dnsAnswer(`n${i}.quiet.test`, 'NXDOMAIN', (t += 10)));
    out.push(dnsAnswer('www.ok.test', 'NOERROR', (t += 10)));
  }
  for (let i = 0; i < 7; i++) out.push(exec('a', (t += 1_000), i % 2 === 0 ? '/w' : '/v'));
  out.push(exec('b', (t += 1_000)));
  out.push(exec('b', (t += 20_000)));
  return out;
}

type Row = { rule_id: string; event_id: string; event_ids: string[] };
const key = (r: Row) => `${r.rule_id} ${r.event_id} ${r.event_ids.join(',')}`;

describe('live, backtest (JSONL) and hunt (session.db) agree on correlation findings', () => {
  const events = corpus();
  const dbPath = join(dir, 'session.db');

  // Live: the rules decide, the correlating sink adds correlation findings, the ledger records.
  const ledger = new LedgerWriter(dbPath);
  const sink = new CorrelatingSink(ledger);
  sink.replace(packs.map((p) => p.pack));
  const { engine } = detectionEngine(packs);
  for (const e of events) sink.decision(e, engine.decide(e));
  ledger.close();
  const db = new Database(dbPath, { readonly: true });
  const live: Row[] = (
    db
      .prepare(
        'SELECT rule_id, event_id, correlation_json FROM detection_findings WHERE correlation_json IS NOT NULL ORDER BY seq',
      )
      .all() as { rule_id: string; event_id: string; correlation_json: string }[]
  ).map((r) => ({
    rule_id: r.rule_id,
    event_id: r.event_id,
    event_ids: JSON.parse(r.correlation_json).event_ids,
  }));
  db.close();

  it('live fires the DNS burst once (not for 10 names), three-a twice and a-then-b once', () => {
    expect(live.map((r) => r.rule_id).sort()).toEqual([
      'a-then-b',
      'dns-tunnel-nxdomain-burst',
      'three-a',
      'three-a',
    ]);
    const burst = live.find((r) => r.rule_id === 'dns-tunnel-nxdomain-burst')!;
    expect(burst.event_ids).toHaveLength(21);
    expect(sink.stats()).toMatchObject({ correlations: 3, evictions: 0, fired: 4 });
  });

  it('a backtest over the events as JSONL gives the same findings', async () => {
    const file = join(dir, 'events.jsonl');
    writeFileSync(file, events.map((e) => JSON.stringify(e)).join('\n'));
    const items: CorpusItem[] = readFileSync(file, 'utf8')
      .split('\n')
      .map((line, i) => parseCorpusLine(line, i + 1, file))
      .flatMap((r) => (r.ok && r.item !== null ? [r.item] : []));
    expect(items).toHaveLength(events.length);
    const report = await runDetections(packs, items, 'backtest');
    expect(report.correlations.findings.map(key)).toEqual(live.map(key));
    expect(formatRunReport(report)).toMatch(
      /correlations: 4 fired, \d+ groups open, 0 evicted at the group limit/,
    );
    expect(report.by_rule['dns-tunnel-nxdomain-burst']).toEqual({
      matches: 1,
      unique_evidence: 1,
    });
  });

  it('a hunt over the session.db gives the same findings', async () => {
    const report = await runDetections(
      packs,
      (function* () {
        for (const event of readEvents(dbPath)) yield { event };
      })(),
      'hunt',
    );
    expect(report.events_scanned).toBe(events.length);
    expect(report.correlations.findings.map(key)).toEqual(live.map(key));
  });
});
