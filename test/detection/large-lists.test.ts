/**
 * Large value lists (up to the schema's 1,000 values per predicate) lower without hitting a CEL
 * limit: equality lists to one membership test (a hashed set), prefix / suffix / contains lists to
 * a few RE2 alternations. The lowered rule decides exactly as one test per value would — checked
 * against a plain JS oracle on the first, middle and last values and on near misses, in the
 * closure compiler and in the cel-js evaluator.
 */
import { describe, expect, it } from 'vitest';
import { lowerRule } from '../../src/detection/lower.js';
import { compileCondition } from '../../src/policy/compile.js';
import { project } from '../../src/policy/projection.js';
import { CEL_ENV_GENERATED, MAX_CONDITION_LENGTH } from '../../src/policy/celenv.js';
import { http, load, packWith } from './helpers.js';

const N = 1000;
const values = Array.from({ length: N }, (_, i) => `Mozilla/5.0 (agent-${i}; x64) tool/${i}.${i % 7}`);
const ops = {
  equals: (s: string, v: string) => s === v,
  contains: (s: string, v: string) => s.includes(v),
  startswith: (s: string, v: string) => s.startsWith(v),
  endswith: (s: string, v: string) => s.endsWith(v),
} as const;

describe.each(Object.keys(ops) as (keyof typeof ops)[])('%s over 1,000 values', (op) => {
  const pack = load(packWith({ field: 'http.request.headers.user-agent', [op]: values }));
  const rule = pack.rules[0]!;
  const inputs = [values[0]!, values[N / 2]!, values[N - 1]!, `x ${values[N - 1]} y`, `${values[3]}!`, `!${values[3]}`, 'Mozilla/5.0 (agent-1000; x64) tool/1000.6', ''];

  it('lowers to a condition no longer than a few patterns, past the hand-written limit only as generated', () => {
    expect(rule.condition.length).toBeGreaterThan(MAX_CONDITION_LENGTH);
    expect(compileCondition(rule.condition).ok).toBe(false);
    expect(compileCondition(rule.condition, { generated: true }).ok).toBe(true);
    expect(rule.compiled.engine).toBe('closure');
    expect((rule.condition.match(/\.matches\(/g) ?? []).length).toBeLessThanOrEqual(op === 'equals' ? 0 : 2);
  });

  it.each(inputs.map((s) => [s]))('decides %j as one test per value would', (ua) => {
    const want = values.some((v) => ops[op](ua, v));
    const event = http({ headers: { 'user-agent': ua } });
    expect(rule.compiled.program(project(event))).toBe(want);
    // The cel-js evaluator on the same text.
    const parsed = CEL_ENV_GENERATED.parse(rule.condition);
    expect(parsed(project(event).cel())).toBe(want);
  });
});

it('lowerRule keeps short lists as one test per value', () => {
  const pack = load(packWith({ field: 'http.request.host', equals: ['a.test', 'b.test'] }));
  expect(lowerRule(pack.rules[0]!.rule).condition).toBe('((http.request.host == "a.test") || (http.request.host == "b.test"))');
});
