/**
 * Sigma condition expressions: tokenizer and recursive-descent parser for `and`, `or`, `not`,
 * parentheses, `1 of X*`, `all of X*`, `1 of them`, `all of them`. Anything else (aggregations with
 * `|`, `near`, `N of` with N ≠ 1, unknown words) is refused with the construct named — never
 * approximated. Pure; no I/O.
 */

export type Cond =
  | { kind: 'ref'; name: string }
  | { kind: 'and' | 'or'; items: Cond[] }
  | { kind: 'not'; item: Cond }
  | { kind: 'of'; quantifier: 'one' | 'all'; pattern: string };

export type CondParse = { ok: true; cond: Cond } | { ok: false; message: string };

export const MAX_CONDITION_TOKENS = 2000;

type Tok = { t: 'word'; v: string } | { t: '(' } | { t: ')' } | { t: 'bad'; v: string };

function tokenize(text: string): Tok[] {
  const out: Tok[] = [];
  const re = /\s*(?:(\()|(\))|([A-Za-z0-9_*.-]+)|(\S))/y;
  let m: RegExpExecArray | null;
  re.lastIndex = 0;
  while (re.lastIndex < text.length && (m = re.exec(text)) !== null) {
    if (m[1] !== undefined) out.push({ t: '(' });
    else if (m[2] !== undefined) out.push({ t: ')' });
    else if (m[3] !== undefined) out.push({ t: 'word', v: m[3] });
    else if (m[4] !== undefined) out.push({ t: 'bad', v: m[4] });
    if (out.length > MAX_CONDITION_TOKENS) break;
  }
  return out;
}

class Refused extends Error {}

class P {
  i = 0;
  constructor(readonly toks: Tok[]) {}
  peekWord(): string | undefined {
    const t = this.toks[this.i];
    return t?.t === 'word' ? t.v : undefined;
  }
  or(): Cond {
    const items = [this.and()];
    while (this.peekWord() === 'or') {
      this.i++;
      items.push(this.and());
    }
    return items.length === 1 ? items[0]! : { kind: 'or', items };
  }
  and(): Cond {
    const items = [this.not()];
    while (this.peekWord() === 'and') {
      this.i++;
      items.push(this.not());
    }
    return items.length === 1 ? items[0]! : { kind: 'and', items };
  }
  not(): Cond {
    if (this.peekWord() === 'not') {
      this.i++;
      return { kind: 'not', item: this.not() };
    }
    return this.primary();
  }
  primary(): Cond {
    const t = this.toks[this.i++];
    if (t === undefined) throw new Refused('condition ends early');
    if (t.t === '(') {
      const inner = this.or();
      if (this.toks[this.i++]?.t !== ')') throw new Refused('missing ")" in condition');
      return inner;
    }
    if (t.t === ')') throw new Refused('unexpected ")" in condition');
    if (t.t === 'bad') {
      throw new Refused(
        t.v === '|'
          ? 'aggregation expressions ("| count()", "| near …") are not supported'
          : `unexpected "${t.v}" in condition`,
      );
    }
    const w = t.v;
    if (w === 'near') throw new Refused('the "near" temporal operator is not supported');
    if (/^\d+$/.test(w) || w === 'all' || w === 'any') {
      if (this.peekWord() !== 'of') {
        if (w === 'all' || w === 'any') throw new Refused(`"${w}" must be followed by "of"`);
        return { kind: 'ref', name: w };
      }
      if (w === 'any') throw new Refused('"any of" is not Sigma; write "1 of"');
      if (/^\d+$/.test(w) && w !== '1')
        throw new Refused(`"${w} of" is not supported (only "1 of" and "all of")`);
      this.i++;
      const pattern = this.peekWord();
      if (pattern === undefined) throw new Refused(`"${w} of" needs a selection pattern or "them"`);
      this.i++;
      return { kind: 'of', quantifier: w === 'all' ? 'all' : 'one', pattern };
    }
    if (['and', 'or', 'of', 'them'].includes(w))
      throw new Refused(`unexpected "${w}" in condition`);
    return { kind: 'ref', name: w };
  }
}

export function parseCondition(text: string): CondParse {
  const toks = tokenize(text);
  if (toks.length > MAX_CONDITION_TOKENS)
    return { ok: false, message: `condition has more than ${MAX_CONDITION_TOKENS} tokens` };
  if (toks.length === 0) return { ok: false, message: 'condition is empty' };
  const p = new P(toks);
  try {
    const cond = p.or();
    const rest = toks[p.i];
    if (rest !== undefined) {
      if (rest.t === 'word' && rest.v === 'near')
        return { ok: false, message: 'the "near" temporal operator is not supported' };
      if (rest.t === 'bad' && rest.v === '|')
        return {
          ok: false,
          message: 'aggregation expressions ("| count()", "| near …") are not supported',
        };
      return {
        ok: false,
        message: `unexpected ${rest.t === 'word' || rest.t === 'bad' ? `"${rest.v}"` : `"${rest.t}"`} in condition`,
      };
    }
    return { ok: true, cond };
  } catch (err) {
    if (err instanceof Refused) return { ok: false, message: err.message };
    throw err;
  }
}

/** Selection names a `1 of` / `all of` pattern covers. `them` covers every name not starting with `_`. */
export function expandPattern(pattern: string, names: readonly string[]): string[] {
  if (pattern === 'them') return names.filter((n) => !n.startsWith('_'));
  const re = new RegExp(
    `^${pattern
      .split('*')
      .map((s) => s.replace(/[.\\+?^${}()|[\]-]/g, '\\$&'))
      .join('.*')}$`,
  );
  return names.filter((n) => re.test(n));
}
