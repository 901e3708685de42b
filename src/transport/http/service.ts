/**
 * The guest-facing HTTP(S) service on vsock port 5002: sniffs each connection (TLS / plain HTTP /
 * refused), reads the ClientHello's SNI itself (no SNI → refused and recorded), terminates TLS with a
 * leaf for that SNI, and feeds HTTP/1.1 (keep-alive) requests to `handleRequest`. Enforces the
 * connection-level limits: connections per guest, handshake / header / idle timeouts, header size.
 *
 * Owns: connection lifecycle and connection-level ledger rows. Must not: decide, import the store,
 * or forward anything itself (exchange.ts does, after a decision).
 */
import http from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { CelgateError } from '../../errors.js';
import type { EventOrigin, EventSink } from '../../events/index.js';
import { listenVsock, type GuestConnection, type VsockEndpoint } from '../vsock.js';
import { canonicalHost } from '../hostname.js';
import { parseClientHello, sniffProtocol } from './clienthello.js';
import { rawResponse, renderDenial } from './denial.js';
import { handleRequest, responseDepsOf, writeNetRow, type BodyAwareDecider, type ExchangeDeps } from './exchange.js';
import { serveDirect, type DirectDeps } from './direct.js';
import { UpstreamPool } from './upstream-pool.js';
import { resolveLimits, type HttpLimits } from './limits.js';
import type { ExchangeContext } from './target.js';
import { destinationGuard } from './destination.js';
import { withSecretGuard } from '../../policy/secrets.js';
import type { SecretStore } from '../secrets.js';
import { Upstream, type UpstreamMap } from './upstream.js';
import { handleUpgrade } from './websocket.js';
import { gather } from './gather.js';

/** Anything that hands out a TLS context for a host name (src/certs LeafCache implements it). */
export interface SecureContextSource {
  /**
   * Resolves to a function returning the context for `host`; call it synchronously right before
   * creating the TLS socket (src/certs LeafCache.contextFor).
   */
  contextFor(host: string): Promise<() => tls.SecureContext>;
}

export interface HttpServiceOptions {
  /** The vsock endpoint (DESIGN default port 5002). */
  vsock: VsockEndpoint;
  limits?: Partial<HttpLimits>;
  upstreamMap?: UpstreamMap;
  /** Extra CA certificates (PEM) trusted for upstream TLS, on top of the system roots. */
  extraCa?: readonly string[];
  /** Secrets substituted at egress (src/transport/secrets.ts); none when undefined. */
  secrets?: SecretStore;
  /** IP ranges a guest's request may be connected to although they are special-purpose
   * (loopback, private, link-local, …; see destination.ts). Default none. */
  allowPrivateDestinations?: readonly string[];
  /** Destination port assumed for intercepted TLS / plain HTTP (the guest bridge redirects 443 / 80). */
  httpsPort?: number;
  httpPort?: number;
  /** Serve requests on the direct path (direct.ts) unless they need the Node path; default true. False: Node's http.Server for all. */
  direct?: boolean;
}

/** How long a refused connection gets to drain its error response before it is destroyed. */
export const CLOSE_GRACE_MS = 1000;

export interface HttpServiceDeps {
  decider: BodyAwareDecider;
  sink: EventSink;
  origin: EventOrigin;
  certs: SecureContextSource;
}

export interface HttpService {
  addresses: Record<string, string>;
  close(): Promise<void>;
}

/** Collects bytes until `parse` stops asking for more; rejects on timeout, close or a parse error. */

