/**
 * Regex checks for `matches` predicates: validity (the JS RegExp dialect CEL's `matches` uses here),
 * a length bound, and a heuristic for catastrophic backtracking; plus the ASCII case-folding rewrite
 * used for case-insensitive `matches`. Pure; no I/O. Must not execute a pattern against input.
 *
 * Heuristic (conservative: it may refuse a safe pattern, rewrite it without the construct):
 *  1. nested quantifiers — a group repeated by an unbounded (or > 8) quantifier that contains an
 *     unbounded quantifier: `(a+)+`, `(\w+\s?)*`, `(x*y)*`;
 *  2. overlapping alternation under such a quantifier — two alternatives whose first characters
 *     can coincide, or an alternative that can match empty: `(a|ab)*`, `(\w|\d)+`, `(a|)+`;
 *  3. backreferences (`\1`, `\k<n>`), which no linear engine supports.
 * Adjacent overlapping quantifiers (`\d+\d+`) are polynomial, not exponential, and are accepted.
 */
import { MAX_REGEX_LENGTH } from './regex-limits.js';

const REPEAT_LIMIT = 8;

/**
 * 128 ASCII bits + one bit standing for every non-ASCII code unit, as five 32-bit words in plain
 * fields (allocating a typed array per set made vetting one pattern cost ~60 µs).
 */
class CharSet {
  w = [0, 0, 0, 0, 0];
  private set(c: number): void {
    const i = c < 128 ? c : 128;
    this.w[i >>> 5]! |= 1 << (i & 31);
  }
  static of(...codes: number[]): CharSet {
    const s = new CharSet();
    for (const c of codes) s.set(c);
    return s;
  }
  static range(lo: number, hi: number): CharSet {
    const s = new CharSet();
    for (let c = lo; c <= Math.min(hi, 127); c++) s.set(c);
    if (hi >= 128) s.set(128);
    return s;
  }
  add(o: CharSet): this {
    for (let i = 0; i < 5; i++) this.w[i]! |= o.w[i]!;
    return this;
  }
  /** Every ASCII code unit not in this set, plus all non-ASCII. */
  negate(): CharSet {
    const s = new CharSet();
    for (let i = 0; i < 4; i++) s.w[i] = ~this.w[i]!;
    s.w[4] = 1;
    return s;
  }
  intersects(o: CharSet): boolean {
    for (let i = 0; i < 5; i++) if ((this.w[i]! & o.w[i]!) !== 0) return true;
    return false;
  }
  without(c: number): this {
    this.w[c >>> 5]! &= ~(1 << (c & 31));
    return this;
  }
}

const DIGIT = CharSet.range(48, 57);
const WORD = CharSet.range(48, 57).add(CharSet.range(65, 90)).add(CharSet.range(97, 122)).add(CharSet.of(95));
const SPACE = CharSet.of(9, 10, 11, 12, 13, 32, 128);
const DOT = CharSet.range(0, 128).without(10).without(13);

interface Term {
  first: CharSet;
  nullable: boolean;
  /** Contains an unbounded quantifier somewhere inside. */
  unbounded: boolean;
}

class Unsafe extends Error {}

