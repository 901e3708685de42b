/**
 * Batch helpers of the ledger writer (writer.ts): interning of low-cardinality tuples and multi-row
 * INSERTs. Owns no database of its own; must not open transactions (the writer does).
 */
import type Database from 'better-sqlite3';
import type { Db } from './schema.js';

/** Rows per multi-row INSERT for the two hot tables (fewer native calls per row). */
export const EVENTS_PER_STATEMENT = 32;
export const MATCHES_PER_STATEMENT = 64;
/** Distinct event contexts / match kinds the writer remembers; past this the memory map starts
 * over (rows already written stay; a context seen again is simply stored again). */
export const MAX_INTERNED = 4096;

type Part = string | number | null;

/**
 * Numbers the distinct low-cardinality tuples of `event_contexts` / `match_kinds` (schema v2) so a
 * row references them by integer. A trie of Maps keyed by the tuple's own values: no key string is
 * built or hashed per row (string hashes are cached on the strings), and no two tuples can collide.
 */
export class Interner {
  private root = new Map<Part, unknown>();
  private size = 0;
  constructor(public next: number) {}
  /** The ref of the tuple `parts`, inserting it with `insert(ref)` the first time it is seen. */
  ref(parts: readonly Part[], insert: (ref: number) => void): number {
    if (this.size >= MAX_INTERNED) this.forget(this.next);
    let node = this.root;
    const last = parts.length - 1;
    for (let i = 0; i < last; i++) {
      let child = node.get(parts[i]!) as Map<Part, unknown> | undefined;
      if (child === undefined) {
        child = new Map();
        node.set(parts[i]!, child);
      }
      node = child;
    }
    let r = node.get(parts[last]!) as number | undefined;
    if (r === undefined) {
      r = this.next++;
      insert(r);
      node.set(parts[last]!, r);
      this.size++;
    }
    return r;
  }
  /** After a rolled-back transaction: the rows it inserted are gone, so forget every ref. */
  forget(next: number): void {
    this.root = new Map();
    this.size = 0;
    this.next = next;
  }
}

/** Buffers the values of many rows and writes them with one multi-row INSERT per `per` rows. */
export class MultiInsert {
  readonly args: unknown[] = [];
  private count = 0;
  private readonly many: Database.Statement;
  private readonly one: Database.Statement;
  constructor(
    db: Db,
    prefix: string,
    private readonly cols: number,
    private readonly per: number,
    /** Runs before a full batch is written (rows this table references must be written first). */
    private readonly before: () => void = () => {},
  ) {
    const tuple = `(${new Array(cols).fill('?').join(', ')})`;
    this.many = db.prepare(`${prefix} VALUES ${new Array(per).fill(tuple).join(', ')}`);
    this.one = db.prepare(`${prefix} VALUES ${tuple}`);
  }
  /** Call after pushing one row's values onto `args`. */
  row(): void {
    if (++this.count === this.per) {
      this.before();
      this.many.run(this.args);
      this.args.length = 0;
      this.count = 0;
    }
  }
  drain(): void {
    for (let i = 0; i < this.count; i++)
      this.one.run(this.args.slice(i * this.cols, (i + 1) * this.cols));
    this.reset();
  }
  reset(): void {
    this.args.length = 0;
    this.count = 0;
  }
}
