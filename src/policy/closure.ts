/**
 * Compiles a type-checked cel-js AST into a tree of JS closures, so the request path evaluates
 * without the cel-js interpreter. Covers the constructs rules use (field access, header(), string
 * functions, comparisons, `in`, logic with CEL's error absorption, has(), exists()/all() macros);
 * anything else returns `undefined` and the rule runs on cel-js instead. Semantics are pinned
 * against cel-js by a differential test. Pure; no I/O.
 *
 * Errors: a read of something the event does not carry throws `Absent` (the rule does not match);
 * anything else throws `EvalFault` (the decision fails closed). Types, coercions and contract
 * readers: closure-values.ts.
 */
import type { ASTNode } from '@marcbachmann/cel-js';
import { ABSENT, MATCHES_FN } from './celenv.js';
import { HEADER_FUNCTION_ROOTS } from './fields.js';
import {
  asBool,
  asString,
  celEquals,
  constant,
  contractSelect,
  EvalFault,
  isMap,
  lowerAscii,
  sizeOf,
  upperAscii,
  type Compiled,
  type Ctx,
  type Fn,
  type SType,
} from './closure-values.js';
import { compileRegex } from './regex.js';
import { cleanPath, underPath } from './paths.js';
import { foldCase } from './casefold.js';
import { multiMatcher, naiveMultiMatch, type MultiOp } from './multimatch.js';

/** `s.containsAny(list)` and friends: one pass over `s` (multimatch.ts). */
const MULTI: Readonly<Record<string, MultiOp>> = {
  containsAny: 'contains',
  startsWithAny: 'startsWith',
  endsWithAny: 'endsWith',
};

const ROOT_VARIABLES = new Set(['common', 'http', 'dns', 'mcp', 'process']);
const NO_HEADER = Symbol('no-header');

/** Scope for macro variables: each bound name reads a mutable slot (evaluation is synchronous). */
type Scope = ReadonlyMap<string, { v: unknown }>;

class Compiler {
  compile(node: ASTNode, scope: Scope): Compiled | undefined {
    switch (node.op) {
      case 'value': {
        const v = node.args;
        if (typeof v === 'string') return constant(v, 'string');
        // A long string list put back by compile.ts restoreLists (cel-js never makes array values).
        if (Array.isArray(v)) return constant(v, 'list');
        if (typeof v === 'boolean') return constant(v, 'bool');
        if (v === null) return constant(null, 'null');
        if (typeof v === 'number') return constant(v, 'double');
        if (
          typeof v === 'bigint' &&
          v >= BigInt(Number.MIN_SAFE_INTEGER) &&
          v <= BigInt(Number.MAX_SAFE_INTEGER)
        ) {
          return constant(Number(v), 'int');
        }
        return undefined;
      }
      case 'id': {
        const name = node.args;
        const slot = scope.get(name);
        if (slot !== undefined) return { fn: () => slot.v, type: 'dyn', throws: false };
        if (!ROOT_VARIABLES.has(name)) return undefined;
        return {
          fn: (ctx) => {
            const v = (ctx as Record<string, unknown>)[name];
            if (v === undefined) throw ABSENT;
            return v;
          },
          type: `obj:${name}`,
          throws: true,
        };
      }
      case '.':
        return this.select(node.args[0], node.args[1], scope);
      case '[]':
        return this.index(node.args[0], node.args[1], scope);
      case 'rcall':
        return this.method(node.args[0], node.args[1], node.args[2], scope);
      case 'call':
        return this.call(node.args[0], node.args[1], scope);
      case 'list': {
        const items = node.args.map((a) => this.compile(a, scope));
        if (items.some((i) => i === undefined)) return undefined;
        const parts = items as Compiled[];
        if (parts.every((p) => p.constant !== undefined))
          return constant(
            parts.map((p) => p.constant!.value),
            'list',
          );
        return {
          fn: (ctx) => parts.map((p) => p.fn(ctx)),
          type: 'list',
          throws: parts.some((p) => p.throws),
        };
      }
      case '&&':
      case '||':
        return this.logic(node.op, node.args[0], node.args[1], scope);
      case '!_': {
        const x = this.compile(node.args, scope);
        if (x === undefined) return undefined;
        const f = x.fn;
        return {
          fn: (ctx) => !asBool(f(ctx)),
          type: 'bool',
          throws: x.throws || x.type !== 'bool',
        };
      }
      case '?:': {
        const [c, a, b] = node.args.map((n) => this.compile(n, scope));
        if (c === undefined || a === undefined || b === undefined) return undefined;
        const cf = c.fn,
          af = a.fn,
          bf = b.fn;
        return {
          fn: (ctx) => (asBool(cf(ctx)) ? af(ctx) : bf(ctx)),
          type: a.type === b.type ? a.type : 'dyn',
          throws: c.throws || a.throws || b.throws,
        };
      }
      case '==':
      case '!=':
        return this.equality(node.op, node.args[0], node.args[1], scope);
      case '<':
      case '<=':
      case '>':
      case '>=':
        return this.ordering(node.op, node.args[0], node.args[1], scope);
      case 'in':
        return this.membership(node.args[0], node.args[1], scope);
      default:
        return undefined; // arithmetic, map literals, unary minus, optionals: cel-js evaluates these
    }
  }

