/**
 * Rule packs as files: YAML text → validated pack, with every problem reported as file:line:column
 * and reason; loading several packs into one rule set. A pack with any problem is rejected whole.
 * Parsing is pure; `loadPackFiles` reads files (and nothing else).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  type Document,
  type Node as YamlNode,
} from 'yaml';
import type { Issue, Validated } from '../errors.js';
import { validatePack, type ValidatedPack } from './rules.js';
import type { CompiledCondition } from './compile.js';
import type { PackSpec, RuleDefinition } from './types.js';

export const MAX_PACK_BYTES = 4 * 1024 * 1024;

export interface LoadedPack extends ValidatedPack {
  file: string;
}

/** Turns `rules[3].priority` into the YAML key path ['rules', 3, 'priority']. */
function keyPath(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const part of path.split('.')) {
    if (part === '') continue;
    const m = /^([^[]*)((?:\[\d+\])*)$/.exec(part);
    if (m === null) {
      out.push(part);
      continue;
    }
    if (m[1] !== '') out.push(m[1]!);
    for (const idx of m[2]!.matchAll(/\[(\d+)\]/g)) out.push(Number(idx[1]));
  }
  return out;
}

/** The source offset of the value (or, for unknown keys, the key) that `path` names. */
function offsetOf(doc: Document, path: string, preferKey: boolean): number | undefined {
  const keys = keyPath(path);
  let node: unknown = doc.contents;
  let keyNode: YamlNode | undefined;
  for (const k of keys) {
    if (isMap(node)) {
      const pair = node.items.find((p) => (p.key as { value?: unknown } | null)?.value === k);
      if (pair === undefined) break;
      keyNode = pair.key as YamlNode;
      node = pair.value;
    } else if (isSeq(node) && typeof k === 'number') {
      keyNode = undefined;
      node = node.items[k];
    } else break;
  }
  const target =
    (preferKey && keyNode !== undefined ? keyNode : (node as YamlNode | undefined)) ?? keyNode;
  return (target as YamlNode | undefined)?.range?.[0];
}

/** Most lines a pack file may have: a pack of MAX_RULES_PER_PACK rules fits; checked before parsing. */
export const MAX_PACK_LINES = 100_000;
/** Most YAML nodes a pack file may hold (keys, values, list items): far above any real pack. */
export const MAX_PACK_NODES = 200_000;
/** Deepest nesting a pack file may have (a pack is about five levels deep). */
export const MAX_PACK_DEPTH = 64;
/** Issues located to a line and column; beyond them issues carry only their path. */
const MAX_LOCATED_ISSUES = 100;

/**
 * Counts nodes and depth without recursion, and finds duplicate keys in a map (in linear time; the
 * YAML library's own check compares every key with every other). Null when all is well.
 */
function shapeProblem(root: unknown): { message: string; offset?: number } | null {
  let nodes = 0;
  const stack: [unknown, number][] = [[root, 0]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (++nodes > MAX_PACK_NODES)
      return { message: `the pack has more than ${MAX_PACK_NODES} YAML nodes` };
    if (depth > MAX_PACK_DEPTH)
      return { message: `the pack is nested deeper than ${MAX_PACK_DEPTH} levels` };
    if (isMap(node)) {
      const keys = new Set<unknown>();
      for (const p of node.items) {
        const k = isScalar(p.key) ? p.key.value : p.key;
        if (keys.has(k))
          return {
            message: `invalid YAML: duplicate key "${String(k)}"`,
            ...((p.key as YamlNode | null)?.range === undefined
              ? {}
              : { offset: (p.key as YamlNode).range![0] }),
          };
        keys.add(k);
        stack.push([p.key, depth + 1], [p.value, depth + 1]);
      }
    } else if (isSeq(node)) for (const item of node.items) stack.push([item, depth + 1]);
  }
  return null;
}

