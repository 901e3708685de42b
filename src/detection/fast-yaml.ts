/**
 * A fast parser for the plain YAML subset packs are written in: block mappings and sequences,
 * one-line flow collections, plain / single- / double-quoted scalars, comments. It returns undefined
 * for anything outside that subset (anchors, tags, block scalars, multi-line scalars, odd escapes,
 * duplicate keys …), and the caller then uses the full `yaml` library. When it returns a value, that
 * value equals what `yaml` (core schema) would produce — `test/detection/fast-yaml.test.ts` checks
 * this against every fixture and randomly generated documents. Pure; no I/O.
 */

class Fallback extends Error {}

interface Line {
  indent: number;
  text: string;
}

const fallback = (): never => {
  throw new Fallback();
};

/** YAML 1.2 core-schema resolution of a plain scalar; exotic forms fall back. */
function plain(s: string): unknown {
  const c0 = s.charCodeAt(0);
  // Fast exit: a scalar starting with a letter (other than the null/bool spellings) or "/" is a string.
  if (
    ((c0 >= 97 && c0 <= 122) || (c0 >= 65 && c0 <= 90) || c0 === 47) &&
    c0 !== 110 &&
    c0 !== 78 &&
    c0 !== 116 &&
    c0 !== 84 &&
    c0 !== 102 &&
    c0 !== 70
  )
    return s;
  if (s === '' || s === '~' || s === 'null' || s === 'Null' || s === 'NULL') return null;
  if (s === 'true' || s === 'True' || s === 'TRUE') return true;
  if (s === 'false' || s === 'False' || s === 'FALSE') return false;
  if (/^[-+]?[0-9]+$/.test(s)) {
    const n = Number(s);
    return Number.isSafeInteger(n) && !Object.is(n, -0) ? n : fallback();
  }
  if (/^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/.test(s)) {
    const n = Number(s);
    return Number.isFinite(n) && !Object.is(n, -0) ? n : fallback();
  }
  if (/^[-+]?\.(inf|Inf|INF|nan|NaN|NAN)$|^0[ox]/.test(s)) fallback();
  if (/^[-?:,[\]{}#&*!|>'"%@`]/.test(s) && !/^[-?:][^\s,[\]{}]/.test(s)) fallback();
  return s;
}

/** Reads a quoted scalar starting at s[i]; returns [value, index after the closing quote]. */
function quoted(s: string, i: number): [string, number] {
  const q = s[i]!;
  let out = '';
  let j = i + 1;
  for (;;) {
    if (j >= s.length) fallback();
    const c = s[j]!;
    if (q === "'") {
      if (c === "'") {
        if (s[j + 1] === "'") {
          out += "'";
          j += 2;
          continue;
        }
        return [out, j + 1];
      }
      out += c;
      j++;
      continue;
    }
    if (c === '"') return [out, j + 1];
    if (c === '\\') {
      const e = s[j + 1];
      const simple: Record<string, string> = {
        '\\': '\\',
        '"': '"',
        '/': '/',
        n: '\n',
        t: '\t',
        r: '\r',
        '0': '\0',
      };
      if (e !== undefined && e in simple) {
        out += simple[e];
        j += 2;
      } else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(s.slice(j + 2, j + 6))) {
        out += String.fromCharCode(parseInt(s.slice(j + 2, j + 6), 16));
        j += 6;
      } else fallback();
      continue;
    }
    out += c;
    j++;
  }
}

/** After a value: only spaces and an optional ` # comment` may follow. */
function rest(s: string, i: number): void {
  const r = s.slice(i);
  if (r.trim() !== '' && !/^\s+#/.test(r)) fallback();
}

/** A one-line flow value (or scalar) starting at s[i]. */
function flow(s: string, i: number, inFlow: boolean): [unknown, number] {
  while (s[i] === ' ') i++;
  const c = s[i];
  if (c === '"' || c === "'") return quoted(s, i);
  if (c === '[') {
    const out: unknown[] = [];
    i++;
    for (;;) {
      while (s[i] === ' ') i++;
      if (s[i] === ']') return [out, i + 1];
      const [v, j] = flow(s, i, true);
      out.push(v);
      i = j;
      while (s[i] === ' ') i++;
      if (s[i] === ',') i++;
      else if (s[i] !== ']') fallback();
    }
  }
  if (c === '{') {
    const out: Record<string, unknown> = {};
    i++;
    for (;;) {
      while (s[i] === ' ') i++;
      if (s[i] === '}') return [out, i + 1];
      let key: unknown;
      if (s[i] === '"' || s[i] === "'") [key, i] = quoted(s, i);
      else {
        const m = /^[^,[\]{}:#"']+/.exec(s.slice(i)) ?? fallback();
        key = plain(m[0].trim());
        i += m[0].length;
      }
      if (typeof key !== 'string' || Object.hasOwn(out, key) || s[i] !== ':' || s[i + 1] !== ' ')
        fallback();
      const [v, j] = flow(s, i + 2, true);
      out[key as string] = v;
      i = j;
      while (s[i] === ' ') i++;
      if (s[i] === ',') i++;
      else if (s[i] !== '}') fallback();
    }
  }
  if (!inFlow) {
    const hash = s.slice(i).search(/\s#/);
    const text = (hash === -1 ? s.slice(i) : s.slice(i, i + hash)).trim();
    if (/: |:$/.test(text) || text.includes('\t')) fallback();
    return [plain(text), hash === -1 ? s.length : i + hash];
  }
  const m = /^[^,[\]{}#]*/.exec(s.slice(i))!;
  const text = m[0].trim();
  if (text === '' || /: |:$/.test(text)) fallback();
  return [plain(text), i + m[0].length];
}

/** `key: rest` → [key, index of the value text]; undefined when the line is not a mapping entry. */
function entry(text: string): [string, string] | undefined {
  if (text[0] === '"' || text[0] === "'") {
    const [k, j] = quoted(text, 0);
    if (text[j] !== ':' || (text[j + 1] !== undefined && text[j + 1] !== ' ')) return undefined;
    return [k, text.slice(j + 1)];
  }
  const c0 = text[0]!;
  if (
    c0 === ' ' ||
    c0 === '#' ||
    c0 === '[' ||
    c0 === ']' ||
    c0 === '{' ||
    c0 === '}' ||
    c0 === ','
  )
    return undefined;
  let colon = -1;
  for (let i = 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 35 /* # */ && text.charCodeAt(i - 1) === 32) return undefined;
    if (c === 58 /* : */ && (i + 1 === text.length || text.charCodeAt(i + 1) === 32)) {
      colon = i;
      break;
    }
  }
  if (colon === -1) return undefined;
  const key = plain(text.slice(0, colon).trim());
  if (typeof key !== 'string') fallback();
  return [key as string, text.slice(colon + 1)];
}

class Parser {
  i = 0;
  constructor(readonly lines: Line[]) {}
  block(indent: number): unknown {
    const l = this.lines[this.i];
    if (l === undefined || l.indent < indent) return null;
    return l.text === '-' || l.text.startsWith('- ') ? this.seq(l.indent) : this.map(l.indent);
  }
  seq(indent: number): unknown[] {
    const out: unknown[] = [];
    for (
      let l = this.lines[this.i];
      l !== undefined && l.indent === indent && (l.text === '-' || l.text.startsWith('- '));
      l = this.lines[this.i]
    ) {
      const body = l.text.slice(1);
      const pad = body.length - body.trimStart().length;
      const item = body.trimStart();
      if (item === '') {
        this.i++;
        const next = this.lines[this.i];
        out.push(next !== undefined && next.indent > indent ? this.block(next.indent) : null);
      } else if (item.startsWith('- ') || entry(item) !== undefined) {
        this.lines[this.i] = { indent: indent + 1 + pad, text: item };
        out.push(this.block(indent + 1 + pad));
      } else {
        const [v, j] = flow(item, 0, false);
        rest(item, j);
        out.push(v);
        this.i++;
      }
    }
    return out;
  }
  map(indent: number): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (
      let l = this.lines[this.i];
      l !== undefined && l.indent === indent;
      l = this.lines[this.i]
    ) {
      if (l.text === '-' || l.text.startsWith('- ')) break;
      const e = entry(l.text) ?? fallback();
      const [key, valueText] = e;
      if (Object.hasOwn(out, key) || key === '__proto__' || key === '<<') fallback();
      this.i++;
      if (valueText.trim() === '' || /^\s*#/.test(valueText)) {
        const next = this.lines[this.i];
        if (next !== undefined && next.indent > indent) out[key] = this.block(next.indent);
        else if (
          next !== undefined &&
          next.indent === indent &&
          (next.text === '-' || next.text.startsWith('- '))
        )
          out[key] = this.seq(indent);
        else out[key] = null;
      } else {
        const [v, j] = flow(valueText, 0, false);
        rest(valueText, j);
        out[key] = v;
      }
    }
    return out;
  }
}

/** Parses `text` if it is inside the subset; undefined means "use the full YAML parser". */
export function fastYaml(text: string): { value: unknown } | undefined {
  if (text.includes('\t') || text.includes('\r') || /(^|\n)(---|\.\.\.|%)/.test(text))
    return undefined;
  const lines: Line[] = [];
  for (const raw of text.split('\n')) {
    const trimmed = raw.trimStart();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    if (/^[&*!|>?]|\s[&*!]\S|: [|>]|\s[|>][-+0-9]?\s*(#.*)?$/.test(trimmed)) return undefined;
    lines.push({ indent: raw.length - trimmed.length, text: trimmed.trimEnd() });
  }
  if (lines.length === 0) return undefined;
  if (lines[0]!.indent !== 0) return undefined;
  try {
    const p = new Parser(lines);
    const value = p.block(0);
    if (p.i !== lines.length) return undefined;
    return { value };
  } catch (err) {
    if (err instanceof Fallback) return undefined;
    throw err;
  }
}
