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
 * Transitions live in one open-addressing table of typed arrays, so building costs a few
 * nanoseconds per character.
 */

export type MultiOp = 'contains' | 'startsWith' | 'endsWith';

export interface MultiMatcher {
  readonly op: MultiOp;
  /** True when some value occurs in `text` as the op says. */
  test(text: string): boolean;
}

/** The smallest power of two ≥ 2n (load factor at most 1/2) and its bit count. */
function tableSize(n: number): { size: number; bits: number } {
  let size = 16;
  let bits = 4;
  while (size < n * 2) {
    size *= 2;
    bits++;
  }
  return { size, bits };
}

// Fibonacci hashing: the high bits of the product are the well-mixed ones.
const slotOf = (node: number, unit: number, shift: number): number =>
  Math.imul(node ^ Math.imul(unit, 0x85ebca77), 0x9e3779b1) >>> shift;

/**
 * Build-time storage, reused across builds: a list is inserted here (one node per character at
 * most), then copied out at its real node count. Fresh multi-megabyte typed arrays per build cost
 * more in page faults than the whole insertion (bench/detection.ts, "lower and compile 100 rules
 * of 1,000 values").
 */
const scratch = {
  keyNode: new Int32Array(0),
  keyUnit: new Uint16Array(0),
  child: new Int32Array(0),
  terminal: new Uint8Array(0),
  firstChild: new Int32Array(0),
  nextSibling: new Int32Array(0),
  unitOf: new Uint16Array(0),
};

/**
 * A trie whose edges (node, UTF-16 unit) → child are kept in one open-addressing hash table of
 * typed arrays. 0 means "none" everywhere (the root is never a child; table keys hold node + 1).
 */
class Trie {
  constructor(
    readonly nodes: number,
    readonly terminal: Uint8Array,
    /** First child and next sibling of each node (0 = none), for Aho–Corasick's breadth-first pass. */
    readonly firstChild: Int32Array,
    readonly nextSibling: Int32Array,
    readonly unitOf: Uint16Array,
    private readonly keyNode: Int32Array,
    private readonly keyUnit: Uint16Array,
    private readonly child: Int32Array,
    private readonly shift: number,
  ) {}

  /** The child of `node` along `unit`, or -1. */
  get(node: number, unit: number): number {
    const keyNode = this.keyNode;
    const mask = keyNode.length - 1;
    const key = node + 1;
    for (let s = slotOf(node, unit, this.shift); ; s = (s + 1) & mask) {
      const k = keyNode[s]!;
      if (k === 0) return -1;
      if (k === key && this.keyUnit[s] === unit) return this.child[s]!;
    }
  }
}

/** Inserts every value (read forwards, or backwards for suffixes) and returns the compact trie. */
function build(values: readonly string[], reverse: boolean): Trie {
  let chars = 0;
  for (const v of values) chars += v.length;
  const cap = chars + 1;
  const { size, bits } = tableSize(cap);
  const shift = 32 - bits;
  const mask = size - 1;
  if (scratch.keyNode.length < size) {
    scratch.keyNode = new Int32Array(size);
    scratch.keyUnit = new Uint16Array(size);
    scratch.child = new Int32Array(size);
  } else scratch.keyNode.fill(0, 0, size);
  if (scratch.terminal.length < cap) {
    scratch.terminal = new Uint8Array(cap);
    scratch.firstChild = new Int32Array(cap);
    scratch.nextSibling = new Int32Array(cap);
    scratch.unitOf = new Uint16Array(cap);
  } else {
    scratch.terminal.fill(0, 0, cap);
    scratch.firstChild.fill(0, 0, cap);
  }
  const { keyNode, keyUnit, child, terminal, firstChild, nextSibling, unitOf } = scratch;
  let nodes = 1;
  for (const value of values) {
    let node = 0;
    const n = value.length;
    for (let j = 0; j < n; j++) {
      const unit = value.charCodeAt(reverse ? n - 1 - j : j);
      const key = node + 1;
      let s = slotOf(node, unit, shift);
      let next = -1;
      for (; ; s = (s + 1) & mask) {
        const k = keyNode[s]!;
        if (k === 0) break;
        if (k === key && keyUnit[s] === unit) {
          next = child[s]!;
          break;
        }
      }
      if (next === -1) {
        next = nodes++;
        keyNode[s] = key;
        keyUnit[s] = unit;
        child[s] = next;
        unitOf[next] = unit;
        nextSibling[next] = firstChild[node]!;
        firstChild[node] = next;
      }
      node = next;
    }
    terminal[node] = 1;
  }
  // Copy out at the real size: shared prefixes make far fewer nodes than characters.
  const t = tableSize(nodes);
  const tShift = 32 - t.bits;
  const tMask = t.size - 1;
  const outNode = new Int32Array(t.size);
  const outUnit = new Uint16Array(t.size);
  const outChild = new Int32Array(t.size);
  // Walk the edges by parent (first child / next sibling) rather than scanning the big table.
  for (let p = 0; p < nodes; p++) {
    for (let c = firstChild[p]!; c !== 0; c = nextSibling[c]!) {
      const unit = unitOf[c]!;
      let d = slotOf(p, unit, tShift);
      while (outNode[d] !== 0) d = (d + 1) & tMask;
      outNode[d] = p + 1;
      outUnit[d] = unit;
      outChild[d] = c;
    }
  }
  return new Trie(
    nodes,
    terminal.slice(0, nodes),
    firstChild.slice(0, nodes),
    nextSibling.slice(0, nodes),
    unitOf.slice(0, nodes),
    outNode,
    outUnit,
    outChild,
    tShift,
  );
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
  private readonly fail: Int32Array;
  constructor(private readonly trie: Trie) {
    const t = trie;
    const fail = new Int32Array(t.nodes);
    const queue = new Int32Array(t.nodes);
    let head = 0;
    let tail = 0;
    for (let c = t.firstChild[0]!; c !== 0; c = t.nextSibling[c]!) queue[tail++] = c;
    while (head < tail) {
      const p = queue[head++]!;
      for (let c = t.firstChild[p]!; c !== 0; c = t.nextSibling[c]!) {
        const unit = t.unitOf[c]!;
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
    this.fail = fail;
  }

  test(text: string): boolean {
    const t = this.trie;
    if (t.terminal[0] === 1) return true;
    const fail = this.fail;
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
      return new ContainsMatcher(build(values, false));
    case 'startsWith':
      return new PrefixMatcher(build(values, false));
    case 'endsWith':
      return new SuffixMatcher(build(values, true));
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
