/**
 * RE2 is the regex dialect of every rule, detection and Sigma `|re` (src/policy/regex.ts): one
 * semantics table run through both evaluators (the closure compiler and the cel-js fallback),
 * refusals of what RE2 does not have, named and located, and a property: random patterns from a
 * small RE2 grammar compile and match inputs up to 64 KiB without error.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileCondition } from '../../src/policy/compile.js';
import { project } from '../../src/policy/projection.js';
import { compileRegex, quoteRegex, regexProblem } from '../../src/policy/regex.js';
import { parsePack } from '../../src/policy/packs.js';
import { event } from './helpers.js';

const named = (process_name: string) =>
  event({
    common: { event_type: 'process.exec', process_name },
    process: { activity: { executable: '/bin/true', argv: ['true'] } },
  });

/** [pattern, input, expected] — CEL `matches` is a search (RE2 PartialMatch). */
const TABLE: readonly [string, string, boolean][] = [
  // The review's examples: RE2 meaning, not JS RegExp's.
  ['evil\\z', 'xevil', true],
  ['evil\\z', 'evil\n', false],
  ['\\Aevil', 'Aevil', false],
  ['\\Aevil', 'evil.com', true],
  ['^agent[[:digit:]]+$', 'agent123', true],
  ['^agent[[:digit:]]+$', 'agentd]', false],
  ['^agent[[:alpha:]]+$', 'agentabc', true],
  ['[[:^digit:]]', '123', false],
  // flags
  ['(?i)ÄPFEL', 'äpfel', true],
  ['(?i)k', '\u212a', true], // KELVIN SIGN folds to k
  ['(?i)Σ', 'ς', true],
  ['(?i)straße', 'STRASSE', false], // simple folding: ß is not SS
  ['a.b', 'a\nb', false],
  ['(?s)a.b', 'a\nb', true],
  ['^b$', 'a\nb\nc', false],
  ['(?m)^b$', 'a\nb\nc', true],
  ['(?U)a+', 'aaa', true],
  // Unicode classes and UTF-8
  ['^\\p{L}+$', '日本語', true],
  ['^\\p{L}+$', 'abc1', false],
  ['^\\p{Greek}+$', 'αβγ', true],
  ['\\PL', 'abc', false],
  ['^.$', 'é', true],
  ['^.$', '😀', true], // one code point, two UTF-16 units
  ['^[^a]$', '😀', true],
  // ordinary syntax
  ['^/admin(/|$)', '/admin/x', true],
  ['^/admin(/|$)', '/administrator', false],
  ['\\d{3}-\\d{4}', 'call 555-1234', true],
  ['x{2,}', 'x', false],
  ['(?P<word>\\w+)@', 'me@host', true],
  ['(?<word>\\w+)@', 'me@host', true],
  ['\\Qa.b\\E', 'axb', false],
  ['\\Qa.b\\E', 'a.b', true],
  ['\\x{1F600}', '😀', true],
  ['\\bcat\\b', 'a cat!', true],
  ['\\bcat\\b', 'concat', false],
  ['colou?r', 'color', true],
  ['(a|ab)(c|bcd)(d*)', 'abcd', true],
  ['', 'anything', true],
];

function outcome(text: string, input: string): boolean {
  const c = compileCondition(text);
  if (!c.ok) throw new Error(JSON.stringify(c.issues));
  return c.condition.program(project(named(input))) as boolean;
}

describe('RE2 semantics in both evaluators', () => {
  it.each(TABLE)('%j on %j is %s', (pattern, input, expected) => {
    const lit = JSON.stringify(pattern);
    const closure = compileCondition(`common.process_name.matches(${lit})`);
    expect(closure.ok && closure.condition.engine).toBe('closure');
    expect(outcome(`common.process_name.matches(${lit})`, input)).toBe(expected);
    // exists_one is not compiled to closures: this runs on cel-js, with celgate's RE2 matcher.
    const fallback = compileCondition(`[common.process_name].exists_one(x, x.matches(${lit}))`);
    expect(fallback.ok && fallback.condition.engine).toBe('cel-js');
    expect(outcome(`[common.process_name].exists_one(x, x.matches(${lit}))`, input)).toBe(expected);
  });

  it('has at least 30 rows, every example of the issue among them', () => {
    expect(TABLE.length).toBeGreaterThanOrEqual(30);
  });
});

