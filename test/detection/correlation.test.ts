/**
 * Correlations (event_count, value_count, temporal, temporal_ordered) through the engine the gateway
 * and backtest share: firing and not firing at the window edges, group-by, the reset after a
 * finding, chaining, eviction at the open-group limit, and validation of the IR section.
 */
import { describe, expect, it } from 'vitest';
import { CorrelationEngine, type CorrelationFinding } from '../../src/detection/correlate.js';
import { detectionEngine, loadPackText } from '../../src/detection/install.js';
import type { SecurityEvent } from '../../src/events/types.js';
import { correlationPack, dnsAnswer, exec } from './correlation-helpers.js';
import { load, readRepo } from './helpers.js';

/** Runs events through the rules and a fresh correlation engine; returns the findings per event. */
function run(
  packText: string,
  events: readonly SecurityEvent[],
  maxGroups?: number,
): { found: CorrelationFinding[]; engine: CorrelationEngine } {
  const pack = load(packText);
  const { engine } = detectionEngine([pack]);
  const corr = new CorrelationEngine([pack.pack], maxGroups);
  const found: CorrelationFinding[] = [];
  for (const e of events) found.push(...corr.observe(e, engine.decide(e).findings));
  return { found, engine: corr };
}

const count = (op: string, n: number, extra: Record<string, unknown> = {}) => ({
  id: 'c1',
  title: 'burst',
  type: 'event_count',
  rules: ['a'],
  group_by: [],
  timespan: '10s',
  condition: { [op]: n },
  severity: 'high',
  ...extra,
});

describe('event_count', () => {
  it('fires when the third event falls inside 10 s of the first, naming all three', () => {
    const evs = [exec('a', 0), exec('a', 5_000), exec('a', 9_999)];
    const { found } = run(correlationPack(['a'], [count('gte', 3)]), evs);
    expect(found).toHaveLength(1);
    expect(found[0]!.event_id).toBe(evs[2]!.common.event_id);
    expect(found[0]!.correlation).toMatchObject({ type: 'event_count', count: 3 });
    expect(found[0]!.correlation.event_ids).toEqual(evs.map((e) => e.common.event_id));
  });

  it('does not fire when the third event is exactly 10 s after the first (the window is open at its start)', () => {
    const { found } = run(correlationPack(['a'], [count('gte', 3)]), [
      exec('a', 0),
      exec('a', 5_000),
      exec('a', 10_000),
    ]);
    expect(found).toHaveLength(0);
  });

  it('gt counts one more than the bound; eq fires exactly at the count', () => {
    const evs = [exec('a', 0), exec('a', 1), exec('a', 2)];
    expect(run(correlationPack(['a'], [count('gt', 2)]), evs).found).toHaveLength(1);
    expect(run(correlationPack(['a'], [count('gt', 3)]), evs).found).toHaveLength(0);
    expect(run(correlationPack(['a'], [count('eq', 2)]), evs).found).toHaveLength(1);
  });

  it('starts a group over after it fires: six events make two findings, five make one', () => {
    const six = Array.from({ length: 6 }, (_, i) => exec('a', i * 100));
    expect(run(correlationPack(['a'], [count('gte', 3)]), six).found).toHaveLength(2);
    expect(run(correlationPack(['a'], [count('gte', 3)]), six.slice(0, 5)).found).toHaveLength(1);
  });

  it('counts events of any referenced rule, and ignores other rules', () => {
    const pack = correlationPack(['a', 'b', 'x'], [count('gte', 3, { rules: ['a', 'b'] })]);
    expect(run(pack, [exec('a', 0), exec('x', 1), exec('b', 2)]).found).toHaveLength(0);
    expect(run(pack, [exec('a', 0), exec('b', 1), exec('a', 2)]).found).toHaveLength(1);
  });

  it('keeps groups apart: group_by cwd needs three events in one directory', () => {
    const pack = correlationPack(['a'], [count('gte', 3, { group_by: ['process.activity.cwd'] })]);
    const mixed = [exec('a', 0, '/x'), exec('a', 1, '/y'), exec('a', 2, '/x'), exec('a', 3, '/y')];
    expect(run(pack, mixed).found).toHaveLength(0);
    const { found } = run(pack, [...mixed, exec('a', 4, '/y')]);
    expect(found).toHaveLength(1);
    expect(found[0]!.correlation.group).toEqual({ 'process.activity.cwd': '/y' });
    expect(found[0]!.matched_fields).toEqual(['process.activity.cwd']);
  });
});

