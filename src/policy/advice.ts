/**
 * Advice for policy authors, printed by `celgate rules lint` as warnings (never refusals): a
 * prefix test on a file path that was not cleaned first. `mcp.request.arguments.path.startsWith("/etc")`
 * is passed by `/tmp/x/../../../../etc/hostname`; `…path.underPath("/etc")` (or
 * `…path.cleanPath().startsWith(…)`) is not. Pure: parses the condition, evaluates nothing.
 */
import type { ASTNode } from '@marcbachmann/cel-js';
import { CEL_ENV } from './celenv.js';

export interface Advice {
  message: string;
  /** 1-based position in the condition text. */
  line: number;
  column: number;
}

/** Argument names that usually hold a file path. */
const PATH_KEY =
  /(^|_|-)(path|paths|file|filename|filepath|dir|directory|folder|cwd|root|dest|destination|src|source|target)($|_|-)|path$|file$|dir$/i;
/** Fields that hold file paths (HTTP paths are normalised by the gateway before rules see them). */
const PATH_FIELDS = new Set(['process.activity.cwd', 'process.activity.executable']);

function dotted(node: ASTNode): string | undefined {
  if (node.op === 'id') return node.args as string;
  if (node.op === '.') {
    const base = dotted((node.args as [ASTNode, string])[0]);
    return base === undefined ? undefined : `${base}.${(node.args as [ASTNode, string])[1]}`;
  }
  return undefined;
}

/** The argument key a receiver reads: `mcp.request.arguments.path` / `mcp.request.arguments["path"]`. */
function argumentKey(node: ASTNode): string | undefined {
  const d = dotted(node);
  if (d?.startsWith('mcp.request.arguments.')) return d.slice('mcp.request.arguments.'.length);
  if (node.op === '[]') {
    const [obj, idx] = node.args as [ASTNode, ASTNode];
    if (
      dotted(obj) === 'mcp.request.arguments' &&
      idx.op === 'value' &&
      typeof idx.args === 'string'
    )
      return idx.args;
  }
  return undefined;
}

function pathLike(recv: ASTNode, literal: unknown): boolean {
  const key = argumentKey(recv);
  if (key !== undefined)
    return PATH_KEY.test(key) || (typeof literal === 'string' && literal.startsWith('/'));
  const d = dotted(recv);
  return d !== undefined && PATH_FIELDS.has(d);
}

function position(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  return { line: before.split('\n').length, column: offset - before.lastIndexOf('\n') };
}

/** Warnings for one condition; [] when it does not parse (the compiler reports that). */
export function conditionAdvice(text: string): Advice[] {
  let ast: ASTNode;
  try {
    ast = CEL_ENV.parse(text).ast;
  } catch {
    return [];
  }
  const out: Advice[] = [];
  const walk = (node: unknown): void => {
    if (node === null || typeof node !== 'object') return;
    if (Array.isArray(node)) {
      for (const n of node) walk(n);
      return;
    }
    const n = node as ASTNode;
    if (n.op === 'rcall') {
      const [name, recv, args] = n.args as [string, ASTNode, ASTNode[]];
      const lit = args[0]?.op === 'value' ? args[0].args : undefined;
      if (name === 'startsWith' && pathLike(recv, lit)) {
        const what =
          argumentKey(recv) !== undefined
            ? `mcp.request.arguments.${argumentKey(recv)}`
            : dotted(recv)!;
        out.push({
          message: `${what}.startsWith(…) compares a path that was not cleaned: "/tmp/x/../../etc/passwd" passes it; use ${what}.underPath(${typeof lit === 'string' ? JSON.stringify(lit) : '…'}) or .cleanPath().startsWith(…)`,
          ...position(text, n.range?.start ?? 0),
        });
      }
    }
    if ('args' in n) walk(n.args);
  };
  walk(ast);
  return out;
}
