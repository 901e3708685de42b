/**
 * Leaf certificates for intercepted hosts: minted on first contact per SNI host, kept in a bounded
 * LRU, re-minted before they expire. All leaves share ONE key pair (EC P-256, generated once when
 * the cache is built), so a first contact costs one native CA signature on the thread pool plus a
 * little ASN.1 layout — no key generation and no file writes on the hot path.
 *
 * Concurrent first contacts for one host share a single in-flight mint. This module owns the
 * cache and the leaf key; it never opens sockets and never writes files.
 *
 * TLS contexts: `secureContext(host)` always returns a context dedicated to the host (for
 * SNICallback users, who cannot load a certificate synchronously before OpenSSL reads it).
 * `contextFor(host)` is the gateway's path: until a host is contacted DEDICATED_AFTER_CONTACTS
 * times it loads the leaf into one shared keyed context right before the caller creates its TLS
 * socket (OpenSSL copies the certificate into the connection at SSL_new), so a host seen once never
 * costs a context build (~1–2 ms of event-loop time with OpenSSL 3, which a first contact used to
 * pay through the pool refill); a host seen again gets its own context, as before.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import type { SecureContext } from 'node:tls';
import type forge from 'node-forge';
import { CelgateError } from '../errors.js';
import type { CertificateAuthority } from './ca.js';
import { ContextPool, DEFAULT_CONTEXT_POOL_SIZE } from './context-pool.js';
import { leafSubject } from './hostname.js';
import { buildLeafCertificate, derToPem, spkiOf } from './x509.js';

/** Default number of hosts kept; the oldest-used leaf is dropped past this. */
export const DEFAULT_LEAF_CACHE_MAX = 1000;
/** Leaf lifetime. Short enough that a leaked leaf ages out; the cache re-mints transparently. */
export const DEFAULT_LEAF_VALIDITY_MS = 7 * 24 * 3600 * 1000;
/** A cached leaf closer than this to its notAfter is re-minted on next use. */
export const DEFAULT_LEAF_RENEW_BEFORE_MS = 24 * 3600 * 1000;
/** Backdate notBefore a little for guests whose clock lags the host's. */
export const LEAF_CLOCK_SKEW_MS = 3600 * 1000;
/**
 * Mints in flight at once. Signatures run on the thread pool, but each mint also does ~0.4 ms of
 * ASN.1 layout on the event loop; libuv delivers all finished signatures in one loop turn, so an
 * unbounded burst of new hosts would queue that work back to back. Two at a time keeps every turn
 * short; the next queued mint starts from setImmediate, after pending I/O.
 */
export const MINT_CONCURRENCY = 2;
/**
 * Mints allowed to wait for a slot. New hosts are guest-controlled (every SNI is one), so a flood
 * of distinct names is refused with E_LIMIT past this instead of queueing without bound.
 */
export const DEFAULT_MAX_PENDING_MINTS = 256;

export interface LeafCacheOptions {
  /** Maximum cached hosts (LRU). */
  max?: number;
  validityMs?: number;
  renewBeforeMs?: number;
  /** Clock, for tests of expiry. */
  now?: () => number;
  /** Keyed TLS contexts kept ready for first contacts (0 disables the pool). */
  contextPool?: number;
  /** Mints that may wait for a slot before new hosts are refused (E_LIMIT). */
  maxPendingMints?: number;
}

export interface LeafPem {
  /** The shared leaf private key, PKCS#8 PEM. */
  key: string;
  /** The leaf certificate, PEM. */
  cert: string;
}

export interface Leaf extends LeafPem {
  host: string;
  der: Buffer;
  notAfter: number;
  renewAt: number;
}

/** Contacts (via `contextFor`) after which a host gets a TLS context of its own. */
export const DEDICATED_AFTER_CONTACTS = 2;

interface Entry {
  promise: Promise<Leaf>;
  leaf: Leaf | undefined;
  context: SecureContext | undefined;
  /** Handshakes served through the shared context so far. */
  contacts: number;
}

export interface LeafCacheStats {
  size: number;
  minted: number;
  hits: number;
  evicted: number;
  /** Secure contexts taken from the keyed pool / built in full. */
  contexts_pooled: number;
  contexts_built: number;
  /** Keyed contexts ready in the pool right now. */
  contexts_ready: number;
}

export class LeafCache {
  readonly max: number;
  private readonly ca: CertificateAuthority;
  private readonly validityMs: number;
  private readonly renewBeforeMs: number;
  private readonly now: () => number;
  private readonly leafKey: KeyObject;
  private readonly leafKeyPem: string;
  private readonly leafSpki: forge.asn1.Asn1;
  private readonly entries = new Map<string, Entry>();
  private readonly contexts: ContextPool;
  private readonly waiting: (() => void)[] = [];
  private active = 0;
  private readonly maxPending: number;
  private minted = 0;
  private hits = 0;
  private evicted = 0;

