/**
 * Sigma correlation rules (multi-document files: a `correlation:` document and the rules it names)
 * imported into the IR: the Sigma form of the DNS tunnelling pack finds exactly what the shipped pack
 * finds, answer-side DNS fields import as dns.response rules, and unsupported correlation constructs
 * are refused by name.
 */
import { describe, expect, it } from 'vitest';
import { CorrelationEngine } from '../../src/detection/correlate.js';
import { detectionEngine, loadPackText, type LoadedPack } from '../../src/detection/install.js';
import { importSigmaCollection } from '../../src/detection/sigma/correlation.js';
import { parseMapping, type SigmaMapping } from '../../src/detection/sigma/mapping.js';
import { sigmaPack } from '../../src/detection/sigma/import.js';
import type { SecurityEvent } from '../../src/events/types.js';
import { dnsAnswer } from './correlation-helpers.js';
import { event, load, readRepo } from './helpers.js';

const MAPPINGS: SigmaMapping[] = [
  'detection-ir/mappings/sigma-dns.yaml',
  'detection-ir/mappings/sigma-network-dns.yaml',
].map((f) => {
  const m = parseMapping(readRepo(f), f);
  if (!m.ok) throw new Error(JSON.stringify(m.issues));
  return m.value;
});

function importFile(text: string): LoadedPack {
  const col = importSigmaCollection(text, MAPPINGS, 'mr.yml');
  expect(col.issues).toEqual([]);
  const p = sigmaPack(col.rules, { id: 'sigma-corr' }, col.correlations);
  if (!p.ok) throw new Error(JSON.stringify(p.issues));
  const loaded = loadPackText(p.value.yaml);
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.issues));
  return loaded.value;
}

function correlationIds(pack: LoadedPack, events: readonly SecurityEvent[]): string[][] {
  const { engine } = detectionEngine([pack]);
  const corr = new CorrelationEngine([pack.pack]);
  return events.flatMap((e) =>
    corr.observe(e, engine.decide(e).findings).map((f) => f.correlation.event_ids),
  );
}

