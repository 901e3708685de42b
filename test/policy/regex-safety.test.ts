import { describe, expect, it } from 'vitest';
import { checkRegex, foldCaseRegex } from '../../src/policy/regex-safety.js';

describe('regex safety heuristic', () => {
  it.each([
    ['(a+)+$', 'nested quantifiers'],
    ['^(\\w+\\s?)*$', 'nested quantifiers'],
    ['(x*y)*', 'nested quantifiers'],
    ['(a|ab)*', 'overlapping alternatives'],
    ['(\\w|\\d)+', 'overlapping alternatives'],
    ['(?:ab|ac){2,}', 'overlapping alternatives'],
    ['(a|)+', 'match empty'],
    ['(a)\\1', 'backreferences'],
    ['(?<n>x)\\k<n>', 'backreferences'],
  ])('refuses %s as catastrophic (%s)', (pattern, why) => {
    expect(checkRegex(pattern)).toMatch(why);
  });

  it.each(['abc.*def', '^[a-z0-9.-]+\\.evil\\.com$', '(a|b)*', '\\d+\\d+', '(?:ab|cd){2,}', '(a+){2}', '^(?:GET|POST) /'])(
    'accepts %s',
    (pattern) => {
      expect(checkRegex(pattern)).toBeUndefined();
    },
  );

  it('reports a syntax error as a bad regex', () => {
    expect(checkRegex('([ab]')).toMatch(/^bad regex/);
  });

  it('bounds the pattern length', () => {
    expect(checkRegex('a'.repeat(5000))).toMatch(/longer than/);
  });
});

describe('case folding for case-insensitive matches', () => {
  it('rewrites letters, classes and ranges but not escapes, counts or group names', () => {
    expect(foldCaseRegex('^Ab[c-f]\\d{2,3}(?<nm>x)[^A-Z]\\x41$')).toBe('^[Aa][bB][c-fC-F]\\d{2,3}(?<nm>[xX])[^A-Za-z]\\x41$');
  });

  it.each([
    ['^token=[a-z]+$', 'TOKEN=ABC', true],
    ['^token=[a-z]+$', 'token=abc', true],
    ['^token=[a-z]+$', 'token=12', false],
    ['evil\\.com$', 'x.EVIL.COM', true],
  ])('folded %s against %s is %s', (pattern, input, expected) => {
    expect(new RegExp(foldCaseRegex(pattern)).test(input)).toBe(expected);
  });
});
