/**
 * The one TLS terminator (docs/http.md): every byte stream that may carry a guest's HTTP — a
 * connection on the vsock HTTP port, or an explicit-proxy CONNECT tunnel — starts here. It sniffs
 * the first byte (TLS, plain HTTP, or neither), reads the ClientHello itself (SNI and ALPN), refuses
 * what it cannot name, mints or reuses a leaf for the SNI host, and hands the decrypted stream to a
 * codec chosen by ALPN: HTTP/2 when the client offers `h2` (Node's `http2` server, each stream one
 * exchange), else HTTP/1.1 (the direct path, direct.ts).
 *
 * SNI is authoritative: it names the host the client verifies, so it is the host minted for, judged
 * and connected to. A CONNECT tunnel whose client sends no SNI (an IP literal) falls back to the
 * CONNECT host, over HTTP/1.1.
 *
 * Owns: connection sniffing, TLS termination, ALPN, HTTP/2 session limits, and the ledger rows of
 * connections that never carried a request. Must not: parse HTTP/1.1, decide, or forward.
 */
import http2 from 'node:http2';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { CelgateError } from '../../errors.js';
import { canonicalHost } from '../hostname.js';
import { parseClientHello, sniffProtocol } from './clienthello.js';
import { gather } from './gather.js';
import type { HttpLimits } from './limits.js';
import type { ExchangeContext } from './target.js';

/** Anything that hands out a TLS context for a host name (src/certs LeafCache implements it). */
export interface SecureContextSource {
  /**
   * Resolves to a function returning the context for `host`; call it synchronously right before
   * creating the TLS socket (src/certs LeafCache.contextFor).
   */
  contextFor(host: string): Promise<() => tls.SecureContext>;
}

/** HTTP/2 streams open at once on one connection (SETTINGS_MAX_CONCURRENT_STREAMS). */
export const H2_MAX_CONCURRENT_STREAMS = 100;
/** Memory one HTTP/2 session may hold (MB) before new streams are refused (nghttp2 accounting). */
export const H2_MAX_SESSION_MEMORY_MB = 10;
/** Invalid frames tolerated on one session before it is closed (floods of bad frames). */
export const H2_MAX_INVALID_FRAMES = 100;
/** Streams refused on one session (past the concurrency limit, rapid reset) before it is closed. */
export const H2_MAX_REJECTED_STREAMS = 100;
/** Header table size the guest's HPACK encoder may use. */
export const H2_HEADER_TABLE_SIZE = 4096;

export interface TerminatorCodecs {
  /** An HTTP/1.1 stream (decrypted, or plain): `initial` holds bytes already read from it. */
  http1(stream: net.Socket, ctx: ExchangeContext, initial: Buffer | null): void;
  /** One HTTP/2 stream, as Node's compatibility request/response. */
  http2(req: http2.Http2ServerRequest, res: http2.Http2ServerResponse, ctx: ExchangeContext): void;
  /** A connection that ends before any request: one ledger row. */
  refuse(ctx: ExchangeContext, error: string): void;
}

export interface TerminatorOptions {
  certs: SecureContextSource;
  limits: Pick<HttpLimits, 'handshakeTimeoutMs' | 'idleTimeoutMs' | 'maxHeaderBytes'>;
  /** Offer `h2` in ALPN (default true). */
  http2?: boolean;
}

function helloFailure(err: unknown): string {
  const e = err as CelgateError;
  if (e.code === 'E_TIMEOUT') return 'tls_handshake_timeout';
  return e.details?.truncated === true ? 'tls_truncated_client_hello' : 'tls_parse_error';
}

export class TlsTerminator {
  private readonly h2: http2.Http2SecureServer | null;
  /** The context of each raw connection handed to the HTTP/2 server (its TLS socket's `_parent`). */
  private readonly h2Contexts = new WeakMap<object, ExchangeContext>();
  /** Live HTTP/2 sessions, closed with the service. */
  private readonly sessions = new Set<http2.ServerHttp2Session>();

  constructor(
    private readonly options: TerminatorOptions,
    private readonly codecs: TerminatorCodecs,
  ) {
    this.h2 = options.http2 === false ? null : this.createH2Server();
  }