  private select(objNode: ASTNode, field: string, scope: Scope): Compiled | undefined {
    const obj = this.compile(objNode, scope);
    if (obj === undefined) return undefined;
    const of = obj.fn;
    if (obj.type.startsWith('obj:')) {
      const entry = contractSelect(obj.type, field);
      return entry === null ? undefined : { fn: entry.fn, type: entry.type, throws: true };
    }
    if (obj.type === 'map' || obj.type === 'dyn') {
      return {
        fn: (ctx) => {
          const o = of(ctx);
          if (!isMap(o)) throw new EvalFault(`cannot select field "${field}" from a non-map value`);
          if (!Object.hasOwn(o, field)) throw ABSENT;
          return o[field];
        },
        type: 'dyn',
        throws: true,
      };
    }
    return undefined;
  }

  private index(objNode: ASTNode, keyNode: ASTNode, scope: Scope): Compiled | undefined {
    const obj = this.compile(objNode, scope);
    const key = this.compile(keyNode, scope);
    if (obj === undefined || key === undefined || obj.type.startsWith('obj:')) return undefined;
    const of = obj.fn,
      kf = key.fn;
    return {
      fn: (ctx) => {
        const o = of(ctx);
        const k = kf(ctx);
        if (Array.isArray(o)) {
          if (typeof k !== 'number' || !Number.isInteger(k))
            throw new EvalFault('list index must be an int');
          if (k < 0 || k >= o.length) throw new EvalFault(`index ${k} out of range`);
          return o[k];
        }
        if (isMap(o)) {
          if (typeof k !== 'string') throw new EvalFault('map key must be a string');
          if (!Object.hasOwn(o, k)) throw ABSENT;
          return o[k];
        }
        throw new EvalFault('value does not support indexing');
      },
      type: 'dyn',
      throws: true,
    };
  }

