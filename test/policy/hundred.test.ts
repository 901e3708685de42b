import { describe, expect, it } from 'vitest';
import { loadPackFiles } from '../../src/policy/packs.js';
import { PolicyEngine } from '../../src/policy/engine.js';
import { RuleRegistry } from '../../src/policy/registry.js';
import { fixture } from './helpers.js';

describe('the 100-rule fixture', () => {
  it('matches the reference event only with its last rule, all through closures', () => {
    const set = loadPackFiles([
      new URL('../fixtures/packs/hundred-rules.yaml', import.meta.url).pathname,
    ]);
    expect(set.ok).toBe(true);
    if (!set.ok) return;
    const registry = new RuleRegistry();
    registry.replaceAll(set.value.rules, 'allow', set.value.compiled);
    expect(registry.snapshot().byEventType['http.request']).toHaveLength(100);
    expect(registry.snapshot().rules.every((r) => r.condition.engine === 'closure')).toBe(true);
    const d = new PolicyEngine(registry).decide(fixture('reference-http.json'));
    expect(d).toMatchObject({ action: 'block', rule_id: 'full-policy', errors: [] });
    expect(d.matches.map((m) => m.rule_id)).toEqual(['full-policy']);
    expect(registry.list().reduce((n, r) => n + r.counters.evaluations, 0)).toBe(100);
  });
});
