import { describe, expect, it } from 'vitest';
import { compileCondition } from '../../src/policy/compile.js';
import { engineWith, fixture, FULL_POLICY, REFERENCE_EXPRESSIONS } from './helpers.js';

const reference = fixture('reference-http.json');
const dns = fixture('dns-request.json');
const noAuth = fixture('http-no-auth.json');

describe('the reference expressions', () => {
  it.each([...REFERENCE_EXPRESSIONS, FULL_POLICY])('compiles %s verbatim to closures', (text) => {
    const c = compileCondition(text);
    expect(c.ok).toBe(true);
    if (c.ok) expect(c.condition.engine).toBe('closure');
  });

  it.each([...REFERENCE_EXPRESSIONS, FULL_POLICY])('matches the reference event: %s', (text) => {
    const { engine } = engineWith([{ id: 'r', condition: text }]);
    const d = engine.decide(reference);
    expect(d.action).toBe('block');
    expect(d.rule_id).toBe('r');
    expect(d.errors).toEqual([]);
  });

  it.each([...REFERENCE_EXPRESSIONS, FULL_POLICY])(
    'is false, not an error, on a DNS event: %s',
    (text) => {
      const { engine, registry } = engineWith([{ id: 'r', condition: text }]);
      const d = engine.decide(dns);
      expect(d).toMatchObject({ action: 'allow', rule_id: null, mode: 'default', errors: [] });
      expect(registry.get('r')!.counters.evaluations).toBe(0); // http rules do not even run on DNS events
    },
  );

  it('the header rule and the full policy are false, not errors, without the header', () => {
    for (const text of ['http.request.header("authorization").exists()', FULL_POLICY]) {
      const { engine } = engineWith([{ id: 'r', condition: text }]);
      const d = engine.decide(noAuth);
      expect(d).toMatchObject({ action: 'allow', mode: 'default', errors: [] });
    }
  });

  it('header() is case-insensitive and value() reads the value', () => {
    const { engine } = engineWith([
      { id: 'r', condition: 'http.request.header("AUTHORIZATION").value().startsWith("Bearer ")' },
    ]);
    expect(engine.decide(reference).rule_id).toBe('r');
  });
});