class Parser {
  i = 0;
  constructor(readonly p: string) {}
  peek(): string | undefined {
    return this.p[this.i];
  }
  /** alternation := sequence ('|' sequence)* ; returns the alternatives' summaries. */
  alternation(): Term[] {
    const alts = [this.sequence()];
    while (this.peek() === '|') {
      this.i++;
      alts.push(this.sequence());
    }
    return alts;
  }
  sequence(): Term {
    const first = new CharSet();
    let nullable = true;
    let unbounded = false;
    while (this.i < this.p.length && this.peek() !== '|' && this.peek() !== ')') {
      const t = this.term();
      if (nullable) first.add(t.first);
      nullable &&= t.nullable;
      unbounded ||= t.unbounded;
    }
    return { first, nullable, unbounded };
  }
  term(): Term {
    const atom = this.atom();
    const q = this.quantifier();
    if (q === undefined) return atom.term;
    const repeats = q.max > REPEAT_LIMIT;
    if (repeats && atom.alts !== undefined) {
      if (atom.term.unbounded) throw new Unsafe('nested quantifiers: a repeated group contains an unbounded quantifier');
      const alts = atom.alts;
      if (alts.length > 1) {
        for (let a = 0; a < alts.length; a++) {
          if (alts[a]!.nullable) throw new Unsafe('a repeated alternation has an alternative that can match empty');
          for (let b = a + 1; b < alts.length; b++) {
            if (alts[a]!.first.intersects(alts[b]!.first)) {
              throw new Unsafe('overlapping alternatives under a quantifier: two alternatives can start with the same character');
            }
          }
        }
      }
    }
    return { first: atom.term.first, nullable: atom.term.nullable || q.min === 0, unbounded: atom.term.unbounded || q.max === Infinity };
  }
  quantifier(): { min: number; max: number } | undefined {
    const c = this.peek();
    let q: { min: number; max: number } | undefined;
    if (c === '*') q = { min: 0, max: Infinity };
    else if (c === '+') q = { min: 1, max: Infinity };
    else if (c === '?') q = { min: 0, max: 1 };
    if (q !== undefined) this.i++;
    else if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(this.p.slice(this.i));
      if (m === null) return undefined;
      this.i += m[0].length;
      const min = Number(m[1]);
      q = { min, max: m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]) };
    } else return undefined;
    if (this.peek() === '?') this.i++;
    return q;
  }
  atom(): { term: Term; alts?: Term[] } {
    const c = this.p[this.i++]!;
    const single = (s: CharSet): { term: Term } => ({ term: { first: s, nullable: false, unbounded: false } });
    const empty = { term: { first: new CharSet(), nullable: true, unbounded: false } };
    switch (c) {
      case '^':
      case '$':
        return empty;
      case '.':
        return single(DOT);
      case '[':
        return single(this.charClass());
      case '\\': {
        const e = this.escape(false);
        return e === 'assertion' ? empty : single(e);
      }
      case '(': {
        let lookaround = false;
        if (this.p.startsWith('?:', this.i)) this.i += 2;
        else if (/^\?<?[=!]/.test(this.p.slice(this.i, this.i + 3))) {
          lookaround = true;
          this.i += this.p[this.i + 1] === '<' ? 3 : 2;
        } else if (this.p.startsWith('?<', this.i)) this.i = this.p.indexOf('>', this.i) + 1;
        const alts = this.alternation();
        this.i++; // ')'
        if (lookaround) return empty;
        const first = new CharSet();
        for (const a of alts) first.add(a.first);
        return { term: { first, nullable: alts.some((a) => a.nullable), unbounded: alts.some((a) => a.unbounded) }, alts };
      }
      default:
        return single(CharSet.of(c.charCodeAt(0)));
    }
  }
  escape(inClass: boolean): CharSet | 'assertion' {
    const c = this.p[this.i++] ?? '\\';
    switch (c) {
      case 'd': return DIGIT;
      case 'D': return DIGIT.negate();
      case 'w': return WORD;
      case 'W': return WORD.negate();
      case 's': return SPACE;
      case 'S': return SPACE.negate();
      case 'b': return inClass ? CharSet.of(8) : 'assertion';
      case 'B': return 'assertion';
      case 'n': return CharSet.of(10);
      case 'r': return CharSet.of(13);
      case 't': return CharSet.of(9);
      case 'k':
        if (!inClass && this.peek() === '<') throw new Unsafe('backreferences are not allowed');
        return CharSet.of(107);
      case 'x':
      case 'u':
      case 'c':
        return CharSet.range(0, 128); // a coded character: treat as any, conservatively
      default:
        if (/[1-9]/.test(c) && !inClass) throw new Unsafe('backreferences are not allowed');
        return CharSet.of(c.charCodeAt(0));
    }
  }
  charClass(): CharSet {
    let negated = false;
    if (this.peek() === '^') {
      negated = true;
      this.i++;
    }
    const set = new CharSet();
    let prev: number | undefined;
    while (this.i < this.p.length && this.peek() !== ']') {
      const c = this.p[this.i++]!;
      if (c === '\\') {
        const e = this.escape(true);
        if (e !== 'assertion') set.add(e);
        prev = undefined;
      } else if (c === '-' && prev !== undefined && this.peek() !== ']' && this.peek() !== undefined) {
        const hi = this.p[this.i++]!;
        set.add(CharSet.range(prev, hi === '\\' ? 128 : hi.charCodeAt(0)));
        prev = undefined;
      } else {
        set.add(CharSet.of(c.charCodeAt(0)));
        prev = c.charCodeAt(0);
      }
    }
    this.i++; // ']'
    return negated ? set.negate() : set;
  }
}

