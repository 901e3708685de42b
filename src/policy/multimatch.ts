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

/**
 * A trie whose edges (node, UTF-16 unit) → child are kept in one hash table, sized for one node per
 * character (load factor at most 1/2). 0 means "none" everywhere (the root is never a child; table
 * keys hold node + 1), so fresh typed arrays need no fill (bench/detection.ts, "lower and compile
 * 100 rules of 1,000 values").
 */
class Trie {
  nodes = 1;
  terminal: Uint8Array;
  /** First child and next sibling of each node (0 = none), for Aho–Corasick's breadth-first pass. */
  firstChild: Int32Array;
  nextSibling: Int32Array;
  unitOf: Uint16Array;
  private keyNode: Int32Array;
  private keyUnit: Uint16Array;
  private child: Int32Array;
  private mask: number;
  private shift: number;

  constructor(chars: number) {
    const n = chars + 1;
    this.terminal = new Uint8Array(n);
    this.firstChild = new Int32Array(n);
    this.nextSibling = new Int32Array(n);
    this.unitOf = new Uint16Array(n);
    let size = 16;
    let bits = 4;
    while (size < n * 2) {
      size *= 2;
      bits++;
    }
    this.mask = size - 1;
    this.shift = 32 - bits;
    this.keyNode = new Int32Array(size);
    this.keyUnit = new Uint16Array(size);
    this.child = new Int32Array(size);
  }

  private slot(node: number, unit: number): number {
    // Fibonacci hashing: the high bits of the product are the well-mixed ones.
    return Math.imul(node ^ Math.imul(unit, 0x85ebca77), 0x9e3779b1) >>> this.shift;
  }

  /** The child of `node` along `unit`, or -1. */
  get(node: number, unit: number): number {
    const keyNode = this.keyNode;
    const key = node + 1;
    for (let s = this.slot(node, unit); ; s = (s + 1) & this.mask) {
      const k = keyNode[s]!;
      if (k === 0) return -1;
      if (k === key && this.keyUnit[s] === unit) return this.child[s]!;
    }
  }

  /** Inserts `value` read forwards (or backwards) and marks its last node terminal. */
  insert(value: string, reverse: boolean): void {
    let node = 0;
    const n = value.length;
    for (let j = 0; j < n; j++) {
      const unit = value.charCodeAt(reverse ? n - 1 - j : j);
      let next = this.get(node, unit);
      if (next === -1) {
        let s = this.slot(node, unit);
        while (this.keyNode[s] !== 0) s = (s + 1) & this.mask;
        next = this.nodes++;
        this.keyNode[s] = node + 1;
        this.keyUnit[s] = unit;
        this.child[s] = next;
        this.unitOf[next] = unit;
        this.nextSibling[next] = this.firstChild[node]!;
        this.firstChild[node] = next;
      }
      node = next;
    }
    this.terminal[node] = 1;
  }
}

function build(values: readonly string[], reverse: boolean): Trie {
  let chars = 0;
  for (const v of values) chars += v.length;
  const trie = new Trie(chars);
  for (const v of values) trie.insert(v, reverse);
  return trie;
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