  private method(
    name: string,
    recvNode: ASTNode,
    argNodes: ASTNode[],
    scope: Scope,
  ): Compiled | undefined {
    if ((name === 'exists' || name === 'all') && argNodes.length === 2)
      return this.quantifier(name, recvNode, argNodes, scope);
    const recv = this.compile(recvNode, scope);
    if (recv === undefined) return undefined;
    const rf = recv.fn;
    if (name === 'header' && argNodes.length === 1) {
      const root = recv.type.slice(4);
      if (!(HEADER_FUNCTION_ROOTS as readonly string[]).includes(root)) return undefined;
      const arg = this.compile(argNodes[0]!, scope);
      if (arg?.constant === undefined || typeof arg.constant.value !== 'string') return undefined;
      const key = arg.constant.value.toLowerCase();
      return {
        fn: (ctx) => {
          const headers = (rf(ctx) as { headers: Record<string, string> }).headers;
          return Object.hasOwn(headers, key) ? headers[key] : NO_HEADER;
        },
        type: 'header',
        throws: true,
      };
    }
    if (recv.type === 'header' && argNodes.length === 0) {
      if (name === 'exists')
        return { fn: (ctx) => rf(ctx) !== NO_HEADER, type: 'bool', throws: recv.throws };
      if (name === 'value') {
        return {
          fn: (ctx) => {
            const v = rf(ctx);
            if (v === NO_HEADER) throw ABSENT;
            return v;
          },
          type: 'string',
          throws: true,
        };
      }
      return undefined;
    }
    if (recv.type !== 'string' && recv.type !== 'dyn') {
      if (
        name === 'size' &&
        argNodes.length === 0 &&
        (recv.type === 'list' || recv.type === 'map')
      ) {
        return { fn: (ctx) => sizeOf(rf(ctx)), type: 'int', throws: recv.throws };
      }
      return undefined;
    }
    const throws = recv.throws || recv.type === 'dyn';
    const str = recv.type === 'string' ? rf : (ctx: Ctx) => asString(rf(ctx));
    if (argNodes.length === 0) {
      if (name === 'lowerAscii')
        return { fn: (ctx) => lowerAscii(str(ctx) as string), type: 'string', throws };
      if (name === 'upperAscii')
        return { fn: (ctx) => upperAscii(str(ctx) as string), type: 'string', throws };
      if (name === 'size') return { fn: (ctx) => sizeOf(str(ctx)), type: 'int', throws };
      if (name === 'cleanPath')
        return { fn: (ctx) => cleanPath(str(ctx) as string), type: 'string', throws };
      if (name === 'foldCase')
        return { fn: (ctx) => foldCase(str(ctx) as string), type: 'string', throws };
      return undefined;
    }
    if (argNodes.length !== 1) return undefined;
    const arg = this.compile(argNodes[0]!, scope);
    const multi = Object.hasOwn(MULTI, name) ? MULTI[name]! : undefined;
    if (multi !== undefined && arg !== undefined && (arg.type === 'list' || arg.type === 'dyn')) {
      const values = arg.constant?.value;
      if (Array.isArray(values) && values.every((v) => typeof v === 'string')) {
        const m = multiMatcher(multi, values as string[]);
        return { fn: (ctx) => m.test(str(ctx) as string), type: 'bool', throws };
      }
      const lf = arg.fn;
      return {
        fn: (ctx) => {
          const l = lf(ctx);
          if (!Array.isArray(l) || !l.every((v) => typeof v === 'string'))
            throw new EvalFault(`${name}() needs a list of strings`);
          return naiveMultiMatch(multi, str(ctx) as string, l as string[]);
        },
        type: 'bool',
        throws: true,
      };
    }
    if (arg === undefined || (arg.type !== 'string' && arg.type !== 'dyn')) return undefined;
    if (name === 'matches' || name === MATCHES_FN) {
      if (arg.constant === undefined) return undefined; // dynamic patterns are refused at compile time
      const re = compileRegex(arg.constant.value as string);
      return { fn: (ctx) => re.test(str(ctx) as string), type: 'bool', throws };
    }
    const af = arg.type === 'string' ? arg.fn : (ctx: Ctx) => asString(arg.fn(ctx));
    const argThrows = throws || arg.throws || arg.type === 'dyn';
    if (arg.constant !== undefined) {
      const c = arg.constant.value as string;
      if (name === 'underPath')
        return { fn: (ctx) => underPath(str(ctx) as string, c), type: 'bool', throws };
      if (name === 'contains')
        return { fn: (ctx) => (str(ctx) as string).includes(c), type: 'bool', throws };
      if (name === 'startsWith')
        return { fn: (ctx) => (str(ctx) as string).startsWith(c), type: 'bool', throws };
      if (name === 'endsWith')
        return { fn: (ctx) => (str(ctx) as string).endsWith(c), type: 'bool', throws };
      return undefined;
    }
    if (name === 'underPath')
      return {
        fn: (ctx) => underPath(str(ctx) as string, af(ctx) as string),
        type: 'bool',
        throws: argThrows,
      };
    if (name === 'contains')
      return {
        fn: (ctx) => (str(ctx) as string).includes(af(ctx) as string),
        type: 'bool',
        throws: argThrows,
      };
    if (name === 'startsWith')
      return {
        fn: (ctx) => (str(ctx) as string).startsWith(af(ctx) as string),
        type: 'bool',
        throws: argThrows,
      };
    if (name === 'endsWith')
      return {
        fn: (ctx) => (str(ctx) as string).endsWith(af(ctx) as string),
        type: 'bool',
        throws: argThrows,
      };
    return undefined;
  }

