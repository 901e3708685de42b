/**
 * Explicit proxy mode (DESIGN §3): an HTTP proxy on loopback for running an agent on the host with
 * `HTTPS_PROXY=http://127.0.0.1:8080` and the celgate CA trusted. A `CONNECT host:port` is
 * validated and answered `200`; the tunnel then goes through the same TLS terminator as the vsock
 * port (terminator.ts: SNI, TLS, ALPN → HTTP/1.1 direct path or HTTP/2). Plain absolute-form
 * `GET http://…` requests go to the same exchange pipeline (`handleRequest` / `handleUpgrade`):
 * one event, one decision before anything goes upstream, the §7 denial otherwise, one ledger row.
 *
 * Owns: the proxy listener, CONNECT validation, connection-level limits and refusal rows. Must not:
 * decide, import the store, or forward anything itself.
 */
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { CelgateError } from '../../errors.js';
import type { EventOrigin, EventSink } from '../../events/index.js';
import { rawResponse, renderDenial } from './denial.js';
import {
  handleRequest,
  responseDepsOf,
  writeNetRow,
  type BodyAwareDecider,
  type ExchangeDeps,
} from './exchange.js';
import { serveDirect, type DirectDeps } from './direct.js';
import { handleHttp2Stream, type H2Deps } from './h2.js';
import { resolveLimits, type HttpLimits } from './limits.js';
import { firstBytes, TlsTerminator, type SecureContextSource } from './terminator.js';
import { UpstreamPool } from './upstream-pool.js';
import { LLHTTP } from './llhttp.js';
import type { GuestMeta } from '../vsock.js';
import { agentLabel, parseProxyListen } from './proxy-settings.js';
import { parseHostHeader, type ExchangeContext } from './target.js';
import { destinationGuard } from './destination.js';
import { withSecretGuard } from '../../policy/secrets.js';
import type { SecretStore } from '../secrets.js';
import { McpHttp, type McpHttpOptions } from './mcp.js';
import { Upstream, type UpstreamMap } from './upstream.js';
import { handleUpgrade } from './websocket.js';

export {
  agentLabel,
  DEFAULT_PROXY_LISTEN,
  parseProxyListen,
  parseProxySetting,
} from './proxy-settings.js';

/** How long a refused connection may drain its error response before it is destroyed. */
export const PROXY_CLOSE_GRACE_MS = 1000;

/** The host:port of a CONNECT request, validated before the tunnel is answered. */
export interface TunnelTarget {
  host: string;
  port: number;
  /** Agent label from the CONNECT request's proxy credentials (becomes process_name). */
  meta: GuestMeta;
}

export interface ExplicitProxyOptions {
  /** `host:port` on loopback; port 0 picks a free port (tests). */
  listen: string;
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
  /** Offer HTTP/2 (ALPN `h2`) inside tunnels; default true. */
  http2?: boolean;
  /** Serve tunnelled HTTP/1.1 on the direct path (direct.ts); default true. */
  direct?: boolean;
}

export interface ExplicitProxyDeps {
  decider: BodyAwareDecider;
  sink: EventSink;
  origin: EventOrigin;
  certs: SecureContextSource;
}

export interface ExplicitProxy {
  /** `{ proxy: "127.0.0.1:PORT" }`. */
  addresses: Record<string, string>;
  /** One line when the direct path is unavailable on this Node (llhttp.ts self-test). */
  warnings: string[];
  close(): Promise<void>;
}

/** Validates a CONNECT request target (`host:port`, `[v6]:port`); null when malformed. */
export function parseConnectTarget(url: string): Omit<TunnelTarget, 'meta'> | null {
  if (url.length > 300) return null;
  const parsed = parseHostHeader(url);
  if (parsed === null || parsed.port === null || parsed.host === '') return null;
  return { host: parsed.host, port: parsed.port };
}

