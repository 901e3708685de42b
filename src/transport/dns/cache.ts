/**
 * A bounded, TTL-honouring answer cache keyed by (qname, qtype, qclass, DO bit). Entries expire when
 * the smallest TTL of the cached response runs out; the least recently used entry is evicted when the
 * cache is full (by entries or by bytes). The clock is an argument (milliseconds), so this module stays pure and testable.
 */

import type { AnswerRecord } from './response.js';

export interface CachedAnswer {
  /** The upstream response as received (id and question case are rewritten per client). */
  bytes: Buffer;
  questionEnd: number;
  ttlOffsets: number[];
  answers: string[];
  /** The answer records as received (TTLs not aged). */
  records: AnswerRecord[];
  rcode: number;
  storedMs: number;
  expiresMs: number;
}

export const DEFAULT_CACHE_ENTRIES = 4096;
/** Total bytes of cached responses; least recently used entries go first when it is exceeded. */
export const MAX_CACHE_BYTES = 16 * 1024 * 1024;

export function cacheKey(
  qname: string,
  typeCode: number,
  classCode: number,
  dnssecOk: boolean,
): string {
  return `${qname}/${typeCode}/${classCode}/${dnssecOk ? 1 : 0}`;
}

export class AnswerCache {
  private readonly entries = new Map<string, CachedAnswer>();
  private bytes = 0;

  constructor(
    readonly maxEntries: number = DEFAULT_CACHE_ENTRIES,
    readonly maxTtlS: number = 86_400,
    readonly maxBytes: number = MAX_CACHE_BYTES,
  ) {}

  /** Bytes of response data held. */
  get totalBytes(): number {
    return this.bytes;
  }

  private remove(key: string): void {
    const old = this.entries.get(key);
    if (old === undefined) return;
    this.bytes -= old.bytes.length;
    this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: string, nowMs: number): CachedAnswer | null {
    const hit = this.entries.get(key);
    if (hit === undefined) return null;
    if (hit.expiresMs <= nowMs) {
      this.remove(key);
      return null;
    }
    // Refresh recency: Map iteration order is insertion order, so re-insert at the end.
    this.entries.delete(key);
    this.entries.set(key, hit);
    return hit;
  }

  /** Stores a response for `ttlS` seconds (capped); a TTL of 0 or less is not cached. */
  set(
    key: string,
    value: Omit<CachedAnswer, 'storedMs' | 'expiresMs'>,
    ttlS: number,
    nowMs: number,
  ): void {
    if (this.maxEntries <= 0 || !(ttlS > 0) || value.bytes.length > this.maxBytes) return;
    const ttl = Math.min(ttlS, this.maxTtlS);
    this.remove(key);
    while (
      this.entries.size >= this.maxEntries ||
      this.bytes + value.bytes.length > this.maxBytes
    ) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.remove(oldest);
    }
    this.entries.set(key, { ...value, storedMs: nowMs, expiresMs: nowMs + ttl * 1000 });
    this.bytes += value.bytes.length;
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }
}
