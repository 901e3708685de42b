/**
 * Large value lists: equality lists lower to one hashed-set membership, prefix/suffix/contains lists
 * to one multi-pattern pass, case-insensitive lists to the same over foldCase(); and no schema-valid
 * pack hits a CEL length, AST or list limit. Semantics are checked against the plain reading of the
 * IR (a value holds when String.includes/startsWith/endsWith/=== does, or RE2 (?i) for folded ones),
 * in the closure evaluator and the cel-js fallback alike.
 */
import { describe, expect, it } from 'vitest';
import { detectionEngine, loadPackText } from '../../src/detection/install.js';
import { CEL_ENV_LOWERED, celContext } from '../../src/policy/celenv.js';
import { compileRegex, quoteRegex } from '../../src/policy/regex.js';
import type { SecurityEvent } from '../../src/events/types.js';
import { MAX_PACK_BYTES, MAX_VALUES_PER_PREDICATE } from '../../src/detection/types.js';
import { http, load, packWith } from './helpers.js';
import { rng } from '../support/random.js';

type Op = 'equals' | 'contains' | 'startswith' | 'endswith';
const OPS: Op[] = ['equals', 'contains', 'startswith', 'endswith'];

/** The reference reading of one predicate over one string. */
function reference(op: Op, ci: boolean, text: string, values: string[]): boolean {
  if (ci) {
    const anchor = (v: string) =>
      op === 'equals' ? `^${v}$` : op === 'startswith' ? `^${v}` : op === 'endswith' ? `${v}$` : v;
    return values.some((v) => compileRegex(`(?i)${anchor(quoteRegex(v))}`).test(text));
  }
  return values.some((v) =>
    op === 'equals'
      ? text === v
      : op === 'contains'
        ? text.includes(v)
        : op === 'startswith'
          ? text.startsWith(v)
          : text.endsWith(v),
  );
}

const ALPHABET = [
  'a',
  'b',
  'A',
  'B',
  'k',
  'K',
  '\u212a',
  's',
  'ſ',
  'S',
  'σ',
  'ς',
  'Σ',
  'ä',
  'Ä',
  '/',
  '.',
  '😀',
  'e\u0301',
];

function word(r: () => number, max: number): string {
  let s = '';
  const n = 1 + Math.floor(r() * max);
  for (let i = 0; i < n; i++) s += ALPHABET[Math.floor(r() * ALPHABET.length)]!;
  return s;
}

function both(
  rule: ReturnType<typeof load>['rules'][number],
  ev: SecurityEvent,
): [boolean, boolean] {
  const closure = rule.compiled.program({ ...(ev as object), cel: () => celContext(ev) }) === true;
  const celjs = CEL_ENV_LOWERED.parse(rule.condition)(celContext(ev)) === true;
  return [closure, celjs];
}

describe('large value lists', () => {
  it('a hand-written pack with 150 User-Agent values validates, loads and matches its last value', () => {
    const values = Array.from(
      { length: 150 },
      (_, i) => `Mozilla/5.0 (compatible; Scanner-${i}/1.0; +https://scanner.example/${i})`,
    );
    const m = { field: 'http.request.headers.user-agent', equals: values, case_insensitive: true };
    const { engine } = detectionEngine([load(packWith(m))]);
    expect(
      engine.decide(http({ headers: { 'user-agent': values[149]!.toUpperCase() } })).findings,
    ).toHaveLength(1);
    expect(
      engine.decide(http({ headers: { 'user-agent': `${values[149]!} ` } })).findings,
    ).toHaveLength(0);
  });

  it.each(OPS.flatMap((op) => [false, true].map((ci) => [op, ci] as const)))(
    '%s (case_insensitive %s) over 1,000 values agrees with the reference in both evaluators',
    (op, ci) => {
      const r = rng(op.length * 7 + (ci ? 1 : 0));
      const values = Array.from({ length: MAX_VALUES_PER_PREDICATE }, () => word(r, 6));
      const rule = load(
        packWith({ field: 'http.request.path', [op]: values, case_insensitive: ci }),
      ).rules[0]!;
      expect(rule.condition.length).toBeGreaterThan(4000);
      const texts = [
        ...values.slice(0, 40),
        ...values.slice(0, 40).map((v) => `x${v.toUpperCase()}y`),
        ...Array.from({ length: 200 }, () => word(r, 12)),
        '',
      ];
      let hits = 0;
      for (const text of texts) {
        const want = reference(op, ci, text, values);
        const [closure, celjs] = both(rule, http({ path: text }));
        expect([text, closure, celjs]).toEqual([text, want, want]);
        if (want) hits++;
      }
      expect(hits).toBeGreaterThan(20);
      expect(hits).toBeLessThan(texts.length);
    },
  );

  it('lowers equality lists to `in [...]` and the others to containsAny/startsWithAny/endsWithAny', () => {
    const c = (m: Record<string, unknown>) =>
      load(packWith({ field: 'http.request.path', ...m })).rules[0]!.condition;
    expect(c({ equals: ['/a', '/b'] })).toBe('(http.request.path in ["/a", "/b"])');
    expect(c({ contains: ['a', 'b'] })).toBe('http.request.path.containsAny(["a", "b"])');
    expect(c({ startswith: ['/A'], case_insensitive: true })).toBe(
      'http.request.path.foldCase().startsWith("/a")',
    );
    expect(c({ endswith: ['.EXE', '.dll'], case_insensitive: true })).toBe(
      'http.request.path.foldCase().endsWithAny([".exe", ".dll"])',
    );
  });

  it('an element-wise list field and an MCP argument take value lists too', () => {
    const argv = load(
      packWith(
        {
          field: 'process.activity.argv',
          contains: ['--PASSWORD', 'token='],
          case_insensitive: true,
        },
        { event_type: 'process.exec' },
      ),
    ).rules[0]!;
    expect(argv.condition).toBe(
      'process.activity.argv.exists(x, x.foldCase().containsAny(["--password", "token="]))',
    );
  });

  it('no schema-valid pack hits a CEL limit: a 1 MiB pack of long values and a 1,999-wide any both compile', () => {
    const long = Array.from(
      { length: MAX_VALUES_PER_PREDICATE },
      (_, i) => `${i}-${'v'.repeat(1000)}`,
    );
    const big = packWith({
      field: 'http.request.headers.user-agent',
      contains: long,
      case_insensitive: true,
    });
    expect(big.length).toBeLessThan(MAX_PACK_BYTES);
    expect(big.length).toBeGreaterThan(MAX_PACK_BYTES * 0.9);
    const r1 = loadPackText(big);
    expect(r1.ok ? 'ok' : r1.issues).toBe('ok');
    const wide = Array.from({ length: 1999 }, (_, i) => ({
      field: 'http.request.headers.user-agent',
      equals: [`agent-${i}`, `other-${i}`],
    }));
    const r2 = loadPackText(packWith({ any: wide }));
    expect(r2.ok ? 'ok' : r2.issues).toBe('ok');
    if (r2.ok) {
      const { engine } = detectionEngine([r2.value]);
      expect(
        engine.decide(http({ headers: { 'user-agent': 'other-1998' } })).findings,
      ).toHaveLength(1);
    }
  });
});