export async function startExplicitProxy(
  options: ExplicitProxyOptions,
  deps: ExplicitProxyDeps,
): Promise<ExplicitProxy> {
  const at = parseProxyListen(options.listen);
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
  const metaOf = (req?: http.IncomingMessage) => {
    const label = agentLabel(req?.headers['proxy-authorization']);
    return label === undefined ? {} : { process_name: label };
  };
  const direct = (req?: http.IncomingMessage): ExchangeContext => ({
    scheme: 'http',
    sniHost: '',
    port: 80,
    meta: metaOf(req),
  });

  const record = (ctx: ExchangeContext, error: string, method = '') =>
    writeNetRow(deps.sink, {
      ctx,
      method,
      target: null,
      event: null,
      decision: null,
      status: null,
      bytesIn: 0,
      bytesOut: 0,
      durationMs: 0,
      error,
      sessionOrigin: deps.origin,
    });

  // Node checks headersTimeout only every connectionsCheckingInterval (default 30 s); check often
  // enough that a slowloris client is cut off close to the configured bound.
  const checkEvery = Math.max(50, Math.min(1000, Math.floor(limits.headersTimeoutMs / 4)));
  const server = http.createServer({
    maxHeaderSize: limits.maxHeaderBytes,
    requestTimeout: 0,
    keepAlive: true,
    connectionsCheckingInterval: checkEvery,
  });
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  server.headersTimeout = limits.headersTimeoutMs;
  server.timeout = limits.idleTimeoutMs;
  server.maxHeadersCount = limits.maxHeaderCount + 1;
  server.maxConnections = limits.maxConnections;
  // Past maxConnections Node closes the new socket itself; record that it happened.
  server.on('drop', () => record(direct(), 'too_many_connections'));

  /** A tunnel's HTTP/1.1 stream: the direct path, handing what it does not take to `server`. */
  const serveNode = (stream: net.Socket, ctx: ExchangeContext, bytes: Buffer) => {
    if (bytes.length > 0) stream.unshift(bytes);
    contexts.set(stream, ctx);
    server.emit('connection', stream);
    stream.resume();
  };
  // The direct path needs llhttp; without it (llhttp.ts) every request takes the public-API path.
  const useDirect = options.direct !== false && LLHTTP.ok;
  const directDeps: DirectDeps = {
    ...exchangeDeps,
    response: responseDepsOf(exchangeDeps),
    refuse: (ctx, reason) => record(ctx, reason),
    handover: serveNode,
  };
  const h2Deps: H2Deps = {
    ...exchangeDeps,
    response: responseDepsOf(exchangeDeps),
  };
  const terminator = new TlsTerminator(
    { certs: deps.certs, limits, http2: options.http2 !== false },
    {
      http1: (stream, ctx, initial) =>
        !useDirect
          ? serveNode(stream, ctx, initial ?? Buffer.alloc(0))
          : serveDirect(stream, ctx, directDeps, initial),
      http2: (req, res, ctx) => handleHttp2Stream(req, res, ctx, h2Deps),
      refuse: (ctx, error) => record(ctx, error, 'CONNECT'),
    },
  );

  /** Answers a validated CONNECT and hands the tunnel to the terminator. */
  const openTunnel = async (socket: net.Socket, head: Buffer, target: TunnelTarget) => {
    const base: ExchangeContext = {
      scheme: 'https',
      sniHost: target.host,
      port: target.port,
      meta: target.meta,
    };
    // Keep-alive advertised as proxies commonly do, so clients keep the tunnel for many requests.
    socket.write(
      'HTTP/1.1 200 Connection Established\r\nConnection: keep-alive\r\nProxy-Connection: keep-alive\r\n\r\n',
    );
    socket.pause();
    let first: Buffer;
    try {
      // A client that opens a tunnel and then sends nothing is dropped after the handshake timeout.
      first = await firstBytes(socket, head, limits.handshakeTimeoutMs);
    } catch (err) {
      // A tunnel closed before its first byte carried nothing: no row. One that stays silent does.
      if ((err as CelgateError).code === 'E_TIMEOUT')
        record(base, 'tls_handshake_timeout', 'CONNECT');
      socket.destroy();
      return;
    }
    await terminator.terminate(socket, first, base, target.host, target.port);
  };

  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const ctx = contexts.get(req.socket);
    const url = req.url ?? '';
    if (ctx === undefined && /^https:\/\//i.test(url)) {
      record(direct(req), 'parse_error', req.method ?? '');
      const d = renderDenial({
        kind: 'bad_request',
        status: 400,
        rule_id: null,
        reason: 'https:// URLs must go through CONNECT',
        event_id: '',
        accept: req.headers.accept ?? '',
      });
      res.writeHead(d.status, d.headers).end(d.body);
      return;
    }
    void handleRequest(req, res, ctx ?? direct(req), exchangeDeps);
  };
  server.on('request', onRequest);
  server.on('checkContinue', onRequest);
  server.on('connect', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    if (contexts.has(socket)) {
      // CONNECT inside a tunnel: refuse rather than nest.
      record(contexts.get(socket)!, 'connect_refused', 'CONNECT');
      return void socket.destroy();
    }
    const parsed = parseConnectTarget(req.url ?? '');
    if (parsed === null) {
      record(direct(req), 'connect_bad_target', 'CONNECT');
      const d = renderDenial({
        kind: 'bad_request',
        status: 400,
        rule_id: null,
        reason: 'CONNECT needs a host:port target',
        event_id: '',
        accept: '',
      });
      socket.end(rawResponse(d, 'Bad Request'));
      return;
    }
    socket.on('error', () => {});
    openTunnel(socket as net.Socket, head, { ...parsed, meta: metaOf(req) }).catch(() =>
      socket.destroy(),
    );
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    handleUpgrade(req, socket, head, contexts.get(socket) ?? direct(req), exchangeDeps);
  });
  const refused = new WeakSet<object>();
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (refused.has(socket)) return;
    refused.add(socket);
    const code = err.code ?? '';
    if (code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE' || !socket.writable)
      return void socket.destroy();
    const kind =
      code === 'HPE_HEADER_OVERFLOW'
        ? 'header_too_large'
        : code === 'HPE_UNEXPECTED_CONTENT_LENGTH' || code === 'HPE_INVALID_TRANSFER_ENCODING'
          ? 'request_smuggling'
          : code === 'ERR_HTTP_REQUEST_TIMEOUT'
            ? 'header_timeout'
            : 'parse_error';
    record(contexts.get(socket) ?? direct(), kind);
    const status = kind === 'header_too_large' ? 431 : kind === 'header_timeout' ? 408 : 400;
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
    socket.on('data', () => {});
    socket.resume();
    setTimeout(() => socket.destroy(), PROXY_CLOSE_GRACE_MS).unref();
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new CelgateError(
          'E_CONFIG',
          `explicit proxy cannot listen on ${options.listen}: ${err.code ?? err.message} (set http.proxy to another loopback host:port, or "off")`,
          { cause: err },
        ),
      ),
    );
    server.listen(at.port, at.host, () => resolve());
  });
  server.on('error', () => {});
  const live = new Set<Duplex>();
  server.on('connection', (socket: Duplex) => {
    live.add(socket);
    socket.once('close', () => live.delete(socket));
  });
  const address = server.address() as net.AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    addresses: { proxy: `${host}:${address.port}` },
    warnings:
      LLHTTP.ok || options.direct === false
        ? []
        : [`http.direct_unavailable: serving HTTP/1.1 on Node's http.Server (${LLHTTP.reason})`],
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        for (const socket of live) socket.destroy();
      });
      terminator.close();
      pool.close();
      upstream.close();
      exchangeDeps.mcp?.close();
    },
  };
}
