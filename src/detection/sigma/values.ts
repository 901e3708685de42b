/**
 * Sigma field values → Detection IR predicates: wildcard parsing with Sigma's escaping (`\*`, `\?`,
 * `\\`), the modifiers contains / startswith / endswith / re (with `i`, `m`, `s`) / all / cidr / cased /
 * exists, and Sigma's case-insensitive matching of plain values. Produces raw IR objects (the YAML
 * shape), validated afterwards like any pack. Refuses every other modifier by name. Pure; no I/O.
 */
import { parseCidr } from '../cidr.js';
import { regexProblem } from '../../policy/regex.js';
import { MAX_VALUES_PER_PREDICATE, MAX_VALUE_LENGTH } from '../types.js';

/** One Sigma value after wildcard parsing: literal runs and wildcards. */
export type Piece = { lit: string } | { wild: '*' | '?' };

/** A refused construct; `at` locates it below the selection entry (a list index of the value). */
export class SigmaRefusal extends Error {
  constructor(
    message: string,
    readonly at: readonly (string | number)[] = [],
  ) {
    super(message);
  }
}

/** Sigma escaping: `\*` `\?` `\\` are literals; any other backslash is itself; `*` and `?` are wildcards. */
export function sigmaPieces(value: string): Piece[] {
  const out: Piece[] = [];
  let lit = '';
  const flush = () => {
    if (lit !== '') out.push({ lit });
    lit = '';
  };
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c === '\\') {
      const n = value[i + 1];
      if (n === '*' || n === '?' || n === '\\') {
        lit += n;
        i++;
      } else lit += c;
    } else if (c === '*' || c === '?') {
      flush();
      const prev = out[out.length - 1];
      if (!(c === '*' && prev !== undefined && 'wild' in prev && prev.wild === '*'))
        out.push({ wild: c });
    } else lit += c;
  }
  flush();
  return out;
}

/** Escapes a literal for a regex valid with and without the `u` flag (no `\-` identity escapes). */
export function escapeRegex(lit: string): string {
  return lit.replace(/[\^$\\.*+?()[\]{}|/]/g, '\\$&');
}

export type StringPredicate = {
  op: 'equals' | 'contains' | 'startswith' | 'endswith' | 'matches';
  value: string;
};

/** Regex body (unanchored) for wildcard pieces: `*` → [\s\S]*, `?` → [\s\S]. */
export function piecesRegex(pieces: readonly Piece[]): string {
  return pieces
    .map((p) => ('lit' in p ? escapeRegex(p.lit) : p.wild === '*' ? '[\\s\\S]*' : '[\\s\\S]'))
    .join('');
}

/** Matches the `scheme://authority` prefix of an absolute URL (the authority holds no `/`). */
export const URL_ORIGIN_PREFIX = '^[a-z][a-z0-9+.-]*://[^/]*';

/** True when `pattern` has a `|` outside every group and character class. */
export function hasTopLevelAlternation(pattern: string): boolean {
  let depth = 0;
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\') i++;
    else if (inClass) inClass = c !== ']';
    else if (c === '[') {
      inClass = true;
      if (pattern[i + 1] === '^') i++;
      if (pattern[i + 1] === ']') i++;
    } else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === '|' && depth === 0) return true;
  }
  return false;
}