export async function startHttpService(options: HttpServiceOptions, deps: HttpServiceDeps): Promise<HttpService> {
  const limits = resolveLimits(options.limits);
  const upstream = new Upstream({
    map: options.upstreamMap,
    extraCa: options.extraCa,
    timeoutMs: limits.upstreamTimeoutMs,
    guard: destinationGuard(options.allowPrivateDestinations ?? []),
  });
  const secrets = options.secrets;
  // With secrets configured, every decision also passes the secret guard (src/policy/secrets.ts).
  const decider = secrets === undefined || secrets.size === 0 ? deps.decider : withSecretGuard(deps.decider, () => secrets.catalog());
  const exchangeDeps: ExchangeDeps = { decider, sink: deps.sink, origin: deps.origin, upstream, limits, secrets };
  const contexts = new WeakMap<object, ExchangeContext>();
  const httpsPort = options.httpsPort ?? 443;
  const httpPort = options.httpPort ?? 80;
  const live = new Set<net.Socket>();

  const record = (ctx: ExchangeContext, error: string, method = '', status: number | null = null) =>
    writeNetRow(deps.sink, { ctx, method, target: null, event: null, decision: null, status, bytesIn: 0, bytesOut: 0, durationMs: 0, error, sessionOrigin: deps.origin });

  const server = http.createServer({ maxHeaderSize: limits.maxHeaderBytes, requestTimeout: 0, keepAlive: true });
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  server.timeout = limits.idleTimeoutMs;
  server.maxHeadersCount = limits.maxHeaderCount + 1;
  server.headersTimeout = limits.headersTimeoutMs;

  // Slowloris guard: a request head must complete within headersTimeout of the connection opening,
  // or within keepAliveTimeout + headersTimeout of the previous exchange finishing.
  const headerTimers = new WeakMap<object, NodeJS.Timeout>();
  const armHeaderTimer = (socket: Duplex, ms: number) => {
    clearTimeout(headerTimers.get(socket));
    const t = setTimeout(() => {
      const ctx = contexts.get(socket);
      if (ctx !== undefined) record(ctx, 'header_timeout');
      socket.destroy();
    }, ms);
    t.unref();
    headerTimers.set(socket, t);
  };
  const onHead = (socket: Duplex, res: http.ServerResponse | null) => {
    clearTimeout(headerTimers.get(socket));
    res?.once('finish', () => {
      if (!socket.destroyed) armHeaderTimer(socket, limits.keepAliveTimeoutMs + limits.headersTimeoutMs);
    });
  };

  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    onHead(req.socket, res);
    const ctx = contexts.get(req.socket);
    if (ctx === undefined) {
      res.destroy();
      return;
    }
    handleRequest(req, res, ctx, exchangeDeps).catch(() => res.destroy());
  };
  server.on('request', onRequest);
  server.on('checkContinue', onRequest);
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    onHead(socket, null);
    const ctx = contexts.get(socket);
    if (ctx === undefined) return void socket.destroy();
    try {
      handleUpgrade(req, socket, head, ctx, exchangeDeps);
    } catch {
      // handleUpgrade records its own outcomes; a throw here is a bug, never a forward.
      socket.destroy();
    }
  });
  server.on('connect', (req: http.IncomingMessage, socket: Duplex) => {
    onHead(socket, null);
    const ctx = contexts.get(socket);
    if (ctx !== undefined) record(ctx, 'connect_refused', 'CONNECT', 405);
    const d = renderDenial({ kind: 'bad_request', status: 405, rule_id: null, reason: 'CONNECT is not accepted on the interception port', event_id: '', accept: req.headers.accept ?? '' });
    socket.end(rawResponse(d, 'Method Not Allowed'));
  });
  const refused = new WeakSet<object>();
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    clearTimeout(headerTimers.get(socket));
    // The parser reports again for bytes that keep arriving after a refusal; answer once.
    if (refused.has(socket)) return;
    refused.add(socket);
    const ctx = contexts.get(socket);
    const code = err.code ?? '';
    if (code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE') return void socket.destroy();
    const kind =
      code === 'HPE_HEADER_OVERFLOW' ? 'header_too_large'
      : code === 'HPE_UNEXPECTED_CONTENT_LENGTH' || code === 'HPE_INVALID_TRANSFER_ENCODING' ? 'request_smuggling'
      : code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'header_timeout'
      : 'parse_error';
    const status = kind === 'header_too_large' ? 431 : kind === 'header_timeout' ? 408 : 400;
    if (ctx !== undefined) record(ctx, kind, '', socket.writable ? status : null);
    if (socket.writable) {
      const d = renderDenial({ kind: 'bad_request', status, rule_id: null, reason: `malformed request (${kind}: ${code})`, event_id: '', accept: '' });
      socket.end(rawResponse(d, status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request'));
      // Lingering close: keep discarding input so the peer is not reset before it reads the answer,
      // but never wait longer than the grace period.
      socket.on('data', () => {});
      socket.resume();
      setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
    } else {
      socket.destroy();
    }
  });

  /** The Node `http.Server` path: requests with bodies, upgrades, `Expect`, malformed input. */
  const serveNode = (socket: Duplex, ctx: ExchangeContext) => {
    contexts.set(socket, ctx);
    armHeaderTimer(socket, limits.headersTimeoutMs);
    socket.once('close', () => clearTimeout(headerTimers.get(socket)));
    server.emit('connection', socket);
  };
  const pool = new UpstreamPool(upstream);
  const directDeps: DirectDeps = {
    ...exchangeDeps,
    pool,
    response: responseDepsOf(exchangeDeps),
    refuse: (ctx, reason) => record(ctx, reason),
    handover: (socket, ctx, bytes) => {
      if (bytes.length > 0) socket.unshift(bytes);
      serveNode(socket, ctx);
      // Paused by the direct path; resuming replays the unshifted bytes before any new read.
      socket.resume();
    },
  };
  /** Every connection starts on the direct path (direct.ts), which hands over what it does not take. */
  const serveHttp = (socket: net.Socket, ctx: ExchangeContext, initial: Buffer | null) =>
    options.direct === false ? directDeps.handover(socket, ctx, initial ?? Buffer.alloc(0)) : serveDirect(socket, ctx, directDeps, initial);

  const onGuest = async (c: GuestConnection) => {
    const raw = c.socket;
    const base: ExchangeContext = { scheme: 'https', sniHost: '', port: httpsPort, meta: c.meta };
    if (live.size >= limits.maxConnections) {
      record(base, 'too_many_connections');
      raw.destroy();
      return;
    }
    live.add(raw);
    raw.once('close', () => live.delete(raw));
    raw.on('error', () => {});
    try {
      const { buf: first } = await gather(raw, c.head, limits.handshakeTimeoutMs, (b) => (b.length > 0 ? true : null));
      const proto = sniffProtocol(first[0]!);
      if (proto === 'http') {
        serveHttp(raw, { scheme: 'http', sniHost: '', port: httpPort, meta: c.meta }, first);
        return;
      }
      if (proto === 'unknown') {
        record(base, 'unknown_protocol');
        raw.destroy();
        return;
      }
      let hello: { value: { sni: string | null }; buf: Buffer };
      try {
        hello = await gather(raw, first, limits.handshakeTimeoutMs, (b) => {
          const r = parseClientHello(b);
          return r.status === 'ok' ? r : null;
        });
      } catch (err) {
        const e = err as CelgateError;
        record(base, e.code === 'E_TIMEOUT' ? 'tls_handshake_timeout' : e.details?.truncated === true ? 'tls_truncated_client_hello' : 'tls_parse_error');
        raw.destroy();
        return;
      }
      if (hello.value.sni === null) {
        record(base, 'no_sni');
        raw.destroy();
        return;
      }
      // One canonical host form everywhere (src/transport/hostname.ts): `Blocked.Test.` is judged,
      // minted and recorded as `blocked.test`; a name with an empty label is refused.
      const canonical = canonicalHost(hello.value.sni);
      if (!canonical.ok) {
        record({ ...base, sniHost: hello.value.sni }, 'invalid_sni');
        raw.destroy();
        return;
      }
      const sni = canonical.host;
      const ctx: ExchangeContext = { ...base, sniHost: sni };
      let contextNow: () => tls.SecureContext;
      try {
        contextNow = await deps.certs.contextFor(sni);
      } catch {
        record(ctx, 'cert_mint_failed');
        raw.destroy();
        return;
      }
      if (raw.destroyed) return;
      raw.unshift(hello.buf);
      raw.setNoDelay(true);
      // contextNow() right here: it may load this host's leaf into a shared context (see LeafCache).
      const tlsSocket = new tls.TLSSocket(raw, { isServer: true, secureContext: contextNow(), ALPNProtocols: ['http/1.1'] });
      tlsSocket.on('error', () => {});
      // Exactly one ledger row for a handshake that never completes (timeout, alert, reset, close).
      let settled = false;
      const failHandshake = (why: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        record(ctx, why);
        tlsSocket.destroy();
      };
      const timer = setTimeout(() => failHandshake('tls_handshake_timeout'), limits.handshakeTimeoutMs);
      tlsSocket.once('secure', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        serveHttp(tlsSocket, ctx, null);
      });
      tlsSocket.once('error', () => failHandshake('tls_handshake'));
      tlsSocket.once('close', () => {
        failHandshake('tls_handshake');
        raw.destroy();
      });
    } catch {
      raw.destroy();
    }
  };

  const listener = await listenVsock({ ...options.vsock, maxConnections: limits.maxConnections * 2 }, (c) => void onGuest(c));
  return {
    addresses: { http: listener.address },
    async close() {
      await listener.close();
      for (const s of live) s.destroy();
      server.closeAllConnections();
      pool.close();
      upstream.close();
    },
  };
}
