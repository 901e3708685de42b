/**
 * The guest-facing HTTP(S) service on vsock port 5002: each connection goes through the shared TLS
 * terminator (terminator.ts: sniffing, SNI, TLS, ALPN) to a codec — HTTP/1.1 on the direct path
 * (direct.ts, handing what it does not take to Node's http.Server and `handleRequest`), HTTP/2 per
 * stream (h2.ts). Enforces the connection-level limits: connections per guest, handshake / header /
 * idle timeouts, header size.
 *
 * Owns: connection lifecycle and connection-level ledger rows. Must not: decide, import the store,
 * or forward anything itself (exchange.ts does, after a decision).
 */
import http from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { EventOrigin, EventSink } from '../../events/index.js';
import { listenVsock, type GuestConnection, type VsockEndpoint } from '../vsock.js';
import { rawResponse, renderDenial } from './denial.js';
import {
  handleRequest,
  responseDepsOf,
  writeNetRow,
  type BodyAwareDecider,
  type ExchangeDeps,
} from './exchange.js';
import { serveDirect, type DirectDeps } from './direct.js';
import { UpstreamPool } from './upstream-pool.js';
import { LLHTTP } from './llhttp.js';
import { resolveLimits, type HttpLimits } from './limits.js';
import type { ExchangeContext } from './target.js';
import { destinationGuard } from './destination.js';
import { withSecretGuard } from '../../policy/secrets.js';
import type { SecretStore } from '../secrets.js';
import { McpHttp, type McpHttpOptions } from './mcp.js';
import { Upstream, type UpstreamMap } from './upstream.js';
import { handleUpgrade } from './websocket.js';
import { handleHttp2Stream, type H2Deps } from './h2.js';
import { firstBytes, TlsTerminator, type SecureContextSource } from './terminator.js';

export type { SecureContextSource } from './terminator.js';

export interface HttpServiceOptions {
  /** The vsock endpoint (DESIGN default port 5002). */
  vsock: VsockEndpoint;
  limits?: Partial<HttpLimits>;
  upstreamMap?: UpstreamMap;
  /** Extra CA certificates (PEM) trusted for upstream TLS, on top of the system roots. */
  extraCa?: readonly string[];
  /** Secrets substituted at egress (src/transport/secrets.ts); none when undefined. */
  secrets?: SecretStore;
  /** MCP over HTTPS (mcp.ts): forced endpoints (`mcp.remote`) and the rules for tools/list hiding. */
  mcp?: McpHttpOptions;
  /** IP ranges a guest's request may be connected to although they are special-purpose
   * (loopback, private, link-local, …; see destination.ts). Default none. */
  allowPrivateDestinations?: readonly string[];
  /** Destination port assumed for intercepted TLS / plain HTTP (the guest bridge redirects 443 / 80). */
  httpsPort?: number;
  httpPort?: number;
  /** Serve requests on the direct path (direct.ts) unless they need the Node path; default true. False: Node's http.Server for all. */
  direct?: boolean;
  /** Offer HTTP/2 (ALPN `h2`) to TLS clients; default true. */
  http2?: boolean;
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
  /** One line when the direct path is unavailable on this Node (llhttp.ts self-test). */
  warnings: string[];
  close(): Promise<void>;
}

/** Collects bytes until `parse` stops asking for more; rejects on timeout, close or a parse error. */