function lineCount(text: string): number {
  let n = 1;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

/**
 * Parses and validates one pack's text. `file` is used in issue locations. Never throws: anything
 * the YAML library or the validator raises (alias bombs, deep nesting) is an issue.
 */
export function parsePack(text: string, file = '<input>'): Validated<LoadedPack> {
  const fail = (message: string, line?: number, column?: number): Validated<LoadedPack> => ({
    ok: false,
    issues: [{ file, ...(line === undefined ? {} : { line, column }), path: '', message }],
  });
  try {
    if (lineCount(text) > MAX_PACK_LINES)
      return fail(`the pack has more than ${MAX_PACK_LINES} lines`);
    const lc = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: false, prettyErrors: false });
    if (doc.errors.length > 0) {
      return {
        ok: false,
        issues: doc.errors.slice(0, MAX_LOCATED_ISSUES).map((e) => {
          const pos = e.linePos?.[0] ?? lc.linePos(e.pos[0]);
          const first = e.message.split('\n')[0]!;
          const message = /call stack/i.test(first)
            ? `the pack is nested too deeply to parse (more than ${MAX_PACK_DEPTH} levels are refused)`
            : `invalid YAML: ${first}`;
          return { file, line: pos?.line, column: pos?.col, path: '', message };
        }),
      };
    }
    const shape = shapeProblem(doc.contents);
    if (shape !== null) {
      const pos = shape.offset === undefined ? undefined : lc.linePos(shape.offset);
      return fail(shape.message, pos?.line, pos?.col);
    }
    const raw = doc.toJS({ maxAliasCount: 100 }) as unknown;
    // A pack file names its default and its rules: a file cut short after `rules:` (a slow
    // writer, a half-saved edit) must not load as an empty pack that allows everything.
    const missing: Issue[] = [];
    if (raw !== null && typeof raw === 'object' && !Array.isArray(raw)) {
      const o = raw as Record<string, unknown>;
      if (o.default_action === undefined || o.default_action === null)
        missing.push({
          path: 'default_action',
          message: 'a pack file must say default_action: allow or block',
        });
      if (o.rules === undefined || o.rules === null)
        missing.push({
          path: 'rules',
          message: 'a pack file must have a rules list (write rules: [] for a pack with no rules)',
        });
    }
    const v = validatePack(raw);
    if (!v.ok || missing.length > 0) {
      return {
        ok: false,
        issues: [...missing, ...(v.ok ? [] : v.issues)].map((i, n) => {
          if (n >= MAX_LOCATED_ISSUES) return { file, path: i.path, message: i.message };
          const offset = offsetOf(doc, i.path, i.message.startsWith('unknown key'));
          const pos = offset === undefined ? undefined : lc.linePos(offset);
          // A condition issue carries its own line/column within the condition text; report the
          // file position of the condition value and keep the inner position in the message.
          const inner =
            i.line !== undefined ? ` (condition line ${i.line}, column ${i.column})` : '';
          return {
            file,
            line: pos?.line,
            column: pos?.col,
            path: i.path,
            message: `${i.message}${inner}`,
          };
        }),
      };
    }
    return { ok: true, value: { ...v.value, file } };
  } catch (err) {
    const text = String((err as Error)?.message ?? err).split('\n')[0]!;
    const message =
      err instanceof RangeError || /call stack/i.test(text)
        ? `the pack is nested too deeply to parse (more than ${MAX_PACK_DEPTH} levels are refused)`
        : `invalid YAML: ${text}`;
    return fail(message);
  }
}

/** Pack files under a path: the file itself, or every *.yaml / *.yml in a directory (not *.test.yaml). */
export function packFilesIn(path: string): string[] {
  const st = statSync(path);
  if (!st.isDirectory()) return [path];
  return readdirSync(path)
    .filter((f) => /\.ya?ml$/.test(f) && !/\.test\.ya?ml$/.test(f))
    .sort()
    .map((f) => join(path, f));
}

export function readPackFile(file: string): Validated<LoadedPack> {
  let text: string;
  try {
    const st = statSync(file);
    if (st.size > MAX_PACK_BYTES)
      return {
        ok: false,
        issues: [{ file, path: '', message: `pack is larger than ${MAX_PACK_BYTES} bytes` }],
      };
    text = readFileSync(file, 'utf8');
  } catch (e) {
    return {
      ok: false,
      issues: [{ file, path: '', message: `cannot read pack: ${(e as Error).message}` }],
    };
  }
  return parsePack(text, file);
}

export interface PackSet {
  packs: LoadedPack[];
  rules: RuleDefinition[];
  /** The most restrictive default among the packs: block if any pack defaults to block. */
  defaultAction: 'allow' | 'block';
  /** Conditions already compiled during validation, by text (pass to `registry.replaceAll`). */
  compiled: ReadonlyMap<string, CompiledCondition>;
}

/** Loads every pack under `paths`; any problem in any pack rejects the whole set. */
export function loadPackFiles(paths: readonly string[]): Validated<PackSet> {
  const issues: Issue[] = [];
  const packs: LoadedPack[] = [];
  for (const p of paths) {
    let files: string[];
    try {
      files = packFilesIn(p);
    } catch (e) {
      issues.push({ file: p, path: '', message: `cannot read: ${(e as Error).message}` });
      continue;
    }
    for (const f of files) {
      const v = readPackFile(f);
      if (v.ok) packs.push(v.value);
      else issues.push(...v.issues);
    }
  }
  if (issues.length > 0) return { ok: false, issues };
  return combinePacks(packs);
}

export function combinePacks(packs: LoadedPack[]): Validated<PackSet> {
  const issues: Issue[] = [];
  const owner = new Map<string, string>();
  const seenPacks = new Map<string, string>();
  for (const p of packs) {
    const prevFile = seenPacks.get(p.pack.id);
    if (prevFile !== undefined)
      issues.push({
        file: p.file,
        path: 'id',
        message: `pack id "${p.pack.id}" is also used by ${prevFile}`,
      });
    seenPacks.set(p.pack.id, p.file);
    for (const r of p.pack.rules) {
      const other = owner.get(r.id);
      if (other !== undefined)
        issues.push({
          file: p.file,
          path: `rules(${r.id})`,
          message: `rule id "${r.id}" is also defined in pack "${other}"`,
        });
      owner.set(r.id, p.pack.id);
    }
  }
  if (issues.length > 0) return { ok: false, issues };
  return {
    ok: true,
    value: {
      packs,
      rules: packs.flatMap(packRules),
      defaultAction: packs.some((p) => p.pack.default_action === 'block') ? 'block' : 'allow',
      compiled: new Map(
        packs.flatMap((p) => p.compiled.map((c) => [c.condition.text, c.condition] as const)),
      ),
    },
  };
}

export function packRules(loaded: { pack: PackSpec }): RuleDefinition[] {
  return loaded.pack.rules.map((r) => ({
    ...r,
    pack_id: loaded.pack.id,
    kind: 'enforcement' as const,
  }));
}