describe('Sigma correlation import', () => {
  const sigmaText = readRepo(
    'test/fixtures/detection/sigma-correlation/mr_dns_tunnel_nxdomain.yml',
  );

  it('converts a value_count over a named rule, mapping group-by and field through the rule’s mapping', () => {
    const pack = importFile(sigmaText);
    // Named by a correlation without `generate: true`: it feeds the correlation only.
    expect(pack.pack.rules.map((r) => [r.id, r.event_type, r.generate])).toEqual([
      ['sigma-0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d', 'dns.response', false],
    ]);
    expect(pack.pack.correlations).toEqual([
      expect.objectContaining({
        id: 'sigma-6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b',
        type: 'value_count',
        rules: ['sigma-0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d'],
        group_by: ['dns.response.parent_domain'],
        field: 'dns.request.qname',
        timespan_ms: 60_000,
        condition: { op: 'gt', count: 20 },
        severity: 'high',
        confidence: 0.7,
      }),
    ]);
  });

  it('finds what the shipped IR pack finds on the same answers', () => {
    const evs: SecurityEvent[] = [];
    for (let i = 0; i < 50; i++) {
      evs.push(dnsAnswer(`z${i}.t.tunnel.test`, 'NXDOMAIN', i * 1_000));
      if (i % 3 === 0) evs.push(dnsAnswer(`y${i}.other.test`, 'NXDOMAIN', i * 1_000 + 1));
      if (i % 2 === 0) evs.push(dnsAnswer('www.ok.test', 'NOERROR', i * 1_000 + 2));
    }
    const sigma = correlationIds(importFile(sigmaText), evs);
    const shipped = correlationIds(load(readRepo('detection-ir/dns-tunnel-nxdomain.yaml')), evs);
    expect(sigma).toHaveLength(2);
    expect(sigma).toEqual(shipped);
  });

  it('converts a temporal_ordered over a dns.response rule (answer|contains) and a dns.request rule', () => {
    const pack = importFile(
      readRepo('test/fixtures/detection/sigma-correlation/mr_txt_then_exec.yml'),
    );
    expect(pack.pack.rules.map((r) => r.event_type)).toEqual(['dns.response', 'dns.request']);
    const txt = (type: 'dns.response' | 'dns.request', ts: number, data = '') =>
      event({
        common: { event_type: type, timestamp_ms: ts },
        dns: {
          request: { qname: 'cmd.evil.test', qtype: 'TXT' },
          ...(type === 'dns.response'
            ? {
                response: {
                  rcode: 'NOERROR',
                  answers: [{ name: 'cmd.evil.test', type: 'TXT', data, ttl: 60 }],
                },
              }
            : {}),
        },
      });
    expect(
      correlationIds(pack, [
        txt('dns.response', 0, '"powershell -enc AAA"'),
        txt('dns.request', 60_000),
      ]),
    ).toHaveLength(1);
    expect(
      correlationIds(pack, [txt('dns.response', 0, '"v=spf1 -all"'), txt('dns.request', 60_000)]),
    ).toHaveLength(0);
    expect(
      correlationIds(pack, [txt('dns.request', 0), txt('dns.response', 1, '"IEX (x)"')]),
    ).toHaveLength(0);
  });

  it('keeps a named rule stand-alone when the correlation says generate: true', () => {
    const pack = importFile(sigmaText.replace('level: high\n', 'level: high\ngenerate: true\n'));
    expect(pack.pack.rules[0]!.generate).toBeUndefined();
  });

  const withCorrelation = (patch: string) =>
    sigmaText.replace(/correlation:\n(?:  .*\n|    .*\n)+/, `correlation:\n${patch}`);

  it.each([
    [
      'aliases',
      '  type: temporal\n  rules: [dns_nxdomain]\n  group-by: [x]\n  timespan: 1m\n  aliases: {x: {dns_nxdomain: query}}\n',
      /correlation aliases/,
    ],
    [
      'value_sum',
      '  type: value_sum\n  rules: [dns_nxdomain]\n  group-by: [query]\n  timespan: 1m\n  condition: {field: query, gt: 3}\n',
      /correlation type "value_sum"/,
    ],
    [
      'an upper bound',
      '  type: event_count\n  rules: [dns_nxdomain]\n  group-by: [query]\n  timespan: 1m\n  condition: {lte: 3}\n',
      /condition "lte"/,
    ],
    [
      'an unknown rule',
      '  type: event_count\n  rules: [nope]\n  group-by: [query]\n  timespan: 1m\n  condition: {gte: 3}\n',
      /"nope", which is not a rule of this file/,
    ],
    [
      'an unmapped group-by field',
      '  type: event_count\n  rules: [dns_nxdomain]\n  group-by: [ComputerName]\n  timespan: 1m\n  condition: {gte: 3}\n',
      /field "ComputerName" is not in mapping "sigma-dns"/,
    ],
    [
      'a bad timespan',
      '  type: event_count\n  rules: [dns_nxdomain]\n  group-by: [query]\n  timespan: 1 hour\n  condition: {gte: 3}\n',
      /timespan/,
    ],
  ])('refuses %s by name, and keeps the rule', (_name, patch, message) => {
    const col = importSigmaCollection(withCorrelation(patch), MAPPINGS, 'mr.yml');
    expect(col.rules).toHaveLength(1);
    expect(col.correlations).toHaveLength(0);
    expect(col.issues).toHaveLength(1);
    expect(col.issues[0]).toMatchObject({ file: 'mr.yml', line: 1, code: 'E_SIGMA_UNSUPPORTED' });
    expect(col.issues[0]!.message).toMatch(message);
  });

  it('refuses a correlation whose rule was refused, naming it, with the line of its own document', () => {
    const text = sigmaText.replace('rcode_name: NXDOMAIN', 'dns.id: 5');
    const col = importSigmaCollection(text, MAPPINGS, 'mr.yml');
    expect(col.rules).toHaveLength(0);
    expect(col.issues.map((i) => [i.line, i.message])).toEqual([
      [29, expect.stringMatching(/field "dns.id" is not in mapping/)],
      [1, expect.stringMatching(/"dns_nxdomain", which was refused/)],
    ]);
  });
});