/** The narrowest exact IR operator for a wildcard pattern. */
export function classify(pieces: Piece[]): StringPredicate {
  const star = (p: Piece | undefined) => p !== undefined && 'wild' in p && p.wild === '*';
  const lit = (p: Piece | undefined): p is { lit: string } => p !== undefined && 'lit' in p;
  if (pieces.length === 0) return { op: 'equals', value: '' };
  if (pieces.every((p) => 'lit' in p))
    return { op: 'equals', value: pieces.map((p) => (p as { lit: string }).lit).join('') };
  if (pieces.length === 1 && star(pieces[0])) return { op: 'contains', value: '' };
  if (pieces.length === 3 && star(pieces[0]) && lit(pieces[1]) && star(pieces[2]))
    return { op: 'contains', value: pieces[1].lit };
  if (pieces.length === 2 && lit(pieces[0]) && star(pieces[1]))
    return { op: 'startswith', value: pieces[0].lit };
  if (pieces.length === 2 && star(pieces[0]) && lit(pieces[1]))
    return { op: 'endswith', value: pieces[1].lit };
  // A leading or trailing `*` is the same as an unanchored end, and cheaper to match.
  const lead = star(pieces[0]);
  const trail = star(pieces[pieces.length - 1]);
  const inner = pieces.slice(lead ? 1 : 0, trail ? pieces.length - 1 : pieces.length);
  return { op: 'matches', value: `${lead ? '' : '^'}${piecesRegex(inner)}${trail ? '' : '$'}` };
}

const SUPPORTED = [
  'contains',
  'startswith',
  'endswith',
  're',
  'all',
  'cidr',
  'cased',
  'exists',
  'i',
  'm',
  's',
];

export interface Modifiers {
  position: 'contains' | 'startswith' | 'endswith' | null;
  re: boolean;
  reIgnoreCase: boolean;
  /** `re|m` and `re|s`: RE2 flags put in front of the pattern. */
  reFlags: string;
  all: boolean;
  cidr: boolean;
  cased: boolean;
  exists: boolean;
}

export function parseModifiers(mods: readonly string[]): Modifiers {
  const m: Modifiers = {
    position: null,
    re: false,
    reIgnoreCase: false,
    reFlags: '',
    all: false,
    cidr: false,
    cased: false,
    exists: false,
  };
  for (const mod of mods) {
    if (!SUPPORTED.includes(mod)) throw new SigmaRefusal(`the "${mod}" modifier is not supported`);
    if (mod === 'contains' || mod === 'startswith' || mod === 'endswith') {
      if (m.position !== null)
        throw new SigmaRefusal(`modifiers "${m.position}" and "${mod}" cannot be combined`);
      m.position = mod;
    } else if (mod === 'i' || mod === 'm' || mod === 's') {
      if (!m.re) throw new SigmaRefusal(`the "${mod}" modifier is only supported after "re"`);
      if (mod === 'i') m.reIgnoreCase = true;
      else if (!m.reFlags.includes(mod)) m.reFlags += mod;
    } else if (mod === 're') m.re = true;
    else if (mod === 'all') m.all = true;
    else if (mod === 'cidr') m.cidr = true;
    else if (mod === 'cased') m.cased = true;
    else m.exists = true;
  }
  if (m.re && (m.position !== null || m.cidr))
    throw new SigmaRefusal(`"re" cannot be combined with "${m.position ?? 'cidr'}"`);
  if (m.cidr && (m.position !== null || m.cased))
    throw new SigmaRefusal(`"cidr" cannot be combined with "${m.position ?? 'cased'}"`);
  if (m.exists && (m.position !== null || m.re || m.cidr || m.all || m.cased))
    throw new SigmaRefusal('"exists" cannot be combined with other modifiers');
  return m;
}

/** How a Sigma field maps onto the contract, from the mapping file. */
export interface FieldTarget {
  field: string;
  /** CEL-side type of the target, from the field table ('string' for headers). */
  type: 'string' | 'int' | 'bool' | 'list<string>';
  /** `extension`: the Sigma field is the file extension of the target path. `uri`: the target is
   * an absolute URL, and values starting with "/" match its origin form (path and query). */
  transform: 'extension' | 'uri' | null;
  /** The target is a header: Sigma `null` means "absent". */
  header: boolean;
}

type Raw = Record<string, unknown>;

function predicate(field: string, op: string, values: unknown[], ci: boolean): Raw {
  const p: Raw = { field, [op]: values };
  if (ci) p.case_insensitive = true;
  return p;
}

