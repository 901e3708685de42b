/**
 * A bounded, TTL-honouring answer cache keyed by (qname, qtype, qclass, DO bit). Entries expire when
 * the smallest TTL of the cached response runs out; the least recently used entry is evicted when the
 * cache is full. The clock is an argument (milliseconds), so this module stays pure and testable.
 */

export interface CachedAnswer {
  /** The upstream response as received (id and question case are rewritten per client). */
  bytes: Buffer;
  questionEnd: number;
  ttlOffsets: number[];
  answers: string[];
  rcode: number;
  storedMs: number;
  expiresMs: number;
}

export const DEFAULT_CACHE_ENTRIES = 4096;

export function cacheKey(qname: string, typeCode: number, classCode: number, dnssecOk: boolean): string {
  return `${qname}/${typeCode}/${classCode}/${dnssecOk ? 1 : 0}`;
}

export class AnswerCache {
  private readonly entries = new Map<string, CachedAnswer>();

  constructor(
    readonly maxEntries: number = DEFAULT_CACHE_ENTRIES,
    readonly maxTtlS: number = 86_400,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  get(key: string, nowMs: number): CachedAnswer | null {
    const hit = this.entries.get(key);
    if (hit === undefined) return null;
    if (hit.expiresMs <= nowMs) {
      this.entries.delete(key);
      return null;
    }
    // Refresh recency: Map iteration order is insertion order, so re-insert at the end.
    this.entries.delete(key);
    this.entries.set(key, hit);
    return hit;
  }

  /** Stores a response for `ttlS` seconds (capped); a TTL of 0 or less is not cached. */
  set(key: string, value: Omit<CachedAnswer, 'storedMs' | 'expiresMs'>, ttlS: number, nowMs: number): void {
    if (this.maxEntries <= 0 || !(ttlS > 0)) return;
    const ttl = Math.min(ttlS, this.maxTtlS);
    this.entries.delete(key);
    while (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
    this.entries.set(key, { ...value, storedMs: nowMs, expiresMs: nowMs + ttl * 1000 });
  }

  clear(): void {
    this.entries.clear();
  }
}
