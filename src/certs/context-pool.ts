/**
 * Pre-built TLS secure contexts that already hold the shared leaf key, so a first contact only
 * loads its certificate. With OpenSSL 3, `tls.createSecureContext({key, cert})` costs ~1.5–2.5 ms
 * of event-loop time (SSL_CTX_new plus PEM decoding of the key); installing only the certificate
 * into a keyed context costs ~0.3–0.7 ms. Contexts are refilled one per event-loop turn, starting
 * shortly after a take (not inside the handshake that took one), so refilling never blocks for
 * longer than one context build.
 *
 * `loaded(cert)` is the shared context: one keyed context whose certificate is replaced per call,
 * for a TLS socket created right away (OpenSSL copies the certificate into each connection when
 * the socket is created, so reloading it later does not touch earlier connections).
 *
 * Uses `SecureContext.context.setCert`, the native method `tls.createSecureContext` itself calls
 * (undocumented; present in Node 20–24). When it is missing, every context is built in full —
 * slower, never wrong. Owns no sockets and no files.
 */
import { createSecureContext, type SecureContext } from 'node:tls';

/** Keyed contexts kept ready. A burst of more first contacts than this builds the rest in full. */
export const DEFAULT_CONTEXT_POOL_SIZE = 8;
/** Refilling waits this long after a take, so it does not run inside the handshake that took one. */
export const REFILL_DELAY_MS = 25;

interface NativeContext {
  setCert?: (cert: string) => void;
}

export interface ContextPoolStats {
  ready: number;
  pooled: number;
  built: number;
}

export class ContextPool {
  private readonly keyPem: string;
  private readonly size: number;
  private readonly ready: SecureContext[] = [];
  private readonly usable: boolean;
  private shared: SecureContext | null = null;
  private refilling = false;
  private closed = false;
  private pooled = 0;
  private built = 0;

  constructor(keyPem: string, size = DEFAULT_CONTEXT_POOL_SIZE) {
    this.keyPem = keyPem;
    this.size = Math.max(0, size);
    const probe = createSecureContext({ key: keyPem });
    this.usable = typeof (probe.context as NativeContext | undefined)?.setCert === 'function';
    if (this.usable && this.size > 0) {
      this.ready.push(probe);
      this.refill();
    }
  }

  /** A secure context presenting `certPem` with the shared key. */
  take(certPem: string): SecureContext {
    const ctx = this.ready.pop();
    if (ctx !== undefined) {
      try {
        (ctx.context as NativeContext).setCert!(certPem);
        this.pooled += 1;
        this.refill();
        return ctx;
      } catch {
        // Fall through to a full build: a pooled context that refuses the certificate is dropped.
      }
    }
    this.built += 1;
    this.refill();
    return createSecureContext({ key: this.keyPem, cert: certPem });
  }

  /**
   * The shared context holding `certPem` now. Use it at once: the next call loads another
   * certificate into it. Without `setCert` this builds a context in full.
   */
  loaded(certPem: string): SecureContext {
    if (this.usable && !this.closed) {
      this.shared ??= createSecureContext({ key: this.keyPem });
      try {
        (this.shared.context as NativeContext).setCert!(certPem);
        this.pooled += 1;
        return this.shared;
      } catch {
        this.shared = null; // rebuilt on the next call; this one is built in full below
      }
    }
    this.built += 1;
    return createSecureContext({ key: this.keyPem, cert: certPem });
  }

  stats(): ContextPoolStats {
    return { ready: this.ready.length, pooled: this.pooled, built: this.built };
  }

  /** Stops refilling (lets a process exit without a pending immediate). */
  close(): void {
    this.closed = true;
    this.ready.length = 0;
  }

  private refill(): void {
    if (!this.usable || this.refilling || this.closed || this.ready.length >= this.size) return;
    this.refilling = true;
    const step = () => {
      if (this.closed || this.ready.length >= this.size) {
        this.refilling = false;
        return;
      }
      this.ready.push(createSecureContext({ key: this.keyPem }));
      setImmediate(step).unref();
    };
    setTimeout(step, REFILL_DELAY_MS).unref();
  }
}