function anyOf(nodes: Raw[]): Raw {
  return nodes.length === 1 ? nodes[0]! : { any: nodes };
}

/** One `field|mods: value(s)` entry of a selection → one raw IR match node. */
export function fieldNode(
  sigmaField: string,
  target: FieldTarget,
  mods: Modifiers,
  rawValues: unknown,
): Raw {
  const values = Array.isArray(rawValues) ? rawValues : [rawValues];
  if (values.length === 0) throw new SigmaRefusal(`"${sigmaField}" has an empty value list`);
  if (values.length > MAX_VALUES_PER_PREDICATE) {
    throw new SigmaRefusal(
      `"${sigmaField}" has ${values.length} values; the IR takes at most ${MAX_VALUES_PER_PREDICATE} per field (split the selection)`,
    );
  }
  if (mods.exists) {
    if (values.length !== 1 || typeof values[0] !== 'boolean')
      throw new SigmaRefusal(`"${sigmaField}|exists" takes true or false`);
    if (!target.header)
      throw new SigmaRefusal(`"${sigmaField}|exists": ${target.field} is always present in events`);
    return { field: target.field, exists: values[0] };
  }
  // null (field absent) and everything else, one value at a time, grouped by resulting operator.
  const nodes: Raw[] = [];
  const groups = new Map<string, { op: string; ci: boolean; values: unknown[] }>();
  const add = (op: string, ci: boolean, value: unknown) => {
    if (mods.all) {
      nodes.push(predicate(target.field, op, [value], ci));
      return;
    }
    const key = `${op}/${ci}`;
    const g = groups.get(key) ?? { op, ci, values: [] };
    g.values.push(value);
    groups.set(key, g);
  };
  values.forEach((v, i) => {
    try {
      value(v);
    } catch (err) {
      if (err instanceof SigmaRefusal && err.at.length === 0 && Array.isArray(rawValues))
        throw new SigmaRefusal(err.message, [i]);
      throw err;
    }
  });
  function value(v: unknown): void {
    if (typeof v === 'string' && v.length > MAX_VALUE_LENGTH) {
      throw new SigmaRefusal(
        `a value of "${sigmaField}" is ${v.length} characters long; the IR takes at most ${MAX_VALUE_LENGTH}`,
      );
    }
    if (v === null) {
      if (!target.header || mods.re || mods.cidr || mods.position !== null) {
        throw new SigmaRefusal(
          `"${sigmaField}: null" (field absent) is only supported on header fields without modifiers`,
        );
      }
      nodes.push({ field: target.field, exists: false });
      return;
    }
    if (Array.isArray(v) || typeof v === 'object')
      throw new SigmaRefusal(`nested lists or maps as values of "${sigmaField}" are not supported`);
    if (target.type === 'int' || target.type === 'bool') {
      if (mods.position !== null || mods.re || mods.cidr || mods.cased)
        throw new SigmaRefusal(
          `modifiers on "${sigmaField}", which maps to the ${target.type} field ${target.field}, are not supported`,
        );
      const n =
        target.type === 'int'
          ? typeof v === 'number'
            ? v
            : typeof v === 'string' && /^-?\d+$/.test(v)
              ? Number(v)
              : NaN
          : v;
      if (target.type === 'int' ? !Number.isSafeInteger(n) : typeof n !== 'boolean')
        throw new SigmaRefusal(
          `"${sigmaField}" maps to ${target.type} field ${target.field}; value ${JSON.stringify(v)} is not one`,
        );
      add('equals', false, n);
      return;
    }
    if (typeof v === 'boolean')
      throw new SigmaRefusal(`boolean value for string field "${sigmaField}" is not supported`);
    const text = String(v);
    if (mods.re) {
      if (target.transform === 'extension')
        throw new SigmaRefusal(`"re" on the derived field "${sigmaField}" is not supported`);
      // Sigma regexes are RE2 patterns here (inline flags included); what RE2 refuses is refused by name.
      const problem = regexProblem(text);
      if (problem !== undefined)
        throw new SigmaRefusal(
          `"${sigmaField}|re" value ${JSON.stringify(text.length > 80 ? `${text.slice(0, 77)}...` : text)}: ${problem.message}`,
        );
      let body = text;
      // On the full URL, a pattern anchored at the path (`^/admin/`) means the origin form, as
      // plain "/…" values do: anchor it after scheme://host[:port] instead.
      if (target.transform === 'uri' && text.startsWith('^/')) {
        if (hasTopLevelAlternation(text)) {
          throw new SigmaRefusal(
            `"${sigmaField}|re" value ${JSON.stringify(text.length > 60 ? `${text.slice(0, 57)}...` : text)}: a path-anchored pattern with a top-level "|"; group the alternatives: ^/(?:a|b)`,
          );
        }
        body = `${URL_ORIGIN_PREFIX}${text.slice(1)}`;
      }
      const pattern = mods.reFlags === '' ? body : `(?${mods.reFlags})${body}`;
      add('matches', mods.reIgnoreCase, pattern);
      return;
    }
    if (mods.cidr) {
      if (target.transform !== null)
        throw new SigmaRefusal(`"cidr" on the derived field "${sigmaField}" is not supported`);
      const parsed = parseCidr(text);
      if (!parsed.ok) throw new SigmaRefusal(`cidr value on "${sigmaField}": ${parsed.message}`);
      add('cidr', false, text);
      return;
    }
    const pieces = normalise(text, mods);
    if (target.transform === 'extension') {
      if (mods.position !== null || pieces.some((p) => 'wild' in p))
        throw new SigmaRefusal(
          `wildcards or modifiers on the derived field "${sigmaField}" are not supported`,
        );
      const ext = classify(pieces).value;
      if (ext === '' || /[./?#]/.test(ext))
        throw new SigmaRefusal(`"${sigmaField}" value "${ext}" is not a plain file extension`);
      add('endswith', !mods.cased, `.${ext}`);
      return;
    }
    const first = pieces[0];
    if (
      target.transform === 'uri' &&
      first !== undefined &&
      'lit' in first &&
      first.lit.startsWith('/')
    ) {
      const end = pieces[pieces.length - 1];
      const trail = end !== undefined && 'wild' in end && end.wild === '*';
      add(
        'matches',
        !mods.cased,
        `${URL_ORIGIN_PREFIX}${piecesRegex(trail ? pieces.slice(0, -1) : pieces)}${trail ? '' : '$'}`,
      );
      return;
    }
    const c = classify(pieces);
    add(c.op, !mods.cased, c.value);
  }
  for (const g of groups.values()) nodes.push(predicate(target.field, g.op, g.values, g.ci));
  return mods.all ? (nodes.length === 1 ? nodes[0]! : { all: nodes }) : anyOf(nodes);
}

/** Pieces of a value with the position modifier applied and runs of `*` collapsed. */
function normalise(text: string, mods: Modifiers): Piece[] {
  const raw = sigmaPieces(text);
  const withPos: Piece[] = [
    ...(mods.position === 'contains' || mods.position === 'endswith'
      ? [{ wild: '*' } as Piece]
      : []),
    ...raw,
    ...(mods.position === 'contains' || mods.position === 'startswith'
      ? [{ wild: '*' } as Piece]
      : []),
  ];
  const out: Piece[] = [];
  for (const p of withPos) {
    const prev = out[out.length - 1];
    if ('wild' in p && p.wild === '*' && prev !== undefined && 'wild' in prev && prev.wild === '*')
      continue;
    if ('lit' in p && prev !== undefined && 'lit' in prev) {
      out[out.length - 1] = { lit: prev.lit + p.lit };
      continue;
    }
    out.push(p);
  }
  return out;
}