export async function startHttpService(
  options: HttpServiceOptions,
  deps: HttpServiceDeps,
): Promise<HttpService> {
  const limits = resolveLimits(options.limits);
  const upstream = new Upstream({
    map: options.upstreamMap,
    extraCa: options.extraCa,
    timeoutMs: limits.upstreamTimeoutMs,
    guard: destinationGuard(options.allowPrivateDestinations ?? []),
  });
  // The one upstream client: every path's requests and WebSocket upgrades (upstream-pool.ts).
  const pool = new UpstreamPool(upstream);
  const secrets = options.secrets;
  // With secrets configured, every decision also passes the secret guard (src/policy/secrets.ts).
  const decider =
    secrets === undefined || secrets.size === 0
      ? deps.decider
      : withSecretGuard(deps.decider, () => secrets.catalog());
  const exchangeDeps: ExchangeDeps = {
    decider,
    sink: deps.sink,
    origin: deps.origin,
    upstream,
    pool,
    limits,
    secrets,
    mcp: new McpHttp(options.mcp),
  };
  const contexts = new WeakMap<object, ExchangeContext>();
  const httpsPort = options.httpsPort ?? 443;
  const httpPort = options.httpPort ?? 80;
  const live = new Set<net.Socket>();

  const record = (ctx: ExchangeContext, error: string, method = '', status: number | null = null) =>
    writeNetRow(deps.sink, {
      ctx,
      method,
      target: null,
      event: null,
      decision: null,
      status,
      bytesIn: 0,
      bytesOut: 0,
      durationMs: 0,
      error,
      sessionOrigin: deps.origin,
    });

  const server = http.createServer({
    maxHeaderSize: limits.maxHeaderBytes,
    requestTimeout: 0,
    keepAlive: true,
  });
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
      if (!socket.destroyed)
        armHeaderTimer(socket, limits.keepAliveTimeoutMs + limits.headersTimeoutMs);
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
    const d = renderDenial({
      kind: 'bad_request',
      status: 405,
      rule_id: null,
      reason: 'CONNECT is not accepted on the interception port',
      event_id: '',
      accept: req.headers.accept ?? '',
    });
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
    if (code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE')
      return void socket.destroy();
    const kind =
      code === 'HPE_HEADER_OVERFLOW'
        ? 'header_too_large'
        : code === 'HPE_UNEXPECTED_CONTENT_LENGTH' || code === 'HPE_INVALID_TRANSFER_ENCODING'
          ? 'request_smuggling'
          : code === 'ERR_HTTP_REQUEST_TIMEOUT'
            ? 'header_timeout'
            : 'parse_error';
    const status = kind === 'header_too_large' ? 431 : kind === 'header_timeout' ? 408 : 400;
    if (ctx !== undefined) record(ctx, kind, '', socket.writable ? status : null);
    if (socket.writable) {
      const d = renderDenial({
        kind: 'bad_request',
        status,
        rule_id: null,
        reason: `malformed request (${kind}: ${code})`,
        event_id: '',
        accept: '',
      });
      socket.end(
        rawResponse(
          d,
          status === 431
            ? 'Request Header Fields Too Large'
            : status === 408
              ? 'Request Timeout'
              : 'Bad Request',
        ),
      );
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
  // The direct path needs llhttp; without it (llhttp.ts) every request takes the public-API path.
  const useDirect = options.direct !== false && LLHTTP.ok;
  const directDeps: DirectDeps = {
    ...exchangeDeps,
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
    !useDirect
      ? directDeps.handover(socket, ctx, initial ?? Buffer.alloc(0))
      : serveDirect(socket, ctx, directDeps, initial);

  const h2Deps: H2Deps = {
    ...exchangeDeps,
    response: responseDepsOf(exchangeDeps),
  };
  const terminator = new TlsTerminator(
    { certs: deps.certs, limits, http2: options.http2 !== false },
    {
      http1: serveHttp,
      http2: (req, res, ctx) => handleHttp2Stream(req, res, ctx, h2Deps),
      refuse: (ctx, error) => record(ctx, error),
    },
  );

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
      const first = await firstBytes(raw, c.head, limits.handshakeTimeoutMs);
      await terminator.terminate(raw, first, base, null, httpPort);
    } catch {
      raw.destroy();
    }
  };

  const listener = await listenVsock(
    { ...options.vsock, maxConnections: limits.maxConnections * 2 },
    (c) => void onGuest(c),
  );
  return {
    addresses: { http: listener.address },
    warnings:
      LLHTTP.ok || options.direct === false
        ? []
        : [`http.direct_unavailable: serving HTTP/1.1 on Node's http.Server (${LLHTTP.reason})`],
    async close() {
      await listener.close();
      for (const s of live) s.destroy();
      server.closeAllConnections();
      terminator.close();
      pool.close();
      upstream.close();
      exchangeDeps.mcp?.close();
    },
  };
}
