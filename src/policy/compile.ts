/**
 * Compile once, evaluate many: CEL text → a checked, analysed program. Parsing and type-checking use
 * cel-js against the declared field table; reads are validated path by path (an unknown field is an
 * error naming the closest valid one); the roots a condition reads decide which event types it runs
 * on; and the AST is compiled to closures (src/policy/closure.ts) or, for constructs the closure
 * compiler does not cover, kept as a cel-js program. Pure; no I/O.
 */
import type { ASTNode } from '@marcbachmann/cel-js';
import { EVENT_TYPES, type EventType } from '../events/types.js';
import type { Issue } from '../errors.js';
import {
  CEL_ENV,
  CEL_ENV_LOWERED,
  MAX_CONDITION_LENGTH,
  MAX_LOWERED_CONDITION_LENGTH,
} from './celenv.js';
import { compileClosure } from './closure.js';
import type { Fn } from './closure-values.js';
import {
  CHILDREN,
  closestField,
  FIELD_BY_PATH,
  ROOT_EVENT_TYPE,
  rootOf,
  type Root,
} from './fields.js';
import { describeProblem, regexProblem } from './regex.js';
import { MATCHES_FN } from './celenv.js';

export interface CompiledCondition {
  text: string;
  /** Contract roots the condition reads, sorted. */
  roots: readonly Root[];
  /** Contract paths the condition reads (leaves, or `http.request.header()`), sorted. */
  reads: readonly string[];
  /** Event types the condition runs on. */
  eventTypes: readonly EventType[];
  /** True when some read needs a request or response body to be buffered. */
  readsBody: boolean;
  /** 'closure' (compiled to JS closures) or 'cel-js' (interpreted). */
  engine: 'closure' | 'cel-js';
  /** Closure program over the projected context; for 'cel-js' rules, a wrapper around cel-js. */
  program: Fn;
}

export type CompileResult =
  { ok: true; condition: CompiledCondition } | { ok: false; issues: Issue[] };

interface CelError {
  message?: string;
  range?: { start: number; end: number };
}

function locate(text: string, offset: number | undefined): { line?: number; column?: number } {
  if (offset === undefined) return {};
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return { line, column: offset - before.lastIndexOf('\n') };
}

function celIssue(text: string, err: unknown, prefix: string): Issue {
  const e = err as CelError;
  const summary = String(e.message ?? err)
    .split('\n')[0]!
    .replaceAll(MATCHES_FN, 'matches');
  return { path: 'condition', message: `${prefix}: ${summary}`, ...locate(text, e.range?.start) };
}

/**
 * The source offset of character `index` of a string literal's value, the literal spanning
 * `start`…`end` of `text` (quotes, an r/R raw prefix, and escapes such as `\\` or `\u00e9` that
 * stand for one character). Used to point a pattern problem at its place in the condition.
 */
export function literalOffset(text: string, start: number, end: number, index: number): number {
  let i = start;
  let raw = false;
  while (i < end && /[rRbB]/.test(text[i]!)) raw ||= /[rR]/.test(text[i++]!);
  const quote = text.startsWith('"""', i) || text.startsWith("'''", i) ? 3 : 1;
  i += quote;
  for (let n = 0; n < index && i < end - quote; n++) {
    if (raw || text[i] !== '\\') {
      i++;
      continue;
    }
    const e = text[i + 1] ?? '';
    i += e === 'x' || e === 'X' ? 4 : e === 'u' ? 6 : e === 'U' ? 10 : /[0-3]/.test(e) ? 4 : 2;
  }
  return Math.min(i, end);
}

/** Flattens `a.b.c` into a dotted path when it is rooted at a declared variable. */
function dottedPath(node: ASTNode): string | undefined {
  if (node.op === 'id') return node.args;
  if (node.op === '.') {
    const base = dottedPath(node.args[0]);
    return base === undefined ? undefined : `${base}.${node.args[1]}`;
  }
  return undefined;
}

interface Analysis {
  reads: Set<string>;
  issues: Issue[];
}