  private quantifier(
    name: 'exists' | 'all',
    recvNode: ASTNode,
    argNodes: ASTNode[],
    scope: Scope,
  ): Compiled | undefined {
    const [varNode, bodyNode] = argNodes;
    if (argNodes.length !== 2 || varNode?.op !== 'id' || bodyNode === undefined) return undefined;
    const recv = this.compile(recvNode, scope);
    if (recv === undefined || recv.type.startsWith('obj:') || recv.type === 'header')
      return undefined;
    const slot = { v: undefined as unknown };
    const inner = new Map(scope);
    inner.set(varNode.args, slot);
    const body = this.compile(bodyNode, inner);
    if (body === undefined) return undefined;
    const rf = recv.fn,
      bf = body.fn;
    const want = name === 'exists'; // exists: stop at the first true; all: stop at the first false
    return {
      fn: (ctx) => {
        const r = rf(ctx);
        const items = Array.isArray(r) ? r : isMap(r) ? Object.keys(r) : undefined;
        if (items === undefined) throw new EvalFault(`${name}() needs a list or map`);
        let firstError: unknown;
        for (const item of items) {
          slot.v = item;
          try {
            if (asBool(bf(ctx)) === want) return want;
          } catch (e) {
            firstError ??= e;
          }
        }
        if (firstError !== undefined) throw firstError;
        return !want;
      },
      type: 'bool',
      throws: true,
    };
  }

  private call(name: string, argNodes: ASTNode[], scope: Scope): Compiled | undefined {
    if (name === 'has' && argNodes.length === 1 && argNodes[0]!.op === '.') {
      const [objNode, field] = argNodes[0]!.args as [ASTNode, string];
      const obj = this.compile(objNode, scope);
      if (obj === undefined) return undefined;
      const of = obj.fn;
      return {
        fn: (ctx) => {
          const o = of(ctx);
          if (!isMap(o)) throw new EvalFault('has() needs a map or message');
          return Object.hasOwn(o, field) && o[field] !== undefined;
        },
        type: 'bool',
        throws: true,
      };
    }
    if (name === 'size' && argNodes.length === 1) {
      const x = this.compile(argNodes[0]!, scope);
      if (x === undefined || x.type.startsWith('obj:')) return undefined;
      const xf = x.fn;
      return { fn: (ctx) => sizeOf(xf(ctx)), type: 'int', throws: x.throws || x.type === 'dyn' };
    }
    return undefined;
  }

  private logic(
    op: '&&' | '||',
    aNode: ASTNode,
    bNode: ASTNode,
    scope: Scope,
  ): Compiled | undefined {
    const a = this.compile(aNode, scope);
    const b = this.compile(bNode, scope);
    if (a === undefined || b === undefined) return undefined;
    const af = a.fn,
      bf = b.fn;
    const typed = a.type === 'bool' && b.type === 'bool';
    const short = op === '&&' ? false : true; // the value that decides without the other side
    if (!a.throws && typed) {
      return op === '&&'
        ? {
            fn: (ctx) => (af(ctx) as boolean) && (bf(ctx) as boolean),
            type: 'bool',
            throws: b.throws,
          }
        : {
            fn: (ctx) => (af(ctx) as boolean) || (bf(ctx) as boolean),
            type: 'bool',
            throws: b.throws,
          };
    }
    // CEL is commutative over errors: `error && false` is false, `error || true` is true.
    return {
      fn: (ctx) => {
        let error: unknown;
        try {
          if (asBool(af(ctx)) === short) return short;
        } catch (e) {
          error = e;
        }
        const bv = asBool(bf(ctx)); // if b throws too, its error propagates
        if (bv === short) return short;
        if (error !== undefined) throw error;
        return bv;
      },
      type: 'bool',
      throws: true,
    };
  }

