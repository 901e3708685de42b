/**
 * foldCase() equates exactly the code points RE2's (?i) equates: every folded code point matches its
 * representative under (?i), and no code point outside the table folds with anything in it
 * (U+0000…U+1FFFF, where every cased letter lives).
 */
import { describe, expect, it } from 'vitest';
import {
  foldCase,
  foldCaseList,
  foldCodePoint,
  foldedCodePoints,
} from '../../src/policy/casefold.js';
import { compileRegex, quoteRegex } from '../../src/policy/regex.js';

const ch = (cp: number) => String.fromCodePoint(cp);

describe('foldCase', () => {
  it('folds K/k/Kelvin, S/s/long s, the three sigmas and Ä/ä to one representative each (the lowest lower-case member)', () => {
    expect(foldCase('K\u212ak')).toBe('kkk');
    expect(foldCase('Sſs')).toBe('sss');
    expect(foldCase('Σσς')).toBe('ςςς');
    expect(foldCase('ÄPFEL 😀 e\u0301')).toBe('äpfel 😀 e\u0301');
    expect(foldCase('İı')).toBe('İı'); // RE2 folds neither dotted I nor dotless ı with i
  });

  it('agrees with RE2 (?i) on every code point of U+0000…U+1FFFF', () => {
    const members = foldedCodePoints();
    const inTable = new Set(members);
    for (const cp of members) {
      expect(
        compileRegex(`(?i)^${quoteRegex(ch(cp))}$`).test(ch(foldCodePoint(cp))),
        cp.toString(16),
      ).toBe(true);
    }
    // Group the table into orbits; RE2 must not fold a member with another orbit's member…
    const all = members.map(ch).join('\n');
    let wrong = 0;
    for (const cp of members) {
      const rep = foldCodePoint(cp);
      const others = members
        .filter((d) => foldCodePoint(d) !== rep)
        .map(ch)
        .join('\n');
      if (compileRegex(`(?i)${quoteRegex(ch(cp))}`).test(others)) wrong++;
    }
    // …nor any code point outside the table with anything in it.
    for (let cp = 0; cp < 0x20000; cp++) {
      if ((cp >= 0xd800 && cp <= 0xdfff) || inTable.has(cp) || cp === 10) continue;
      if (compileRegex(`(?i)${quoteRegex(ch(cp))}`).test(all)) wrong++;
    }
    expect(wrong).toBe(0);
  }, 60_000);

  it('foldCaseList folds each value exactly as foldCase does, ASCII lists in one pass or not', () => {
    const lists = [
      ['Mozilla/5.0', 'CURL/8', '', 'a\tB'],
      ['K', '\u212a', 'Straße', 'ΣΑΣ', '😀X'],
      ['A\u0000B', 'C'], // a value holding the separator of the joined pass
      [],
    ];
    for (const values of lists) {
      const folded = foldCaseList(values);
      expect(folded).toEqual(values.map(foldCase));
      expect(folded).toHaveLength(values.length);
    }
  });
});