/** Walks the AST: validates every contract path and regex literal, and collects what is read. */
function analyse(text: string, node: ASTNode, out: Analysis, bound: ReadonlySet<string>): void {
  const path = node.op === '.' || node.op === 'id' ? dottedPath(node) : undefined;
  if (path !== undefined) {
    const head = path.split('.')[0]!;
    if (bound.has(head)) return; // a macro variable, e.g. `x` in `list.exists(x, …)`
    if (FIELD_BY_PATH.has(path)) {
      out.reads.add(path);
      return;
    }
    if (!CHILDREN.has(path)) {
      // Find the longest valid prefix to say exactly which segment is unknown.
      const parts = path.split('.');
      let i = 0;
      while (
        i < parts.length &&
        (i === 0
          ? CHILDREN.get('')!.includes(parts[0]!)
          : CHILDREN.has(parts.slice(0, i + 1).join('.')) ||
            FIELD_BY_PATH.has(parts.slice(0, i + 1).join('.')))
      )
        i++;
      const parent = parts.slice(0, i).join('.');
      if (FIELD_BY_PATH.has(parent)) {
        // A selection into a map-typed field (`mcp.request.arguments.path`, `http.request.headers.x`).
        const type = FIELD_BY_PATH.get(parent)!.type;
        if (type.startsWith('map')) {
          out.reads.add(parent);
          return;
        }
        out.issues.push({
          path: 'condition',
          message: `${parent} is a ${type} and has no field "${parts[i]}"`,
          ...locate(text, node.range.start),
        });
        return;
      }
      const hint = closestField(parent, parts[i]!);
      const what =
        i === 0
          ? `unknown root "${parts[0]}"`
          : `unknown field "${parts.slice(0, i + 1).join('.')}"`;
      out.issues.push({
        path: 'condition',
        message: `${what}${hint === undefined ? '' : `; did you mean "${hint}"?`}`,
        ...locate(text, node.range.start),
      });
      return;
    }
    // A prefix such as `http.request`: fine as the receiver of header(); otherwise type-check decides.
    if (rootOf(path) !== undefined) out.reads.add(path);
    return;
  }
  switch (node.op) {
    case 'value':
      return;
    case 'rcall': {
      const [name, recv, args] = node.args;
      const recvPath = dottedPath(recv);
      if (name === 'header' && recvPath !== undefined && !bound.has(recvPath.split('.')[0]!)) {
        out.reads.add(`${recvPath}.header()`);
      } else analyse(text, recv, out, bound);
      if (
        (name === 'exists' ||
          name === 'all' ||
          name === 'exists_one' ||
          name === 'filter' ||
          name === 'map') &&
        args[0]?.op === 'id'
      ) {
        const inner = new Set(bound);
        inner.add(args[0].args);
        for (const a of args.slice(1)) analyse(text, a, out, inner);
        return;
      }
      if (name === 'matches') {
        const pattern = args[0];
        if (pattern?.op !== 'value' || typeof pattern.args !== 'string') {
          out.issues.push({
            path: 'condition',
            message: 'matches() needs a literal pattern so it can be vetted at load time',
            ...locate(text, node.range.start),
          });
        } else {
          const problem = regexProblem(pattern.args);
          const range = pattern.range;
          if (problem !== undefined) {
            out.issues.push({
              path: 'condition',
              message: describeProblem(pattern.args, problem),
              ...locate(text, literalOffset(text, range.start, range.end, problem.offset)),
            });
          }
        }
        // cel-js's own matches() is JS RegExp; rules it interprets call celgate's RE2 one instead.
        node.args[0] = MATCHES_FN;
      }
      for (const a of args) analyse(text, a, out, bound);
      return;
    }
    case 'call': {
      const [name, args] = node.args;
      if (name === 'matches' && args.length === 2) {
        out.issues.push({
          path: 'condition',
          message: 'use the receiver form text.matches("pattern")',
          ...locate(text, node.range.start),
        });
      }
      for (const a of args) analyse(text, a, out, bound);
      return;
    }
    case 'map':
      for (const [k, v] of node.args) {
        analyse(text, k, out, bound);
        analyse(text, v, out, bound);
      }
      return;
    case '!_':
    case '-_':
      analyse(text, node.args, out, bound);
      return;
    default:
      for (const a of node.args as ASTNode[]) analyse(text, a, out, bound);
  }
}

function eventTypesFor(roots: readonly Root[]): EventType[] {
  const specific = roots.filter((r): r is Exclude<Root, 'common'> => r !== 'common');
  if (specific.length === 0) return [...EVENT_TYPES];
  const types = new Set<EventType>(specific.map((r) => ROOT_EVENT_TYPE[r]));
  return EVENT_TYPES.filter((t) => types.has(t));
}

