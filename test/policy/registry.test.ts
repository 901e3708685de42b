import { describe, expect, it } from 'vitest';
import { PolicyEngine } from '../../src/policy/engine.js';
import { RuleRegistry } from '../../src/policy/registry.js';
import type { RuleDefinition } from '../../src/policy/types.js';
import { fixture } from './helpers.js';

const reference = fixture('reference-http.json');

function def(id: string, condition: string, extra: Partial<RuleDefinition> = {}): RuleDefinition {
  return {
    id,
    description: '',
    condition,
    action: 'block',
    priority: 0,
    mode: 'enforce',
    reason: `reason ${id}`,
    enabled: true,
    severity: null,
    tags: [],
    pack_id: 'test',
    kind: 'enforcement',
    ...extra,
  };
}

describe('the runtime registry', () => {
  it('installs, updates, disables and deletes rules, bumping the generation each time', () => {
    const registry = new RuleRegistry();
    const engine = new PolicyEngine(registry);
    expect(registry.generation).toBe(0);
    expect(registry.install(def('r', 'http.request.host == "googleapis.com"')).ok).toBe(true);
    expect(engine.decide(reference)).toMatchObject({
      action: 'block',
      rule_id: 'r',
      generation: 1,
    });
    expect(registry.install(def('r', 'http.request.host == "other"')).ok).toBe(true);
    expect(engine.decide(reference)).toMatchObject({ action: 'allow', generation: 2 });
    registry.install(def('r', 'http.request.host == "googleapis.com"'));
    registry.setEnabled('r', false);
    expect(engine.decide(reference)).toMatchObject({ action: 'allow', generation: 4 });
    registry.setEnabled('r', true);
    expect(engine.decide(reference).rule_id).toBe('r');
    expect(registry.delete('r')).toBe(true);
    expect(registry.delete('r')).toBe(false);
    expect(engine.decide(reference)).toMatchObject({ action: 'allow', generation: 6 });
  });

  it('rejects a rule that does not compile and leaves the running plan untouched', () => {
    const registry = new RuleRegistry();
    registry.install(def('good', 'http.request.host == "googleapis.com"'));
    const before = registry.snapshot();
    const res = registry.install(def('good', 'http.request.hots == "x"'));
    expect(res.ok).toBe(false);
    if (!res.ok) expect(res.issues[0]!.message).toContain('did you mean "http.request.host"');
    expect(registry.snapshot()).toBe(before);
    expect(new PolicyEngine(registry).decide(reference).rule_id).toBe('good');
  });

  it('carries match counters over an update', () => {
    const registry = new RuleRegistry();
    const engine = new PolicyEngine(registry);
    registry.install(def('r', 'http.request.host == "googleapis.com"'));
    engine.decide(reference);
    engine.decide(reference);
    registry.install(
      def('r', 'http.request.host.endsWith("googleapis.com")', { reason: 'updated' }),
    );
    engine.decide(reference);
    const info = registry.get('r')!;
    expect(info.counters.matches).toBe(3);
    expect(info.counters.last_event_id).toBe('evt-reference-0001');
    expect(info.reason).toBe('updated');
  });

  it('compiles only the changed rule on update', () => {
    const registry = new RuleRegistry();
    for (let i = 0; i < 20; i++) registry.install(def(`r${i}`, `http.request.path == "/p${i}"`));
    const before = new Map(registry.snapshot().rules.map((r) => [r.def.id, r.condition]));
    registry.install(def('r7', 'http.request.path == "/changed"'));
    for (const r of registry.snapshot().rules) {
      if (r.def.id === 'r7') expect(r.condition).not.toBe(before.get('r7'));
      else expect(r.condition).toBe(before.get(r.def.id));
    }
  });

  it('replaces everything atomically, or nothing when one rule fails', () => {
    const registry = new RuleRegistry();
    registry.install(def('keep', 'http.request.method == "POST"'));
    const before = registry.snapshot();
    const bad = registry.replaceAll([
      def('a', 'http.request.host == "x"'),
      def('b', 'http.request.nope == 1'),
    ]);
    expect(bad.ok).toBe(false);
    expect(registry.snapshot()).toBe(before);
    const good = registry.replaceAll([def('a', 'http.request.host == "x"')], 'block');
    expect(good).toEqual({ ok: true, value: 1 });
    expect(registry.list().map((r) => r.id)).toEqual(['a']);
    expect(registry.snapshot().defaultAction).toBe('block');
  });

  it('gives every decision one consistent plan while rules change under concurrent decide() calls', async () => {
    // Two rule sets that must never mix: in set A both rules say "A", in set B both say "B".
    const setA = [
      def('first', 'http.request.host == "googleapis.com"', { reason: 'A', priority: 1 }),
      def('second', 'http.request.method == "POST"', { reason: 'A', mode: 'shadow', priority: 2 }),
    ];
    const setB = [
      def('first', 'http.request.host == "googleapis.com"', { reason: 'B', priority: 2 }),
      def('second', 'http.request.method == "POST"', { reason: 'B', priority: 1 }),
    ];
    const registry = new RuleRegistry();
    registry.replaceAll(setA);
    const engine = new PolicyEngine(registry);
    const expectedFor = new Map<number, string>([[registry.generation, 'first:A']]);
    let stop = false;
    const writer = (async () => {
      for (let i = 0; i < 200; i++) {
        const next = i % 2 === 0 ? setB : setA;
        registry.replaceAll(next);
        expectedFor.set(registry.generation, next === setA ? 'first:A' : 'second:B');
        await new Promise((r) => setImmediate(r));
      }
      stop = true;
    })();
    const seen: { generation: number; got: string; matches: string }[] = [];
    const readers = Array.from({ length: 8 }, async () => {
      while (!stop) {
        for (let k = 0; k < 50; k++) {
          const d = engine.decide(reference);
          seen.push({
            generation: d.generation,
            got: `${d.rule_id}:${d.reason.slice(-1)}`,
            matches: d.matches.map((m) => `${m.rule_id}${m.decisive ? '*' : ''}`).join(','),
          });
        }
        await new Promise((r) => setImmediate(r));
      }
    });
    await Promise.all([writer, ...readers]);
    expect(seen.length).toBeGreaterThan(1000);
    expect(new Set(seen.map((s) => s.generation)).size).toBeGreaterThan(50);
    for (const s of seen) {
      expect(s.got).toBe(expectedFor.get(s.generation));
      expect(s.matches).toBe(s.got === 'first:A' ? 'first*,second' : 'second*,first');
    }
  });
});