/** Returns undefined when the pattern is acceptable, else a sentence saying why not. */
export function checkRegex(pattern: string): string | undefined {
  if (pattern.length > MAX_REGEX_LENGTH) return `regex is longer than ${MAX_REGEX_LENGTH} characters`;
  try {
    new RegExp(pattern);
  } catch (err) {
    return `bad regex: ${(err as Error).message}`;
  }
  try {
    new Parser(pattern).alternation();
  } catch (err) {
    if (err instanceof Unsafe) return `regex can backtrack catastrophically (${err.message})`;
    return `regex could not be analysed: ${(err as Error).message}`;
  }
  return undefined;
}

/**
 * Rewrites a (checked) pattern so it matches ASCII letters in either case: `a` → `[aA]` outside
 * classes, and both cases added inside classes (`[a-f]` → `[a-fA-F]`). Escapes and group names are
 * copied unchanged. Node 20's RegExp has no inline `(?i)`, and CEL's `matches` takes no flags.
 */
export function foldCaseRegex(pattern: string): string {
  let out = '';
  let inClass = false;
  const isLetter = (ch: string) => /^[A-Za-z]$/.test(ch);
  const other = (ch: string) => (ch === ch.toLowerCase() ? ch.toUpperCase() : ch.toLowerCase());
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\') {
      const next = pattern[i + 1] ?? '';
      let len = 2;
      if (next === 'x') len = 4;
      else if (next === 'u') len = pattern[i + 2] === '{' ? pattern.indexOf('}', i) - i + 1 : 6;
      else if (next === 'c') len = 3;
      out += pattern.slice(i, i + len);
      i += len - 1;
    } else if (!inClass && c === '(' && pattern.startsWith('?<', i + 1) && !/[=!]/.test(pattern[i + 3] ?? '')) {
      const end = pattern.indexOf('>', i);
      out += pattern.slice(i, end + 1);
      i = end;
    } else if (!inClass && c === '{' && /^\{\d+(,\d*)?\}/.test(pattern.slice(i))) {
      const end = pattern.indexOf('}', i);
      out += pattern.slice(i, end + 1);
      i = end;
    } else if (c === '[' && !inClass) {
      inClass = true;
      out += c;
      if (pattern[i + 1] === '^') out += pattern[++i];
    } else if (c === ']' && inClass) {
      inClass = false;
      out += c;
    } else if (inClass && isLetter(c) && pattern[i + 1] === '-' && isLetter(pattern[i + 2] ?? '')) {
      const hi = pattern[i + 2]!;
      out += `${c}-${hi}`;
      if ((c === c.toLowerCase()) === (hi === hi.toLowerCase())) out += `${other(c)}-${other(hi)}`;
      i += 2;
    } else if (isLetter(c)) {
      out += inClass ? `${c}${other(c)}` : `[${c}${other(c)}]`;
    } else {
      out += c;
    }
  }
  return out;
}
