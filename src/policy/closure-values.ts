/**
 * The values side of the closure compiler (closure.ts): the static types it tracks, compiled-node
 * shape, runtime coercions and CEL equality, and contract field readers shared by every rule.
 * Pure; no I/O. Must not compile AST (closure.ts does).
 */
import { ABSENT } from './celenv.js';
import { CHILDREN, FIELD_BY_PATH } from './fields.js';

export class EvalFault extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EvalFault';
  }
}

/** Evaluation scope: the projected context roots, by name. */
export type Ctx = object;
export type Fn = (ctx: Ctx) => unknown;

/** Static types the compiler tracks. `obj:<path>` is a node of the field table. */
export type SType =
  | 'string'
  | 'int'
  | 'double'
  | 'bool'
  | 'null'
  | 'list'
  | 'map'
  | 'dyn'
  | 'header'
  | `obj:${string}`;

export interface Compiled {
  fn: Fn;
  type: SType;
  /** False when evaluation provably cannot throw (no try/catch needed around it). */
  throws: boolean;
  /** Set when the value is a compile-time constant. */
  constant?: { value: unknown };
}

export const isMap = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);

function leafType(t: string): SType {
  if (t === 'string' || t === 'int' || t === 'bool') return t;
  if (t.startsWith('list')) return 'list';
  return 'map';
}

/** CEL equality for runtime-typed values (numbers compare across int/double). */
export function celEquals(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a === 'number' || typeof a === 'bigint') {
    return (typeof b === 'number' || typeof b === 'bigint') && Number(a) === Number(b);
  }
  if (Array.isArray(a))
    return Array.isArray(b) && a.length === b.length && a.every((x, i) => celEquals(x, b[i]));
  if (isMap(a) && isMap(b)) {
    const ka = Object.keys(a);
    return (
      ka.length === Object.keys(b).length &&
      ka.every((k) => Object.hasOwn(b, k) && celEquals(a[k], b[k]))
    );
  }
  return false;
}

export function constant(value: unknown, type: SType): Compiled {
  return { fn: () => value, type, throws: false, constant: { value } };
}

/**
 * Contract selections (`obj:http.request` + `host`), computed once per path and shared by every rule:
 * the static type and one reader closure. Keyed by object type, then field, so no key is built.
 */
const SELECTS = new Map<string, Map<string, { type: SType; fn: Fn } | null>>();

export function contractSelect(objType: string, field: string): { type: SType; fn: Fn } | null {
  let byField = SELECTS.get(objType);
  if (byField === undefined) SELECTS.set(objType, (byField = new Map()));
  let entry = byField.get(field);
  if (entry === undefined) {
    const path = `${objType.slice(4)}.${field}`;
    const leaf = FIELD_BY_PATH.get(path);
    const type: SType | undefined =
      leaf !== undefined ? leafType(leaf.type) : CHILDREN.has(path) ? `obj:${path}` : undefined;
    // A contract path always starts at a root variable: read it in one closure from the context.
    entry = type === undefined ? null : { type, fn: pathReader(path.split('.')) };
    byField.set(field, entry);
  }
  return entry;
}

type Rec = Record<string, Record<string, Record<string, Record<string, unknown>>>>;

/** Reads a contract path (`http.request.body.text`) from the context; absent anywhere → ABSENT. */
function pathReader(keys: readonly string[]): Fn {
  const [a, b, c, d] = keys as [string, string, string?, string?];
  let fn: Fn;
  if (keys.length === 2) fn = (ctx) => (ctx as Rec)[a]?.[b];
  else if (keys.length === 3) fn = (ctx) => (ctx as Rec)[a]?.[b]?.[c!];
  else if (keys.length === 4) fn = (ctx) => (ctx as Rec)[a]?.[b]?.[c!]?.[d!];
  else {
    fn = (ctx) => {
      let v: unknown = ctx;
      for (const k of keys) v = (v as Record<string, unknown> | undefined)?.[k];
      return v;
    };
  }
  const read = fn;
  return (ctx) => {
    const v = read(ctx);
    if (v === undefined) throw ABSENT;
    return v;
  };
}

export function asBool(v: unknown): boolean {
  if (typeof v !== 'boolean') throw new EvalFault(`expected a bool, got ${typeof v}`);
  return v;
}

export function asString(v: unknown): string {
  if (typeof v !== 'string') throw new EvalFault(`expected a string, got ${typeof v}`);
  return v;
}

export function sizeOf(v: unknown): number {
  if (typeof v === 'string') {
    let n = 0;
    for (const _ of v) n++; // CEL counts code points
    return n;
  }
  if (Array.isArray(v)) return v.length;
  if (isMap(v)) return Object.keys(v).length;
  throw new EvalFault('size() needs a string, list or map');
}

export const lowerAscii = (s: string) => s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
export const upperAscii = (s: string) => s.replace(/[a-z]+/g, (m) => m.toUpperCase());
