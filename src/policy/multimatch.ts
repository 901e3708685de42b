/**
 * Literal multi-pattern matchers for the CEL functions `containsAny`, `startsWithAny` and
 * `endsWithAny` (list<string> argument): one pass over the input whatever the number of values.
 * `contains` is Aho–Corasick; `startsWith` walks a trie from the start of the input, `endsWith` a trie
 * of the reversed values from its end. Matching is over UTF-16 code units, exactly like
 * String.prototype.includes/startsWith/endsWith (CEL `contains` and friends in both evaluators).
 * Pure; no I/O. Owns matcher construction and matching; must not fold case (casefold.ts does).
 *
 * Hand-written rather than modern-ahocorasick: that library matches whole grapheme clusters (`e`
 * does not occur in `e\u0301`, which CEL's contains says it does) and built a 1,000-value matcher in
 * about 36 ms, against bench/detection.ts's goal of lowering and compiling 100 such rules in 50 ms.
 * Building inserts through a reused hash table of edges and copies the trie out in a compact
 * sorted form (a few nanoseconds per character, and little fresh memory per matcher).
 */

export type MultiOp = 'contains' | 'startsWith' | 'endsWith';

export interface MultiMatcher {
  readonly op: MultiOp;
  /** True when some value occurs in `text` as the op says. */
  test(text: string): boolean;
}

/**
 * Build-time storage, reused across builds (fresh multi-megabyte typed arrays per build cost more
 * in page faults than the insertion; bench/detection.ts, "lower and compile 100 rules of 1,000
 * values"). Per node: its parent, unit, first child and next sibling, and whether a value ends there.
 */
const scratch = {
  firstChild: new Int32Array(0),
  nextSibling: new Int32Array(0),
  fill: new Int32Array(0),
  parent: new Int32Array(0),
  unitOf: new Uint16Array(0),
  terminal: new Uint8Array(0),
  path: new Int32Array(0),
  /** The values' UTF-16 units (unitsOf), and a Buffer over the same memory to write them with. */
  units: new Uint16Array(0),
  unitBytes: Buffer.alloc(0),
};

/**
 * A trie in compressed-sparse-row form: the children of node p are edges start[p] … start[p + 1] - 1,
 * sorted by UTF-16 unit (edgeUnit) with their node (edgeChild). Compact — node numbers are 16-bit
 * up to 65,536 nodes, so about 7 bytes a node (9 with failure links) — because the memory a build
 * allocates, and the garbage collection it brings, is most of what building costs (bench/detection.ts,
 * "lower and compile 100 rules of 1,000 values"). A lookup scans a node's few children (binary
 * search when it has many).
 */
/** Node numbers: 16-bit when the trie has at most 65,536 nodes, else 32-bit. */
type NodeIndex = Uint16Array | Uint32Array;

class Trie {
  constructor(
    readonly nodes: number,
    readonly terminal: Uint8Array,
    readonly start: NodeIndex,
    readonly edgeUnit: Uint16Array,
    readonly edgeChild: NodeIndex,
    /** Aho–Corasick failure links when built for `contains`, else empty. */
    readonly fail: NodeIndex,
  ) {}

  /** The child of `node` along `unit`, or -1. */
  get(node: number, unit: number): number {
    const units = this.edgeUnit;
    let lo = this.start[node]!;
    let hi = this.start[node + 1]!;
    if (hi - lo <= 8) {
      for (; lo < hi; lo++) {
        const u = units[lo]!;
        if (u === unit) return this.edgeChild[lo]!;
        if (u > unit) return -1;
      }
      return -1;
    }
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const u = units[mid]!;
      if (u === unit) return this.edgeChild[mid]!;
      if (u < unit) lo = mid + 1;
      else hi = mid;
    }
    return -1;
  }
}

/** The UTF-16 code units of `text` (from index 0) in reused storage, valid until the next call. */
function unitsOf(text: string): Uint16Array {
  if (scratch.units.length < text.length) {
    scratch.units = new Uint16Array(Math.max(text.length, scratch.units.length * 2));
    scratch.unitBytes = Buffer.from(scratch.units.buffer);
  }
  scratch.unitBytes.write(text, 0, 'utf16le');
  return scratch.units;
}