describe('value_count', () => {
  const pack = correlationPack(
    ['a'],
    [
      {
        ...count('gte', 3),
        type: 'value_count',
        field: 'process.activity.command',
        group_by: ['process.activity.cwd'],
      },
    ],
  );
  it('counts distinct values: three different commands fire, a repeated one does not count', () => {
    expect(
      run(pack, [exec('a', 0, '/', 'x'), exec('a', 1, '/', 'x'), exec('a', 2, '/', 'y')]).found,
    ).toHaveLength(0);
    const { found } = run(pack, [
      exec('a', 0, '/', 'x'),
      exec('a', 1, '/', 'x'),
      exec('a', 2, '/', 'y'),
      exec('a', 3, '/', 'z'),
    ]);
    expect(found).toHaveLength(1);
    expect(found[0]!.correlation.count).toBe(3);
    expect(found[0]!.correlation.event_ids).toHaveLength(3);
  });

  it('a value seen again refreshes its time: x at 0 and 9 s, y and z at 12 s fire; x only at 0 does not', () => {
    expect(
      run(pack, [
        exec('a', 0, '/', 'x'),
        exec('a', 9_000, '/', 'x'),
        exec('a', 12_000, '/', 'y'),
        exec('a', 12_001, '/', 'z'),
      ]).found,
    ).toHaveLength(1);
    expect(
      run(pack, [exec('a', 0, '/', 'x'), exec('a', 12_000, '/', 'y'), exec('a', 12_001, '/', 'z')])
        .found,
    ).toHaveLength(0);
  });
});

describe('the shipped DNS tunnelling pack (value_count by parent domain)', () => {
  const text = readRepo('detection-ir/dns-tunnel-nxdomain.yaml');
  const names = (n: number, domain: string) =>
    Array.from({ length: n }, (_, i) => `x${i}q7.${domain}`);

  it('fires on the 21st distinct NXDOMAIN name under one domain within 60 s', () => {
    const evs = names(21, 't.example.org').map((q, i) => dnsAnswer(q, 'NXDOMAIN', i * 2_900));
    const { found } = run(text, evs);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({
      rule_id: 'dns-tunnel-nxdomain-burst',
      pack_id: 'dns-tunnel-nxdomain',
      severity: 'high',
      event_id: evs[20]!.common.event_id,
    });
    expect(found[0]!.correlation.group).toEqual({ 'dns.response.parent_domain': 't.example.org' });
    expect(found[0]!.correlation.event_ids).toEqual(evs.map((e) => e.common.event_id));
  });

  it('does not fire for 20 names, when the 21st comes 60 s after the first, for NOERROR, or across domains', () => {
    expect(
      run(
        text,
        names(20, 't.example.org').map((q, i) => dnsAnswer(q, 'NXDOMAIN', i)),
      ).found,
    ).toHaveLength(0);
    expect(
      run(
        text,
        names(21, 't.example.org').map((q, i) => dnsAnswer(q, 'NXDOMAIN', i === 20 ? 60_000 : i)),
      ).found,
    ).toHaveLength(0);
    expect(
      run(
        text,
        names(30, 't.example.org').map((q, i) => dnsAnswer(q, 'NOERROR', i)),
      ).found,
    ).toHaveLength(0);
    const across = [
      ...names(15, 'a.example.org').map((q, i) => dnsAnswer(q, 'NXDOMAIN', i)),
      ...names(15, 'b.example.org').map((q, i) => dnsAnswer(q, 'NXDOMAIN', 100 + i)),
    ];
    expect(run(text, across).found).toHaveLength(0);
  });

  it('counts one name asked many times once', () => {
    const same = Array.from({ length: 50 }, (_, i) =>
      dnsAnswer('one.t.example.org', 'NXDOMAIN', i),
    );
    expect(run(text, same).found).toHaveLength(0);
  });
});

describe('temporal and temporal_ordered', () => {
  const temporal = (type: string, extra: Record<string, unknown> = {}) =>
    correlationPack(
      ['a', 'b', 'c'],
      [
        {
          id: 'c1',
          title: 't',
          type,
          rules: ['a', 'b'],
          group_by: ['process.activity.cwd'],
          timespan: '5s',
          severity: 'medium',
          ...extra,
        },
      ],
    );

  it('temporal: both rules within 5 s in any order fire; 5 s apart or in two groups do not', () => {
    expect(run(temporal('temporal'), [exec('b', 0), exec('a', 4_999)]).found).toHaveLength(1);
    expect(run(temporal('temporal'), [exec('a', 0), exec('b', 5_000)]).found).toHaveLength(0);
    expect(
      run(temporal('temporal'), [exec('a', 0), exec('a', 1), exec('c', 2)]).found,
    ).toHaveLength(0);
    expect(run(temporal('temporal'), [exec('a', 0, '/x'), exec('b', 1, '/y')]).found).toHaveLength(
      0,
    );
  });

  it('temporal with condition gte 1 of 2 fires on either rule', () => {
    expect(run(temporal('temporal', { condition: { gte: 1 } }), [exec('b', 0)]).found).toHaveLength(
      1,
    );
  });

  it('temporal_ordered: a then b fires with both event ids; b then a does not', () => {
    const evs = [exec('a', 0), exec('b', 4_999)];
    const { found } = run(temporal('temporal_ordered'), evs);
    expect(found).toHaveLength(1);
    expect(found[0]!.correlation.event_ids).toEqual(evs.map((e) => e.common.event_id));
    expect(run(temporal('temporal_ordered'), [exec('b', 0), exec('a', 1)]).found).toHaveLength(0);
    expect(run(temporal('temporal_ordered'), [exec('a', 0), exec('b', 5_000)]).found).toHaveLength(
      0,
    );
  });

  it('temporal_ordered keeps the latest start: a, a (6 s later), b (1 s later) fires', () => {
    expect(
      run(temporal('temporal_ordered'), [exec('a', 0), exec('a', 6_000), exec('b', 7_000)]).found,
    ).toHaveLength(1);
  });
});