export interface CompileOptions {
  /**
   * 'author' (default): text a person wrote, held to MAX_CONDITION_LENGTH and the author AST bounds.
   * 'lowered': CEL generated from validated Detection IR, whose size the IR bounds already limit
   * (celenv.ts, MAX_LOWERED_*), so that no schema-valid pack hits a CEL limit.
   */
  origin?: 'author' | 'lowered';
  /**
   * For lowered CEL: `text` with long string lists replaced by one-element placeholder lists
   * (`["<token>"]`), and the lists by token. The short text is parsed and checked, and the lists go
   * back into the AST before the closure compiler runs; the result is the same program as compiling
   * `text` (if the closure compiler cannot take the rule, `text` itself is compiled). The caller
   * guarantees that substituting the lists into `skeleton` gives `text` (src/detection/lower.ts).
   */
  skeleton?: { text: string; lists: ReadonlyMap<string, readonly string[]> };
}

/** Puts the skeleton's lists back into a parsed AST: a list node whose one element is a token. */
function restoreLists(node: ASTNode, lists: ReadonlyMap<string, readonly string[]>): void {
  if (node.op === 'list' && node.args.length === 1) {
    const only = node.args[0]!;
    const values =
      only.op === 'value' && typeof only.args === 'string' ? lists.get(only.args) : undefined;
    if (values !== undefined) {
      // One constant node holding the whole list (closure.ts compiles it as a list constant): no
      // node per value. Only the closure compiler reads the AST from here on (a fallback recompiles
      // the full text).
      const constantList = node as unknown as { op: string; args: readonly string[] };
      constantList.op = 'value';
      constantList.args = values;
      return;
    }
  }
  const args = (node as { args: unknown }).args;
  if (Array.isArray(args)) {
    for (const a of args) {
      if (a !== null && typeof a === 'object' && 'op' in a) restoreLists(a as ASTNode, lists);
      else if (Array.isArray(a))
        for (const b of a)
          if (b !== null && typeof b === 'object' && 'op' in b) restoreLists(b as ASTNode, lists);
    }
  } else if (args !== null && typeof args === 'object' && 'op' in (args as object))
    restoreLists(args as ASTNode, lists);
}

export function compileCondition(text: string, options: CompileOptions = {}): CompileResult {
  if (typeof text !== 'string' || text.trim() === '')
    return { ok: false, issues: [{ path: 'condition', message: 'condition is empty' }] };
  const lowered = options.origin === 'lowered';
  const maxLength = lowered ? MAX_LOWERED_CONDITION_LENGTH : MAX_CONDITION_LENGTH;
  if (text.length > maxLength) {
    return {
      ok: false,
      issues: [{ path: 'condition', message: `condition is longer than ${maxLength} characters` }],
    };
  }
  const skeleton =
    lowered && options.skeleton !== undefined && options.skeleton.lists.size > 0
      ? options.skeleton
      : undefined;
  let parsed: ReturnType<typeof CEL_ENV.parse>;
  try {
    parsed = (lowered ? CEL_ENV_LOWERED : CEL_ENV).parse(skeleton?.text ?? text);
  } catch (err) {
    return { ok: false, issues: [celIssue(text, err, 'syntax error')] };
  }
  const analysis: Analysis = { reads: new Set(), issues: [] };
  analyse(text, parsed.ast, analysis, new Set());
  if (analysis.issues.length > 0) return { ok: false, issues: analysis.issues };
  const checked = parsed.check();
  if (!checked.valid) return { ok: false, issues: [celIssue(text, checked.error, 'type error')] };
  if (checked.type !== 'bool' && checked.type !== 'dyn') {
    return {
      ok: false,
      issues: [
        { path: 'condition', message: `a condition must be a bool, this one is ${checked.type}` },
      ],
    };
  }
  const reads = [...analysis.reads].sort();
  const roots = [
    ...new Set(reads.map((r) => rootOf(r)).filter((r): r is Root => r !== undefined)),
  ].sort();
  let program: Fn;
  let engine: CompiledCondition['engine'] = 'closure';
  try {
    if (skeleton !== undefined) restoreLists(parsed.ast, skeleton.lists);
    const closure = compileClosure(parsed.ast);
    if (closure !== undefined) program = closure;
    else if (skeleton !== undefined) return compileCondition(text, { origin: 'lowered' });
    else {
      engine = 'cel-js';
      program = (ctx) => parsed((ctx as { cel: () => Record<string, unknown> }).cel());
    }
  } catch (err) {
    return { ok: false, issues: [{ path: 'condition', message: (err as Error).message }] };
  }
  return {
    ok: true,
    condition: {
      text,
      roots,
      reads,
      eventTypes: eventTypesFor(roots),
      readsBody: reads.some((r) => r.includes('.body')),
      engine,
      program,
    },
  };
}