/** Inserts every value (read forwards, or backwards for suffixes) and returns the compact trie. */
function build(values: readonly string[], reverse: boolean, withFail: boolean): Trie {
  let chars = 0;
  let longest = 0;
  for (const v of values) {
    chars += v.length;
    if (v.length > longest) longest = v.length;
  }
  const cap = chars + 1;
  if (scratch.parent.length < cap) {
    scratch.parent = new Int32Array(cap);
    scratch.firstChild = new Int32Array(cap);
    scratch.nextSibling = new Int32Array(cap);
    scratch.fill = new Int32Array(cap);
    scratch.unitOf = new Uint16Array(cap);
    scratch.terminal = new Uint8Array(cap);
  } else scratch.terminal.fill(0, 0, cap);
  if (scratch.path.length < longest + 1) scratch.path = new Int32Array(longest + 1);
  const { parent, firstChild, nextSibling, unitOf, terminal, path, fill } = scratch;
  firstChild[0] = 0;
  // Every value's UTF-16 units in one typed array, copied natively: reading units from it is
  // cheaper than charCodeAt on each value (bench/detection.ts, "lower and compile 100 rules of
  // 1,000 values").
  const units = unitsOf(values.join(''));
  const dir = reverse ? -1 : 1;
  let nodes = 1;
  let prevAt = 0; // where the previous value's first unit in reading order is
  let prevLength = 0;
  let offset = 0;
  for (const value of values) {
    const n = value.length;
    const at = reverse ? offset + n - 1 : offset;
    offset += n;
    // The part shared with the previous value is already a path of the trie: no lookups for it
    // (lists often come sorted or grouped by prefix).
    const m = n < prevLength ? n : prevLength;
    let j = 0;
    while (j < m && units[at + dir * j] === units[prevAt + dir * j]) j++;
    prevAt = at;
    prevLength = n;
    let node = path[j]!;
    // Walk existing children (sibling lists: nodes are appended, so building touches memory in
    // order) until the value leaves the trie; below that every node is new and needs no lookup.
    for (; j < n; j++) {
      const unit = units[at + dir * j]!;
      let c = firstChild[node]!;
      while (c !== 0 && unitOf[c] !== unit) c = nextSibling[c]!;
      if (c === 0) break;
      node = c;
      path[j + 1] = node;
    }
    for (; j < n; j++) {
      const next = nodes++;
      parent[next] = node;
      unitOf[next] = units[at + dir * j]!;
      firstChild[next] = 0;
      nextSibling[next] = firstChild[node]!;
      firstChild[node] = next;
      node = next;
      path[j + 1] = node;
    }
    terminal[node] = 1;
  }
  // One allocation for every array the matcher keeps (fresh typed arrays cost page faults).
  const failLength = withFail ? nodes : 0;
  const Index = nodes <= 0x10000 ? Uint16Array : Uint32Array;
  const w = Index.BYTES_PER_ELEMENT;
  const indexes = nodes + 1 + nodes + failLength;
  const buffer = new ArrayBuffer(indexes * w + nodes * 2 + nodes);
  const start = new Index(buffer, 0, nodes + 1);
  const edgeChild = new Index(buffer, (nodes + 1) * w, nodes);
  const fail = new Index(buffer, (2 * nodes + 1) * w, failLength);
  const edgeUnit = new Uint16Array(buffer, indexes * w, nodes);
  const terminalOut = new Uint8Array(buffer, indexes * w + nodes * 2, nodes);
  terminalOut.set(terminal.subarray(0, nodes));
  for (let c = 1; c < nodes; c++) start[parent[c]! + 1]!++;
  for (let p = 0; p < nodes; p++) start[p + 1]! += start[p]!;
  fill.set(start.subarray(0, nodes));
  for (let c = 1; c < nodes; c++) {
    const p = parent[c]!;
    const unit = unitOf[c]!;
    // Insertion sort within the parent's range (children are few but arrive in any unit order).
    let at = fill[p]!;
    fill[p] = at + 1;
    const first = start[p]!;
    while (at > first && edgeUnit[at - 1]! > unit) {
      edgeUnit[at] = edgeUnit[at - 1]!;
      edgeChild[at] = edgeChild[at - 1]!;
      at--;
    }
    edgeUnit[at] = unit;
    edgeChild[at] = c;
  }
  return new Trie(nodes, terminalOut, start, edgeUnit, edgeChild, fail);
}

