/**
 * Bounds on everything a guest controls on the HTTP port, as named constants, and the options type
 * the HTTP service accepts. Pure constants and a validator; no I/O.
 */
import { CelgateError } from '../../errors.js';

/** Request line + header block (Node's `maxHeaderSize`); larger → 431 and the connection closes. */
export const DEFAULT_MAX_HEADER_BYTES = 16 * 1024;
/** Header fields per request; more → 431. */
export const DEFAULT_MAX_HEADER_COUNT = 100;
/** Request target (path + query) length; longer → 414. */
export const DEFAULT_MAX_REQUEST_TARGET = 8 * 1024;
/** Request body bytes buffered for rules that read `body`; the rest streams, state `truncated`. */
export const DEFAULT_MAX_BODY_BUFFER = 1024 * 1024;
/** A connection must complete a request head within this time after connecting / its previous exchange. */
export const DEFAULT_HEADERS_TIMEOUT_MS = 15_000;
/** A connection with no bytes either way for this long is closed. */
export const DEFAULT_IDLE_TIMEOUT_MS = 120_000;
/** Idle time allowed between requests on a kept-alive connection. */
export const DEFAULT_KEEPALIVE_TIMEOUT_MS = 60_000;
/** The TLS handshake must finish within this time. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
/** Open connections per guest (per listener: one guest per vsock port). */
export const DEFAULT_MAX_CONNECTIONS = 4096;
/** Upstream connect + response-head timeout. */
export const DEFAULT_UPSTREAM_TIMEOUT_MS = 30_000;

export interface HttpLimits {
  maxHeaderBytes: number;
  maxHeaderCount: number;
  maxRequestTarget: number;
  maxBodyBuffer: number;
  headersTimeoutMs: number;
  idleTimeoutMs: number;
  keepAliveTimeoutMs: number;
  handshakeTimeoutMs: number;
  maxConnections: number;
  upstreamTimeoutMs: number;
}

export const DEFAULT_HTTP_LIMITS: Readonly<HttpLimits> = Object.freeze({
  maxHeaderBytes: DEFAULT_MAX_HEADER_BYTES,
  maxHeaderCount: DEFAULT_MAX_HEADER_COUNT,
  maxRequestTarget: DEFAULT_MAX_REQUEST_TARGET,
  maxBodyBuffer: DEFAULT_MAX_BODY_BUFFER,
  headersTimeoutMs: DEFAULT_HEADERS_TIMEOUT_MS,
  idleTimeoutMs: DEFAULT_IDLE_TIMEOUT_MS,
  keepAliveTimeoutMs: DEFAULT_KEEPALIVE_TIMEOUT_MS,
  handshakeTimeoutMs: DEFAULT_HANDSHAKE_TIMEOUT_MS,
  maxConnections: DEFAULT_MAX_CONNECTIONS,
  upstreamTimeoutMs: DEFAULT_UPSTREAM_TIMEOUT_MS,
});

/** Fills defaults and rejects non-positive or non-integer values with E_CONFIG. */
export function resolveLimits(partial: Partial<HttpLimits> = {}): HttpLimits {
  const out = { ...DEFAULT_HTTP_LIMITS, ...partial };
  for (const [key, value] of Object.entries(out)) {
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new CelgateError(
        'E_CONFIG',
        `http limit ${key} must be a positive integer, got ${String(value)}`,
      );
    }
  }
  return out;
}
