/**
 * The cel-js environment: declares the field table (src/policy/fields.ts) as CEL types so that
 * `check()` rejects unknown fields and type errors, registers `header(name)`, and builds the
 * cel-js-shaped context used by rules that the closure compiler does not cover. Pure; no I/O.
 */
import { Environment } from '@marcbachmann/cel-js';
import type { SecurityEvent } from '../events/types.js';
import { FIELDS, HEADER_FUNCTION_ROOTS, type FieldType } from './fields.js';
import { compileRegex } from './regex.js';
import { cleanPath, underPath } from './paths.js';
import { foldCase } from './casefold.js';
import { naiveMultiMatch } from './multimatch.js';

/**
 * The name under which rules interpreted by cel-js call `matches()`: compile.ts renames every
 * `x.matches("…")` node to it, so cel-js runs celgate's RE2 matcher instead of its own JS RegExp.
 */
export const MATCHES_FN = 'celgateMatches';

/** Bounds on rule text and AST (STYLE: bound everything). */
export const MAX_CONDITION_LENGTH = 8 * 1024;
export const MAX_AST_NODES = 1_000;
export const MAX_AST_DEPTH = 32;

/**
 * Bounds on CEL that celgate generates from validated Detection IR (src/detection/lower.ts). Their
 * size is bounded by the IR's own limits (a pack of at most 1 MiB, 2,000 match nodes, depth 16,
 * 1,000 values per predicate), so these are set above anything a schema-valid pack lowers to
 * (test/detection/large-lists.test.ts lowers and compiles the extremes) and only guard against a bug.
 */
export const MAX_LOWERED_CONDITION_LENGTH = 16 * 1024 * 1024;
export const MAX_LOWERED_AST_NODES = 4_000_000;
export const MAX_LOWERED_AST_DEPTH = 250;
export const MAX_LOWERED_LIST_ELEMENTS = 1_000;

/** Raised when a rule reads something the event does not carry: the rule does not match. */
export class Absent extends Error {
  constructor(what: string) {
    super(`absent: ${what}`);
    this.name = 'Absent';
  }
}

/**
 * The one Absent instance the evaluators throw. Absence is an ordinary outcome on the request path
 * (a rule reading two families meets an event of one), so it must be cheap: throwing a pre-built
 * error captures no stack trace.
 */
export const ABSENT: Absent = new Absent('a field or key the event does not carry');

/** The value `header(name)` returns: `.exists()` and `.value()`. */
export class HeaderValue {
  constructor(
    readonly name: string,
    readonly raw: string | undefined,
  ) {}
}

/** One class per object node of the field table, so cel-js knows the declared fields. */
class CelObject {
  constructor(fields: Record<string, unknown>) {
    Object.assign(this, fields);
  }
}

function typeName(prefix: string): string {
  return prefix
    .split(/[._]/)
    .map((p) => p.charAt(0).toUpperCase() + p.slice(1))
    .join('');
}

interface ObjectNode {
  prefix: string;
  fields: Map<string, string>;
}

function objectNodes(): Map<string, ObjectNode> {
  const nodes = new Map<string, ObjectNode>();
  const node = (prefix: string) => {
    let n = nodes.get(prefix);
    if (n === undefined) nodes.set(prefix, (n = { prefix, fields: new Map() }));
    return n;
  };
  for (const f of FIELDS) {
    const parts = f.path.split('.');
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('.');
      const child = parts[i]!;
      const isLeaf = i === parts.length - 1;
      node(parent).fields.set(
        child,
        isLeaf ? (f.type as FieldType) : typeName(parts.slice(0, i + 1).join('.')),
      );
    }
  }
  return nodes;
}

const NODES = objectNodes();
const CLASSES = new Map<string, typeof CelObject>(
  [...NODES.keys()].map((prefix) => [prefix, class extends CelObject {}]),
);