  private createH2Server(): http2.Http2SecureServer {
    const { certs, limits } = this.options;
    const server = http2.createSecureServer({
      allowHTTP1: false,
      handshakeTimeout: limits.handshakeTimeoutMs,
      // The SNI was canonicalised and its leaf minted before the connection came here; this lookup
      // is a cache hit.
      SNICallback: (name, cb) => {
        const c = canonicalHost(name);
        if (!c.ok) return cb(new Error('invalid SNI'));
        certs.contextFor(c.host).then(
          (f) => cb(null, f()),
          (err: Error) => cb(err),
        );
      },
      maxSessionMemory: H2_MAX_SESSION_MEMORY_MB,
      maxSessionInvalidFrames: H2_MAX_INVALID_FRAMES,
      maxSessionRejectedStreams: H2_MAX_REJECTED_STREAMS,
      settings: {
        maxConcurrentStreams: H2_MAX_CONCURRENT_STREAMS,
        maxHeaderListSize: limits.maxHeaderBytes,
        headerTableSize: H2_HEADER_TABLE_SIZE,
        enablePush: false,
      },
    });
    server.setTimeout(limits.idleTimeoutMs);
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
      const ctx = this.contextOf(socket);
      if (ctx !== undefined)
        this.codecs.refuse(
          ctx,
          err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT' ? 'tls_handshake_timeout' : 'tls_handshake',
        );
    });
    server.on('session', (session: http2.ServerHttp2Session) => {
      this.sessions.add(session);
      session.once('close', () => this.sessions.delete(session));
      session.on('error', () => {});
    });
    server.on('request', (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
      const ctx = this.contextOf(req.stream.session?.socket);
      if (ctx === undefined) return void res.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      this.codecs.http2(req, res, ctx);
    });
    server.on('sessionError', () => {});
    return server;
  }

  private contextOf(socket: unknown): ExchangeContext | undefined {
    const parent = (socket as { _parent?: object } | undefined)?._parent;
    return parent === undefined ? undefined : this.h2Contexts.get(parent);
  }

  /**
   * Serves one connection. `first` holds the bytes already read (at least one); `base` is the
   * context before TLS (port, guest meta); `connectHost` is the CONNECT target inside a proxy
   * tunnel (the host when the client sends no SNI), or null on the vsock port (no SNI: refused).
   */
  async terminate(
    raw: net.Socket,
    first: Buffer,
    base: ExchangeContext,
    connectHost: string | null,
    plainPort: number,
  ): Promise<void> {
    const proto = sniffProtocol(first[0]!);
    if (proto === 'http') {
      this.codecs.http1(raw, { ...base, scheme: 'http', sniHost: '', port: plainPort }, first);
      return;
    }
    if (proto === 'unknown') {
      this.codecs.refuse(base, 'unknown_protocol');
      raw.destroy();
      return;
    }
    let hello: { value: { sni: string | null; alpn: string[] }; buf: Buffer };
    try {
      hello = await gather(raw, first, this.options.limits.handshakeTimeoutMs, (b) => {
        const r = parseClientHello(b);
        if (r.status === 'ok') return r;
        if (r.status === 'need_more') return null;
        throw new CelgateError('E_PARSE', 'malformed ClientHello');
      });
    } catch (err) {
      this.codecs.refuse(base, helloFailure(err));
      raw.destroy();
      return;
    }
    if (hello.value.sni === null && connectHost === null) {
      this.codecs.refuse(base, 'no_sni');
      raw.destroy();
      return;
    }
    // One canonical host form everywhere (src/transport/hostname.ts): `Blocked.Test.` is judged,
    // minted and recorded as `blocked.test`; a name with an empty label is refused.
    let host = connectHost ?? '';
    if (hello.value.sni !== null) {
      const canonical = canonicalHost(hello.value.sni);
      if (!canonical.ok) {
        this.codecs.refuse({ ...base, sniHost: hello.value.sni }, 'invalid_sni');
        raw.destroy();
        return;
      }
      host = canonical.host;
    }
    const ctx: ExchangeContext = { ...base, scheme: 'https', sniHost: host };
    let contextNow: () => tls.SecureContext;
    try {
      contextNow = await this.options.certs.contextFor(host);
    } catch {
      this.codecs.refuse(ctx, 'cert_mint_failed');
      raw.destroy();
      return;
    }
    if (raw.destroyed) return;
    raw.unshift(hello.buf);
    raw.setNoDelay(true);
    if (this.h2 !== null && hello.value.sni !== null && hello.value.alpn.includes('h2')) {
      this.h2Contexts.set(raw, ctx);
      this.h2.emit('connection', raw);
      return;
    }
    this.http1OverTls(raw, ctx, contextNow);
  }

  private http1OverTls(
    raw: net.Socket,
    ctx: ExchangeContext,
    contextNow: () => tls.SecureContext,
  ): void {
    // contextNow() right here: it may load this host's leaf into a shared context (see LeafCache).
    const tlsSocket = new tls.TLSSocket(raw, {
      isServer: true,
      secureContext: contextNow(),
      ALPNProtocols: ['http/1.1'],
    });
    tlsSocket.on('error', () => {});
    // Exactly one ledger row for a handshake that never completes (timeout, alert, reset, close).
    let settled = false;
    const failHandshake = (why: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      this.codecs.refuse(ctx, why);
      tlsSocket.destroy();
    };
    const timer = setTimeout(
      () => failHandshake('tls_handshake_timeout'),
      this.options.limits.handshakeTimeoutMs,
    );
    tlsSocket.once('secure', () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      this.codecs.http1(tlsSocket, ctx, null);
    });
    tlsSocket.once('error', () => failHandshake('tls_handshake'));
    tlsSocket.once('close', () => {
      failHandshake('tls_handshake');
      raw.destroy();
    });
  }

  /** Closes every HTTP/2 session (HTTP/1.1 streams belong to their codec). */
  close(): void {
    for (const s of this.sessions) s.destroy();
    this.sessions.clear();
  }
}

/** Reads the first bytes of `socket` (paused), bounded by `timeoutMs`. */
export function firstBytes(socket: Duplex, head: Buffer, timeoutMs: number): Promise<Buffer> {
  return gather(socket, head, timeoutMs, (b) => (b.length > 0 ? true : null)).then((r) => r.buf);
}
