/**
 * Reads YAML or JSON pack text into a plain value plus a locator that maps a value path to its
 * 1-based source line, so validation issues can say where the problem is. Never throws on input.
 * Pure (text in, value out); no file I/O.
 */
import { LineCounter, isMap, isSeq, parseDocument, type Node } from 'yaml';
import type { Issue } from '../errors.js';
import { fastYaml } from './fast-yaml.js';

export type PathSegment = string | number;

export interface SourceDoc {
  value: unknown;
  /** Line of the value at `path`, or of its key when `key` is true; undefined when unknown. */
  lineOf(path: readonly PathSegment[], key?: boolean): number | undefined;
}

export type Parsed = { ok: true; doc: SourceDoc } | { ok: false; issues: Issue[] };

export function parseSource(text: string, file?: string): Parsed {
  // Fast paths for valid input: JSON, or the plain YAML subset packs use. Lines are only needed
  // for issues, so the full parse that knows them runs lazily, on the first lineOf() call.
  const trimmed = text.trimStart();
  let fast: { value: unknown } | undefined;
  if (trimmed.startsWith('{')) {
    try {
      fast = { value: JSON.parse(text) };
    } catch {
      fast = undefined;
    }
  } else fast = fastYaml(text);
  if (fast !== undefined) {
    let full: SourceDoc | undefined;
    return {
      ok: true,
      doc: {
        value: fast.value,
        lineOf(path, key) {
          if (full === undefined) {
            const p = fullParse(text, file);
            full = p.ok ? p.doc : { value: undefined, lineOf: () => undefined };
          }
          return full.lineOf(path, key);
        },
      },
    };
  }
  return fullParse(text, file);
}

/** The full `yaml` parse, with a line locator. */
function fullParse(text: string, file?: string): Parsed {
  const lc = new LineCounter();
  let doc;
  try {
    doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  } catch (err) {
    return {
      ok: false,
      issues: [{ file, path: '', message: `cannot parse: ${(err as Error).message}` }],
    };
  }
  if (doc.errors.length > 0) {
    return {
      ok: false,
      issues: doc.errors.map((e) => ({
        file,
        line: lc.linePos(e.pos[0]).line,
        column: lc.linePos(e.pos[0]).col,
        path: '',
        message: `YAML: ${e.message.split('\n')[0]}`,
      })),
    };
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    return {
      ok: false,
      issues: [{ file, path: '', message: `cannot read: ${(err as Error).message}` }],
    };
  }
  const lineAt = (offset: number | undefined): number | undefined =>
    offset === undefined ? undefined : lc.linePos(offset).line;
  return {
    ok: true,
    doc: {
      value,
      lineOf(path, key = false) {
        let node: unknown = doc.contents;
        let keyNode: Node | undefined;
        for (const seg of path) {
          keyNode = undefined;
          if (isMap(node)) {
            const pair = node.items.find(
              (p) => (p.key as { value?: unknown } | null)?.value === seg,
            );
            if (pair === undefined) return lineAt((node as Node).range?.[0]);
            keyNode = pair.key as Node;
            node = pair.value;
          } else if (isSeq(node) && typeof seg === 'number') {
            node = node.items[seg];
          } else {
            break;
          }
        }
        const target = key && keyNode !== undefined ? keyNode : (node as Node | null);
        return lineAt(target?.range?.[0]);
      },
    },
  };
}

/** Renders a value path as `rules[3].match.all[0]`. */
export function pathString(path: readonly PathSegment[]): string {
  let out = '';
  for (const seg of path)
    out += typeof seg === 'number' ? `[${seg}]` : out === '' ? seg : `.${seg}`;
  return out;
}