function buildEnvironment(limits: {
  maxAstNodes: number;
  maxDepth: number;
  maxListElements: number;
}): Environment {
  let env = new Environment({ limits }).registerType('Header', {
    ctor: HeaderValue,
    fields: {},
  });
  // Register leaves first so field types resolve: deeper prefixes before shallower ones.
  const ordered = [...NODES.values()].sort(
    (a, b) => b.prefix.split('.').length - a.prefix.split('.').length,
  );
  for (const n of ordered) {
    env = env.registerType(typeName(n.prefix), {
      ctor: CLASSES.get(n.prefix)!,
      fields: Object.fromEntries(n.fields),
    });
  }
  for (const root of HEADER_FUNCTION_ROOTS) {
    env = env.registerFunction(
      `${typeName(root)}.header(string): Header`,
      (obj: { headers: Record<string, string> }, name: string) => {
        const key = name.toLowerCase();
        return new HeaderValue(key, Object.hasOwn(obj.headers, key) ? obj.headers[key] : undefined);
      },
    );
  }
  env = env
    .registerFunction(`string.${MATCHES_FN}(string): bool`, (text: string, pattern: string) =>
      compileRegex(pattern).test(text),
    )
    .registerFunction('string.cleanPath(): string', (p: string) => cleanPath(p))
    .registerFunction('string.underPath(string): bool', (p: string, dir: string) =>
      underPath(p, dir),
    )
    .registerFunction('string.foldCase(): string', (s: string) => foldCase(s))
    .registerFunction('string.containsAny(list<string>): bool', (s: string, l: string[]) =>
      naiveMultiMatch('contains', s, l),
    )
    .registerFunction('string.startsWithAny(list<string>): bool', (s: string, l: string[]) =>
      naiveMultiMatch('startsWith', s, l),
    )
    .registerFunction('string.endsWithAny(list<string>): bool', (s: string, l: string[]) =>
      naiveMultiMatch('endsWith', s, l),
    )
    .registerFunction('Header.exists(): bool', (h: HeaderValue) => h.raw !== undefined)
    .registerFunction('Header.value(): string', (h: HeaderValue) => {
      if (h.raw === undefined) throw ABSENT;
      return h.raw;
    });
  for (const top of ['common', 'http', 'dns', 'mcp', 'process'])
    env = env.registerVariable(top, typeName(top));
  return env;
}

export const CEL_ENV: Environment = buildEnvironment({
  maxAstNodes: MAX_AST_NODES,
  maxDepth: MAX_AST_DEPTH,
  maxListElements: 1_000,
});
/** The same vocabulary with the bounds for lowered Detection IR. */
export const CEL_ENV_LOWERED: Environment = buildEnvironment({
  maxAstNodes: MAX_LOWERED_AST_NODES,
  maxDepth: MAX_LOWERED_AST_DEPTH,
  maxListElements: MAX_LOWERED_LIST_ELEMENTS,
});

function toCel(prefix: string, value: Record<string, unknown>): CelObject {
  const n = NODES.get(prefix)!;
  const out: Record<string, unknown> = {};
  for (const [name, type] of n.fields) {
    const v = value[name];
    if (v === undefined) continue;
    const childPrefix = `${prefix}.${name}`;
    if (NODES.has(childPrefix)) out[name] = toCel(childPrefix, v as Record<string, unknown>);
    else if (type === 'int') out[name] = BigInt(Math.trunc(v as number));
    else if (type === 'map<string, dyn>' || type === 'list<map<string, dyn>>')
      out[name] = jsonToCel(v);
    else out[name] = v;
  }
  return new (CLASSES.get(prefix)!)(out);
}

/** JSON values as cel-js sees them: integral numbers become CEL ints (BigInt). */
function jsonToCel(v: unknown): unknown {
  if (typeof v === 'number') return Number.isSafeInteger(v) ? BigInt(v) : v;
  if (Array.isArray(v)) return v.map(jsonToCel);
  if (typeof v === 'object' && v !== null) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, jsonToCel(x)]));
  }
  return v;
}

/** The context cel-js evaluates: typed objects with BigInt ints. Built only for fallback rules. */
export function celContext(event: SecurityEvent): Record<string, unknown> {
  const e = event as unknown as Record<string, Record<string, unknown>>;
  const ctx: Record<string, unknown> = { common: toCel('common', e.common!) };
  for (const top of ['http', 'dns', 'mcp', 'process']) {
    if (e[top] !== undefined) ctx[top] = toCel(top, e[top]);
  }
  return ctx;
}