class PrefixMatcher implements MultiMatcher {
  readonly op = 'startsWith' as const;
  constructor(private readonly trie: Trie) {}
  test(text: string): boolean {
    const t = this.trie;
    if (t.terminal[0] === 1) return true;
    let node = 0;
    for (let i = 0; i < text.length; i++) {
      node = t.get(node, text.charCodeAt(i));
      if (node < 0) return false;
      if (t.terminal[node] === 1) return true;
    }
    return false;
  }
}

class SuffixMatcher implements MultiMatcher {
  readonly op = 'endsWith' as const;
  constructor(private readonly trie: Trie) {}
  test(text: string): boolean {
    const t = this.trie;
    if (t.terminal[0] === 1) return true;
    let node = 0;
    for (let i = text.length - 1; i >= 0; i--) {
      node = t.get(node, text.charCodeAt(i));
      if (node < 0) return false;
      if (t.terminal[node] === 1) return true;
    }
    return false;
  }
}

/** Aho–Corasick: failure links by breadth-first search; a node is terminal when a suffix of it is. */
class ContainsMatcher implements MultiMatcher {
  readonly op = 'contains' as const;
  constructor(private readonly trie: Trie) {
    const t = trie;
    const fail = t.fail;
    const queue = scratch.fill; // free once the trie is built, and at least as long
    let head = 0;
    let tail = 0;
    for (let e = t.start[0]!; e < t.start[1]!; e++) queue[tail++] = t.edgeChild[e]!;
    while (head < tail) {
      const p = queue[head++]!;
      for (let e = t.start[p]!, end = t.start[p + 1]!; e < end; e++) {
        const c = t.edgeChild[e]!;
        const unit = t.edgeUnit[e]!;
        let f = fail[p]!;
        let target = 0;
        for (;;) {
          const g = t.get(f, unit);
          if (g >= 0) {
            target = g;
            break;
          }
          if (f === 0) break;
          f = fail[f]!;
        }
        fail[c] = target;
        if (t.terminal[target] === 1) t.terminal[c] = 1;
        queue[tail++] = c;
      }
    }
  }

  test(text: string): boolean {
    const t = this.trie;
    if (t.terminal[0] === 1) return true;
    const fail = t.fail;
    const terminal = t.terminal;
    let node = 0;
    for (let i = 0; i < text.length; i++) {
      const unit = text.charCodeAt(i);
      for (;;) {
        const next = t.get(node, unit);
        if (next >= 0) {
          node = next;
          break;
        }
        if (node === 0) break;
        node = fail[node]!;
      }
      if (terminal[node] === 1) return true;
    }
    return false;
  }
}

/** Builds the matcher for `op` over `values` (an empty value matches every input). */
export function multiMatcher(op: MultiOp, values: readonly string[]): MultiMatcher {
  switch (op) {
    case 'contains':
      return new ContainsMatcher(build(values, false, true));
    case 'startsWith':
      return new PrefixMatcher(build(values, false, false));
    case 'endsWith':
      return new SuffixMatcher(build(values, true, false));
  }
}

/** The reference semantics the matchers must agree with (used by the cel-js fallback and tests). */
export function naiveMultiMatch(op: MultiOp, text: string, values: readonly string[]): boolean {
  switch (op) {
    case 'contains':
      return values.some((v) => text.includes(v));
    case 'startsWith':
      return values.some((v) => text.startsWith(v));
    case 'endsWith':
      return values.some((v) => text.endsWith(v));
  }
}