  constructor(ca: CertificateAuthority, options: LeafCacheOptions = {}) {
    this.ca = ca;
    this.max = options.max ?? DEFAULT_LEAF_CACHE_MAX;
    if (!Number.isInteger(this.max) || this.max < 1) {
      throw new CelgateError(
        'E_CONFIG',
        `leaf cache max must be a positive integer, got ${String(options.max)}`,
      );
    }
    this.validityMs = options.validityMs ?? DEFAULT_LEAF_VALIDITY_MS;
    this.renewBeforeMs = Math.min(
      options.renewBeforeMs ?? DEFAULT_LEAF_RENEW_BEFORE_MS,
      this.validityMs / 2,
    );
    this.now = options.now ?? Date.now;
    // EC P-256 key generation takes well under a millisecond, so doing it here is fine; it happens
    // once per process, never per host.
    this.leafKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    this.leafKeyPem = this.leafKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    this.leafSpki = spkiOf(this.leafKey);
    this.contexts = new ContextPool(
      this.leafKeyPem,
      options.contextPool ?? DEFAULT_CONTEXT_POOL_SIZE,
    );
    this.maxPending = options.maxPendingMints ?? DEFAULT_MAX_PENDING_MINTS;
  }

  /** The leaf for `host` (a DNS name or IP literal), minting it if needed. */
  leaf(host: string): Promise<Leaf> {
    return this.entry(host).promise;
  }

  /** Key and certificate PEM for `host`. */
  async pem(host: string): Promise<LeafPem> {
    const leaf = await this.leaf(host);
    return { key: leaf.key, cert: leaf.cert };
  }

  /** A TLS secure context presenting the leaf for `host`; built once per leaf and reused. */
  async secureContext(host: string): Promise<SecureContext> {
    const entry = this.entry(host);
    const leaf = await entry.promise;
    if (entry.leaf !== leaf || entry.context === undefined) {
      entry.context = this.contexts.take(leaf.cert);
    }
    return entry.context;
  }

  /**
   * Resolves, once `host`'s leaf is ready, to a function that returns the context to create the
   * TLS socket with. Call it synchronously right before `new tls.TLSSocket(…, { secureContext })`:
   * it may load the leaf into the shared context, which the next call reloads for another host.
   */
  async contextFor(host: string): Promise<() => SecureContext> {
    const entry = this.entry(host);
    const leaf = await entry.promise;
    return () => {
      if (entry.leaf === leaf && entry.context !== undefined) return entry.context;
      entry.contacts += 1;
      if (entry.contacts < DEDICATED_AFTER_CONTACTS) return this.contexts.loaded(leaf.cert);
      entry.context = this.contexts.take(leaf.cert);
      return entry.context;
    };
  }

  get size(): number {
    return this.entries.size;
  }

  stats(): LeafCacheStats {
    const c = this.contexts.stats();
    return {
      size: this.entries.size,
      minted: this.minted,
      hits: this.hits,
      evicted: this.evicted,
      contexts_pooled: c.pooled,
      contexts_built: c.built,
      contexts_ready: c.ready,
    };
  }

  /** Stops background work (the context pool refill); cached leaves stay usable. */
  close(): void {
    this.contexts.close();
  }

  private entry(requested: string): Entry {
    const subject = leafSubject(requested);
    const key = subject.name;
    const existing = this.entries.get(key);
    if (
      existing !== undefined &&
      (existing.leaf === undefined || this.now() < existing.leaf.renewAt)
    ) {
      this.hits += 1;
      this.entries.delete(key);
      this.entries.set(key, existing);
      return existing;
    }
    const entry: Entry = {
      promise: Promise.resolve() as never,
      leaf: undefined,
      context: undefined,
      contacts: 0,
    };
    entry.promise = this.mint(subject).then(
      (leaf) => {
        entry.leaf = leaf;
        return leaf;
      },
      (error: unknown) => {
        if (this.entries.get(key) === entry) this.entries.delete(key);
        throw error;
      },
    );
    this.entries.delete(key);
    this.entries.set(key, entry);
    while (this.entries.size > this.max) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
      this.evicted += 1;
    }
    return entry;
  }

  private async mint(subject: ReturnType<typeof leafSubject>): Promise<Leaf> {
    await this.acquire();
    try {
      return await this.mintNow(subject);
    } finally {
      this.release();
    }
  }

  private acquire(): Promise<void> {
    if (this.active < MINT_CONCURRENCY) {
      this.active += 1;
      return Promise.resolve();
    }
    if (this.waiting.length >= this.maxPending) {
      return Promise.reject(
        new CelgateError(
          'E_LIMIT',
          `more than ${this.maxPending} certificates waiting to be minted; refusing new hosts for now`,
        ),
      );
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next === undefined) this.active -= 1;
    else setImmediate(next); // the slot passes on; start after pending I/O
  }

  private async mintNow(subject: ReturnType<typeof leafSubject>): Promise<Leaf> {
    const now = this.now();
    const notAfter = Math.min(now + this.validityMs, this.ca.notAfter.getTime());
    const der = await buildLeafCertificate(this.ca.issuer, subject, this.leafSpki, 'ec', {
      notBefore: new Date(now - LEAF_CLOCK_SKEW_MS),
      notAfter: new Date(notAfter),
    });
    this.minted += 1;
    return {
      host: subject.name,
      key: this.leafKeyPem,
      cert: derToPem(der),
      der,
      notAfter,
      renewAt: notAfter - this.renewBeforeMs,
    };
  }
}
