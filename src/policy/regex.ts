/**
 * The one regex module: every pattern from a rule (CEL `matches()`, in the closure compiler and the
 * cel-js fallback), a Detection IR `matches` predicate, a case-insensitive IR predicate or a Sigma
 * `|re` value is compiled here, by RE2 (the `re2` package, Google's C++ library). CEL specifies RE2
 * syntax, and RE2 matches in time linear in the input whatever the pattern, so a guest-chosen
 * string cannot stall the event loop. Constructs RE2 does not have (back-references, look-around,
 * possessive quantifiers, atomic groups) are refused by name, with their offset in the pattern.
 * Why RE2 rather than a pure-JS port, with the measurements: docs/policy.md, "Regular expressions".
 *
 * Owns: pattern validation, compilation, matching, and the quoting used to lower literal values to
 * patterns. Pure (no I/O); must not run a pattern on anything but the string it is asked about.
 */
import RE2 from 're2';
import { CelgateError } from '../errors.js';
import { MAX_REGEX_LENGTH } from './regex-limits.js';

export { MAX_REGEX_LENGTH };

/** Why a pattern is refused, and where in the pattern (0-based offset) the problem starts. */
export interface RegexProblem {
  message: string;
  offset: number;
}

export interface Matcher {
  readonly source: string;
  /** True when the pattern matches somewhere in `text` (CEL `matches`: a search, not a full match). */
  test(text: string): boolean;
}

/** Constructs of other dialects that RE2 refuses, named so the refusal says what to change. */
const UNSUPPORTED: readonly { re: RegExp; what: string }[] = [
  {
    re: /\\[1-9]/,
    what: 'back-references (\\1 … \\9) are not supported: RE2 has none (they cannot be matched in linear time)',
  },
  { re: /\\k<[^>]*>/, what: 'named back-references (\\k<name>) are not supported: RE2 has none' },
  {
    re: /\(\?<[=!]/,
    what: 'look-behind assertions ((?<= …), (?<! …)) are not supported: RE2 has none',
  },
  {
    re: /\(\?[=!]/,
    what: 'look-ahead assertions ((?= …), (?! …)) are not supported: RE2 has none',
  },
  { re: /\(\?>/, what: 'atomic groups ((?> …)) are not supported: RE2 has none' },
  {
    re: /(?:[*+?]|\})\+/,
    what: 'possessive quantifiers (a*+, a++, a?+, a{n}+) are not supported: RE2 has none',
  },
  { re: /\\Z/, what: '\\Z is not RE2 syntax: use \\z (end of text) or $' },
  { re: /\\G/, what: '\\G is not RE2 syntax' },
];

/** Offset of the first match of `re` outside character classes, with escapes skipped. */
function findOutsideClass(pattern: string, re: RegExp): number {
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (!inClass) {
      const m = re.exec(pattern.slice(i));
      if (m !== null && m.index === 0) return i;
    }
    if (c === '\\') i++;
    else if (c === '[') inClass = true;
    else if (c === ']') inClass = false;
  }
  return -1;
}

function compile(pattern: string): RE2 {
  // 'u': the pattern and the input are Unicode (RE2's UTF-8 mode); no other flags — CEL has none,
  // inline (?i) (?s) (?m) (?U) work as RE2 defines them.
  return new RE2(pattern, 'u');
}

/** Returns why the pattern is refused, or undefined when RE2 compiles it. */
export function regexProblem(pattern: string): RegexProblem | undefined {
  if (pattern.length > MAX_REGEX_LENGTH)
    return {
      message: `the pattern is longer than ${MAX_REGEX_LENGTH} characters`,
      offset: MAX_REGEX_LENGTH,
    };
  try {
    compile(pattern);
    return undefined;
  } catch (err) {
    for (const u of UNSUPPORTED) {
      const at = findOutsideClass(pattern, u.re);
      if (at >= 0) return { message: u.what, offset: at };
    }
    // RE2's messages end with the offending fragment ("missing ): (ab"): point at it.
    const message = String((err as Error).message).replace(/^Invalid regular expression: /, '');
    const counts = /^invalid repetition size: \{(\d+)(?:,(\d*))?\}/.exec(message);
    const nested =
      counts !== null &&
      Number(counts[1]) <= 1000 &&
      (counts[2] === undefined || counts[2] === '' || Number(counts[2]) <= 1000);
    if (/pattern too large/.test(message) || nested) {
      return {
        message:
          'the pattern is larger than RE2 allows once its counted repetitions are expanded (e.g. (a{0,30}){0,30}); simplify it',
        offset: 0,
      };
    }
    const fragment = /: (.+)$/.exec(message)?.[1];
    const at = fragment === undefined ? -1 : pattern.indexOf(fragment);
    return { message: `not a valid RE2 pattern: ${message}`, offset: Math.max(0, at) };
  }
}

/** One sentence for a refused pattern, as rules and packs report it. */
export function describeProblem(pattern: string, p: RegexProblem): string {
  const shown = pattern.length > 60 ? `${pattern.slice(0, 57)}...` : pattern;
  return `matches("${shown}"): ${p.message} (at offset ${p.offset} of the pattern)`;
}

/**
 * Every input is encoded to UTF-8 into one reused buffer before RE2 reads it. Given a string, RE2
 * converts it itself into a fresh buffer per call: on short, always-new strings (a host, a path)
 * that cost about 1.7 µs per test against 0.25 µs this way, and on 1 MiB bodies the first-touch
 * page faults of the new memory cost more than the match (bench/policy.ts, the two-regex policy
 * and the adversarial evaluations).
 */
export const MAX_SCRATCH_BYTES = 16 * 1024 * 1024;
let scratch = Buffer.alloc(64 * 1024);

function search(re: RE2, text: string): boolean {
  const need = text.length * 3;
  if (need > scratch.length) {
    if (need > MAX_SCRATCH_BYTES) return re.test(text);
    scratch = Buffer.alloc(Math.min(MAX_SCRATCH_BYTES, Math.max(need, scratch.length * 2)));
  }
  const n = scratch.write(text, 'utf8');
  return re.test(scratch.subarray(0, n));
}

const cache = new Map<string, Matcher>();
/** Compiled patterns kept for reuse (rules recompile on every reload; most patterns repeat). */
export const MAX_CACHED_PATTERNS = 4096;

/** Compiles a pattern; throws E_RULE_COMPILE naming the problem when RE2 refuses it. */
export function compileRegex(pattern: string): Matcher {
  const hit = cache.get(pattern);
  if (hit !== undefined) return hit;
  const problem = regexProblem(pattern);
  if (problem !== undefined)
    throw new CelgateError('E_RULE_COMPILE', describeProblem(pattern, problem), {
      details: { offset: problem.offset },
    });
  const re = compile(pattern);
  const matcher: Matcher = { source: pattern, test: (text) => search(re, text) };
  if (cache.size >= MAX_CACHED_PATTERNS) cache.clear();
  cache.set(pattern, matcher);
  return matcher;
}

/** `text` as an RE2 pattern that matches exactly it (RE2's QuoteMeta for the metacharacters). */
export function quoteRegex(text: string): string {
  return text.replace(/[\\.+*?()|[\]{}^$]/g, '\\$&');
}

/**
 * A case-insensitive pattern for string predicates: `(?i)` makes RE2 compare under Unicode simple
 * case folding (K/k/K, σ/ς/Σ, Ä/ä), which CEL's ASCII-only `lowerAscii()` cannot.
 */
export function caseInsensitive(pattern: string): string {
  return `(?i)${pattern}`;
}