  private equality(
    op: '==' | '!=',
    aNode: ASTNode,
    bNode: ASTNode,
    scope: Scope,
  ): Compiled | undefined {
    const a = this.compile(aNode, scope);
    const b = this.compile(bNode, scope);
    if (a === undefined || b === undefined || a.type === 'header' || b.type === 'header')
      return undefined;
    if (a.type.startsWith('obj:') || b.type.startsWith('obj:')) return undefined;
    const af = a.fn,
      bf = b.fn;
    const throws = a.throws || b.throws;
    const primitive = (t: SType) =>
      t === 'string' || t === 'bool' || t === 'int' || t === 'double' || t === 'null';
    const neg = op === '!=';
    if (primitive(a.type) && primitive(b.type)) {
      if (b.constant !== undefined) {
        const c = b.constant.value;
        return { fn: neg ? (ctx) => af(ctx) !== c : (ctx) => af(ctx) === c, type: 'bool', throws };
      }
      return {
        fn: neg ? (ctx) => af(ctx) !== bf(ctx) : (ctx) => af(ctx) === bf(ctx),
        type: 'bool',
        throws,
      };
    }
    return {
      fn: neg ? (ctx) => !celEquals(af(ctx), bf(ctx)) : (ctx) => celEquals(af(ctx), bf(ctx)),
      type: 'bool',
      throws,
    };
  }

  private ordering(
    op: '<' | '<=' | '>' | '>=',
    aNode: ASTNode,
    bNode: ASTNode,
    scope: Scope,
  ): Compiled | undefined {
    const a = this.compile(aNode, scope);
    const b = this.compile(bNode, scope);
    if (a === undefined || b === undefined) return undefined;
    const ok = (t: SType) => t === 'int' || t === 'double' || t === 'string' || t === 'dyn';
    if (!ok(a.type) || !ok(b.type)) return undefined;
    const af = a.fn,
      bf = b.fn;
    const cmp = (x: unknown, y: unknown): boolean => {
      const numeric = typeof x === 'number' && typeof y === 'number';
      if (!numeric && !(typeof x === 'string' && typeof y === 'string'))
        throw new EvalFault(`no ordering between ${typeof x} and ${typeof y}`);
      const l = x as number,
        r = y as number;
      return op === '<' ? l < r : op === '<=' ? l <= r : op === '>' ? l > r : l >= r;
    };
    return { fn: (ctx) => cmp(af(ctx), bf(ctx)), type: 'bool', throws: true };
  }

  private membership(aNode: ASTNode, bNode: ASTNode, scope: Scope): Compiled | undefined {
    const a = this.compile(aNode, scope);
    const b = this.compile(bNode, scope);
    if (
      a === undefined ||
      b === undefined ||
      (b.type !== 'list' && b.type !== 'map' && b.type !== 'dyn')
    )
      return undefined;
    const af = a.fn,
      bf = b.fn;
    if (
      b.constant !== undefined &&
      (b.constant.value as unknown[]).every((x) => typeof x === 'string')
    ) {
      const set = new Set(b.constant.value as string[]);
      return { fn: (ctx) => set.has(af(ctx) as string), type: 'bool', throws: a.throws };
    }
    if (
      b.constant !== undefined &&
      a.type === 'int' &&
      (b.constant.value as unknown[]).every((x) => typeof x === 'number')
    ) {
      const set = new Set(b.constant.value as number[]);
      return { fn: (ctx) => set.has(af(ctx) as number), type: 'bool', throws: a.throws };
    }
    return {
      fn: (ctx) => {
        const x = af(ctx);
        const coll = bf(ctx);
        if (Array.isArray(coll)) return coll.some((y) => celEquals(x, y));
        if (isMap(coll)) return typeof x === 'string' && Object.hasOwn(coll, x);
        throw new EvalFault('"in" needs a list or map');
      },
      type: 'bool',
      throws: true,
    };
  }
}

/** Returns a closure for the whole condition, or undefined when cel-js must evaluate it. */
export function compileClosure(ast: ASTNode): Fn | undefined {
  const c = new Compiler().compile(ast, new Map());
  if (c === undefined || (c.type !== 'bool' && c.type !== 'dyn')) return undefined;
  const f = c.fn;
  if (c.type === 'bool') return f;
  return (ctx) => asBool(f(ctx));
}