describe('what RE2 does not have is refused by name, where it is', () => {
  it.each([
    ['(a)\\1', /back-references/, 3],
    ['(?<n>a)\\k<n>', /named back-references/, 7],
    ['x(?=y)', /look-ahead/, 1],
    ['x(?!y)', /look-ahead/, 1],
    ['(?<=y)x', /look-behind/, 0],
    ['(?<!y)x', /look-behind/, 0],
    ['(?>a+)b', /atomic groups/, 0],
    ['a++', /possessive/, 1],
    ['a{2}+', /possessive/, 3],
    ['evil\\Z', /\\Z is not RE2 syntax: use \\z/, 4],
    ['(unclosed', /not a valid RE2 pattern: missing \)/, 0],
    ['a{1001}', /not a valid RE2 pattern: invalid repetition size/, 1],
    ['a'.repeat(1025), /longer than 1024/, 1024],
  ])('%s', (pattern, message, offset) => {
    const p = regexProblem(pattern);
    expect(p?.message).toMatch(message);
    expect(p?.offset).toBe(offset);
  });

  it('refuses a pattern whose expanded program is larger than RE2 allows, saying so', () => {
    expect(regexProblem('((((a{0,30}){0,30}a|a){2}a)|a)')?.message).toMatch(
      /larger than RE2 allows once its counted repetitions are expanded/,
    );
  });

  it('accepts what only looked dangerous to a backtracking engine', () => {
    for (const p of [
      '(a+)+$',
      '(a|ab)*c',
      '(a{1,30}){1,30}$',
      '.*.*.*.*x$',
      '(\\w|\\d)+!',
      'a.*a.*b',
    ])
      expect(regexProblem(p)).toBeUndefined();
  });

  it('a rule with such a pattern does not compile, and the issue points at the construct', () => {
    const c = compileCondition(
      'http.request.path.startsWith("/a") &&\n  http.request.path.matches("^/x/(a)\\\\1")',
    );
    expect(c.ok).toBe(false);
    if (c.ok) return;
    // line 2: `  http.request.path.matches("^/x/(a)\\1")` — the \\1 starts at column 37.
    expect(c.issues[0]).toMatchObject({
      line: 2,
      column: 37,
      message: expect.stringMatching(
        /^matches\("\^\/x\/\(a\)\\1"\): back-references .* \(at offset 7 of the pattern\)$/,
      ),
    });
  });

  it('rules lint reports it as file:line:column', () => {
    const text =
      'id: p\nversion: "1"\ndefault_action: allow\nrules:\n  - id: r\n    action: block\n    condition: http.request.path.matches("x(?=y)")\n';
    const r = parsePack(text, 'p.yaml');
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.issues[0]).toMatchObject({ file: 'p.yaml', line: 7, path: 'rules[0].condition' });
    expect(r.issues[0]!.message).toMatch(
      /look-ahead assertions .* \(at offset 1 of the pattern\) \(condition line 1, column 29\)/,
    );
  });
});

describe('quoting and case folding helpers', () => {
  it('quotes every metacharacter', () => {
    const text = 'a.b*c+d?e(f)g|h[i]j{k}l^m$n\\o';
    expect(compileRegex(`^${quoteRegex(text)}$`).test(text)).toBe(true);
    expect(compileRegex(`^${quoteRegex(text)}$`).test(text.replace('.', 'x'))).toBe(false);
  });
});

/** A small RE2 grammar: literals, classes, groups, alternation, quantifiers; nesting depth ≤ 2. */
const atom = fc.constantFrom(
  'a',
  'b',
  'x',
  '.',
  '\\d',
  '\\w',
  '\\s',
  '[a-c]',
  '[^x]',
  '\\p{L}',
  '[[:digit:]]',
  'é',
  '\\.',
  '\\*',
);
const quantifier = fc.constantFrom('', '', '*', '+', '?', '{2}', '{1,3}', '{0,4}', '*?', '+?');
function alternation(depth: number): fc.Arbitrary<string> {
  const term: fc.Arbitrary<string> =
    depth === 0
      ? atom
      : fc.oneof(
          { weight: 3, arbitrary: atom },
          { weight: 1, arbitrary: alternation(depth - 1).map((s) => `(${s})`) },
          { weight: 1, arbitrary: alternation(depth - 1).map((s) => `(?:${s})`) },
        );
  const seq = fc
    .array(
      fc.tuple(term, quantifier).map(([t, q]) => `${t}${q}`),
      { minLength: 1, maxLength: 3 },
    )
    .map((xs) => xs.join(''));
  return fc.array(seq, { minLength: 1, maxLength: 3 }).map((xs) => xs.join('|'));
}
const pattern = alternation(2);

describe('property: random RE2 patterns compile and match large inputs without error', () => {
  it('for patterns from a small grammar, with optional anchors and flags, on inputs up to 64 KiB', () => {
    fc.assert(
      fc.property(
        pattern,
        fc.constantFrom('', '^', '(?i)', '(?s)', '(?m)^'),
        fc.constantFrom('', '$', '\\z'),
        fc.string({ maxLength: 64 }),
        fc.integer({ min: 0, max: 65536 }),
        (p, pre, post, seed, size) => {
          const full = `${pre}${p}${post}`;
          expect(regexProblem(full)).toBeUndefined();
          const input =
            seed.length === 0
              ? 'a'.repeat(size)
              : seed.repeat(Math.ceil(size / seed.length)).slice(0, size);
          expect(typeof compileRegex(full).test(input)).toBe('boolean');
        },
      ),
      { numRuns: 200 },
    );
  });
});