describe('chained correlations', () => {
  it('a temporal_ordered over an event_count: three a then one b', () => {
    const pack = correlationPack(
      ['a', 'b'],
      [
        { ...count('gte', 3), id: 'many-a' },
        {
          id: 'then-b',
          title: 'many a then b',
          type: 'temporal_ordered',
          rules: ['many-a', 'b'],
          timespan: '1m',
          severity: 'critical',
        },
      ],
    );
    const { found } = run(pack, [exec('a', 0), exec('a', 1), exec('a', 2), exec('b', 3)]);
    expect(found.map((f) => f.rule_id)).toEqual(['many-a', 'then-b']);
  });
});

describe('bounded memory', () => {
  const pack = correlationPack(['a'], [count('gte', 5, { group_by: ['process.activity.cwd'] })]);

  it('evicts the least recently fed open group at the limit and counts it', () => {
    const { engine } = run(pack, [exec('a', 0, '/1'), exec('a', 1, '/2'), exec('a', 2, '/3')], 2);
    expect(engine.stats()).toMatchObject({ open_groups: 2, evictions: 1, expired: 0 });
  });

  it('an evicted group starts from nothing: /1 loses its four events', () => {
    const evs = [
      ...[0, 1, 2, 3].map((t) => exec('a', t, '/1')),
      exec('a', 4, '/2'),
      exec('a', 5, '/3'),
      exec('a', 6, '/1'),
    ];
    expect(run(pack, evs, 2).found).toHaveLength(0);
    expect(run(pack, evs, 3).found).toHaveLength(1);
  });

  it('drops groups whose window passed as expired, not evicted', () => {
    const { engine } = run(
      pack,
      [exec('a', 0, '/1'), exec('a', 1, '/2'), exec('a', 20_000, '/3'), exec('a', 20_001, '/4')],
      3,
    );
    expect(engine.stats()).toMatchObject({ open_groups: 2, evictions: 0, expired: 2 });
  });
});

describe('reload', () => {
  it('keeps the open groups of an unchanged correlation and drops those of a changed one', () => {
    const text = correlationPack(['a'], [count('gte', 3)]);
    const pack = load(text);
    const { engine } = detectionEngine([pack]);
    const corr = new CorrelationEngine([pack.pack]);
    const feed = (e: SecurityEvent) => corr.observe(e, engine.decide(e).findings);
    feed(exec('a', 0));
    feed(exec('a', 1));
    corr.replace([load(text).pack]); // the same definition, reloaded
    expect(feed(exec('a', 2))).toHaveLength(1);
    feed(exec('a', 3));
    feed(exec('a', 4));
    corr.replace([load(correlationPack(['a'], [count('gte', 3, { timespan: '20s' })])).pack]);
    expect(corr.stats().open_groups).toBe(0);
    expect(feed(exec('a', 5))).toHaveLength(0);
  });
});

describe('validation of correlations', () => {
  const issues = (c: Record<string, unknown>) => {
    const r = loadPackText(correlationPack(['a', 'b'], [c]));
    return r.ok ? [] : r.issues.map((i) => `${i.path}: ${i.message}`);
  };
  it.each([
    [{ condition: { lt: 3 } }, /lt.*not supported.*lower bound/],
    [{ condition: { gte: 3, lte: 9 } }, /not supported/],
    [{ rules: ['nope'] }, /"nope" is not a rule or correlation of this pack/],
    [{ timespan: '10 minutes' }, /number and a unit/],
    [{ group_by: ['dns.request.qname'] }, /not carried by process.exec/],
    [{ type: 'value_count' }, /"field" is required/],
    [{ type: 'value_sum' }, /"type" must be one of/],
    [{ condition: { gte: 20_000 } }, /1…10000/],
  ])('refuses %j', (patch, message) => {
    expect(issues({ ...count('gte', 3), ...patch }).join('\n')).toMatch(message);
  });

  it('refuses correlations that reference each other in a cycle', () => {
    const r = loadPackText(
      correlationPack(
        ['a'],
        [
          { ...count('gte', 3), id: 'x', rules: ['y'] },
          { ...count('gte', 3), id: 'y', rules: ['x'] },
        ],
      ),
    );
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues.map((i) => i.message).join('\n')).toMatch(/cycle/);
  });

  it('accepts the shipped DNS tunnelling pack and its own tests', () => {
    const r = loadPackText(readRepo('detection-ir/dns-tunnel-nxdomain.yaml'));
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.value.pack.correlations[0]).toMatchObject({ timespan_ms: 60_000 });
  });
});
