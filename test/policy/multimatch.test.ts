/**
 * The multi-pattern matchers (containsAny / startsWithAny / endsWithAny) against the plain reading
 * (String.includes / startsWith / endsWith over each value): random lists in any order, with
 * repeats, shared prefixes and suffixes, values that are prefixes of others, the empty value,
 * surrogate pairs and lone surrogates — and matchers built one after another, since building reuses
 * storage.
 */
import { describe, expect, it } from 'vitest';
import { multiMatcher, naiveMultiMatch, type MultiOp } from '../../src/policy/multimatch.js';
import { rng } from '../support/random.js';

const OPS: MultiOp[] = ['contains', 'startsWith', 'endsWith'];
const UNITS = ['a', 'b', 'c', 'ab', 'ba', '/', '😀', '\ud83d', '\ude00', 'é', 'z'];

function word(r: () => number, max: number): string {
  let s = '';
  const n = Math.floor(r() * (max + 1));
  for (let i = 0; i < n; i++) s += UNITS[Math.floor(r() * UNITS.length)]!;
  return s;
}

describe('multi-pattern matchers', () => {
  it('agree with includes / startsWith / endsWith on random lists and inputs', () => {
    const r = rng(21);
    let checked = 0;
    let matched = 0;
    for (let round = 0; round < 300; round++) {
      const values = Array.from({ length: 1 + Math.floor(r() * 40) }, () => word(r, 6));
      // Half the rounds sorted, so the shared-prefix shortcut of the build is taken too.
      if (round % 2 === 0) values.sort();
      const nonEmpty = values.map((v) => (v === '' && round % 3 !== 0 ? 'q' : v));
      for (const op of OPS) {
        const m = multiMatcher(op, nonEmpty);
        for (let k = 0; k < 20; k++) {
          const text =
            k < 5
              ? `${word(r, 3)}${nonEmpty[Math.floor(r() * nonEmpty.length)]}${word(r, 3)}`
              : word(r, 12);
          const want = naiveMultiMatch(op, text, nonEmpty);
          expect(m.test(text), `${op} ${JSON.stringify(nonEmpty)} on ${JSON.stringify(text)}`).toBe(
            want,
          );
          checked++;
          if (want) matched++;
        }
      }
    }
    expect(checked).toBe(300 * 3 * 20);
    // Both outcomes are well represented, so the comparison says something.
    expect(matched).toBeGreaterThan(checked / 5);
    expect(checked - matched).toBeGreaterThan(checked / 5);
  });

  it('a node with many children is searched correctly (binary search over sorted units)', () => {
    const values = Array.from({ length: 300 }, (_, i) => `${String.fromCharCode(0x41 + i)}x`);
    for (const op of OPS) {
      const m = multiMatcher(op, values.slice().reverse());
      for (const v of values) expect(m.test(`--${v}--`)).toBe(op === 'contains');
      expect(m.test(values[299]!)).toBe(true);
      expect(m.test(`${String.fromCharCode(0x41 + 300)}x`)).toBe(false);
    }
  });

  it('a trie past 65,536 nodes (32-bit node numbers) matches like a small one', () => {
    const r = rng(65537);
    const values = Array.from({ length: 400 }, () =>
      Array.from({ length: 200 }, () => String.fromCharCode(0x61 + Math.floor(r() * 26))).join(''),
    );
    expect(values.join('').length).toBeGreaterThan(65_536); // distinct random tails: one node a character
    for (const op of OPS) {
      const m = multiMatcher(op, values);
      for (const v of values.slice(-5)) {
        expect(m.test(`x${v}x`)).toBe(op === 'contains');
        expect(m.test(v)).toBe(true);
        expect(m.test(v.slice(1, -1))).toBe(naiveMultiMatch(op, v.slice(1, -1), values));
      }
    }
  });

  it('the empty value matches every input; no values match nothing', () => {
    for (const op of OPS) {
      expect(multiMatcher(op, ['zzz', '']).test('abc')).toBe(true);
      expect(multiMatcher(op, []).test('abc')).toBe(false);
    }
  });
});
