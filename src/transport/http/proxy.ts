/**
 * Explicit proxy mode (DESIGN §3): an HTTP proxy on loopback for running an agent on the host with
 * `HTTPS_PROXY=http://127.0.0.1:8080` and the celgate CA trusted. Accepts `CONNECT host:port`
 * (TLS terminated with a leaf for the SNI host, see proxy-mitm.ts) and plain absolute-form
 * `GET http://…` requests, and feeds every request into the SAME exchange pipeline as the vsock
 * service (`handleRequest` / `handleUpgrade`): one event, one decision before anything goes
 * upstream, the §7 denial otherwise, one ledger row.
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
import { handleRequest, writeNetRow, type BodyAwareDecider, type ExchangeDeps } from './exchange.js';
import { resolveLimits, type HttpLimits } from './limits.js';
import { CelgateMitmProxy, type TunnelTarget } from './proxy-mitm.js';
import type { SecureContextSource } from './service.js';
import { agentLabel, parseProxyListen } from './proxy-settings.js';
import { parseHostHeader, type ExchangeContext } from './target.js';
import { destinationGuard } from './destination.js';
import { withSecretGuard } from '../../policy/secrets.js';
import type { SecretStore } from '../secrets.js';
import { Upstream, type UpstreamMap } from './upstream.js';
import { handleUpgrade } from './websocket.js';

export { agentLabel, DEFAULT_PROXY_LISTEN, parseProxyListen, parseProxySetting } from './proxy-settings.js';

/** How long a refused connection may drain its error response before it is destroyed. */
export const PROXY_CLOSE_GRACE_MS = 1000;

export interface ExplicitProxyOptions {
  /** `host:port` on loopback; port 0 picks a free port (tests). */
  listen: string;
  limits?: Partial<HttpLimits>;
  upstreamMap?: UpstreamMap;
  /** Extra CA certificates (PEM) trusted for upstream TLS, on top of the system roots. */
  extraCa?: readonly string[];
  /** Secrets substituted at egress (src/transport/secrets.ts); none when undefined. */
  secrets?: SecretStore;
  /** IP ranges a guest's request may be connected to although they are special-purpose
   * (loopback, private, link-local, …; see destination.ts). Default none. */
  allowPrivateDestinations?: readonly string[];
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
  close(): Promise<void>;
}

/** Validates a CONNECT request target (`host:port`, `[v6]:port`); null when malformed. */
export function parseConnectTarget(url: string): Omit<TunnelTarget, 'meta'> | null {
  if (url.length > 300) return null;
  const parsed = parseHostHeader(url);
  if (parsed === null || parsed.port === null || parsed.host === '') return null;
  return { host: parsed.host, port: parsed.port };
}

export async function startExplicitProxy(options: ExplicitProxyOptions, deps: ExplicitProxyDeps): Promise<ExplicitProxy> {
  const at = parseProxyListen(options.listen);
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
  const targets = new WeakMap<object, { target: TunnelTarget; timer: NodeJS.Timeout }>();
  const originalUrls = new WeakMap<object, string>();
  const metaOf = (req?: http.IncomingMessage) => {
    const label = agentLabel(req?.headers['proxy-authorization']);
    return label === undefined ? {} : { process_name: label };
  };
  const direct = (req?: http.IncomingMessage): ExchangeContext => ({ scheme: 'http', sniHost: '', port: 80, meta: metaOf(req) });

  const record = (ctx: ExchangeContext, error: string, method = '') =>
    writeNetRow(deps.sink, { ctx, method, target: null, event: null, decision: null, status: null, bytesIn: 0, bytesOut: 0, durationMs: 0, error, sessionOrigin: deps.origin });

  // Node checks headersTimeout only every connectionsCheckingInterval (default 30 s); check often
  // enough that a slowloris client is cut off close to the configured bound.
  const checkEvery = Math.max(50, Math.min(1000, Math.floor(limits.headersTimeoutMs / 4)));
  const server = http.createServer({ maxHeaderSize: limits.maxHeaderBytes, requestTimeout: 0, keepAlive: true, connectionsCheckingInterval: checkEvery });
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  server.headersTimeout = limits.headersTimeoutMs;
  server.timeout = limits.idleTimeoutMs;
  server.maxHeadersCount = limits.maxHeaderCount + 1;
  server.maxConnections = limits.maxConnections;
  // Past maxConnections Node closes the new socket itself; record that it happened.
  server.on('drop', () => record(direct(), 'too_many_connections'));

  const mitm = new CelgateMitmProxy({
    certs: deps.certs,
    handshakeTimeoutMs: limits.handshakeTimeoutMs,
    claim: (socket) => {
      const t = targets.get(socket);
      if (t === undefined) return undefined;
      clearTimeout(t.timer);
      targets.delete(socket);
      return t.target;
    },
    serve: (stream, ctx) => {
      contexts.set(stream, ctx);
      server.emit('connection', stream);
    },
    refuse: (ctx, error) => record(ctx, error, 'CONNECT'),
  });

  // Validate the CONNECT target before the library answers 200 (it answers every CONNECT).
  mitm.onConnect((req, socket, head, callback) => {
    const parsed = parseConnectTarget(req.url ?? '');
    if (parsed === null) {
      record(direct(req), 'connect_bad_target', 'CONNECT');
      const d = renderDenial({ kind: 'bad_request', status: 400, rule_id: null, reason: 'CONNECT needs a host:port target', event_id: '', accept: '' });
      socket.end(rawResponse(d, 'Bad Request'));
      return; // never calls back: the library does not answer 200
    }
    const target: TunnelTarget = { ...parsed, meta: metaOf(req) };
    // A client that opens a tunnel and then sends nothing is dropped after the handshake timeout.
    const timer = setTimeout(() => {
      targets.delete(socket);
      record({ scheme: 'https', sniHost: target.host, port: target.port, meta: target.meta }, 'tls_handshake_timeout', 'CONNECT');
      socket.destroy();
    }, limits.handshakeTimeoutMs);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
    targets.set(socket, { target, timer });
    // With bytes already sent after the CONNECT head the library skips its 200; send it ourselves.
    if (head.length > 0) socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    callback();
  });

  // Every request goes to the exchange pipeline; the library never forwards (the callback is not called).
  mitm.onRequest((mctx, _callback) => {
    const req = mctx.clientToProxyRequest;
    // parseHostAndPort rewrote an absolute-form URL to its path; the pipeline judges the original.
    req.url = originalUrls.get(req) ?? req.url;
    const ctx = contexts.get(req.socket) ?? direct(req);
    void handleRequest(req, mctx.proxyToClientResponse, ctx, exchangeDeps);
  });

  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const ctx = contexts.get(req.socket);
    const url = req.url ?? '';
    if (ctx === undefined && /^https:\/\//i.test(url)) {
      record(direct(req), 'parse_error', req.method ?? '');
      const d = renderDenial({ kind: 'bad_request', status: 400, rule_id: null, reason: 'https:// URLs must go through CONNECT', event_id: '', accept: req.headers.accept ?? '' });
      res.writeHead(d.status, d.headers).end(d.body);
      return;
    }
    if (!/^http:\/\//i.test(url) && req.headers.host === undefined) {
      // No Host: the library would answer 400 unrecorded. The pipeline judges it by SNI inside a
      // tunnel, or refuses it with a recorded 400 on a plain proxy connection.
      void handleRequest(req, res, ctx ?? direct(req), exchangeDeps);
      return;
    }
    originalUrls.set(req, url);
    mitm._onHttpServerRequest(ctx?.scheme === 'https', req, res);
  };
  server.on('request', onRequest);
  server.on('checkContinue', onRequest);
  server.on('connect', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    if (contexts.has(socket)) {
      // CONNECT inside a tunnel: refuse rather than nest.
      record(contexts.get(socket)!, 'connect_refused', 'CONNECT');
      return void socket.destroy();
    }
    mitm._onHttpServerConnect(req, socket, head);
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    handleUpgrade(req, socket, head, contexts.get(socket) ?? direct(req), exchangeDeps);
  });
  const refused = new WeakSet<object>();
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (refused.has(socket)) return;
    refused.add(socket);
    const code = err.code ?? '';
    if (code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE' || !socket.writable) return void socket.destroy();
    const kind =
      code === 'HPE_HEADER_OVERFLOW' ? 'header_too_large'
      : code === 'HPE_UNEXPECTED_CONTENT_LENGTH' || code === 'HPE_INVALID_TRANSFER_ENCODING' ? 'request_smuggling'
      : code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'header_timeout'
      : 'parse_error';
    record(contexts.get(socket) ?? direct(), kind);
    const status = kind === 'header_too_large' ? 431 : kind === 'header_timeout' ? 408 : 400;
    const d = renderDenial({ kind: 'bad_request', status, rule_id: null, reason: `malformed request (${kind}: ${code})`, event_id: '', accept: '' });
    socket.end(rawResponse(d, status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request'));
    socket.on('data', () => {});
    socket.resume();
    setTimeout(() => socket.destroy(), PROXY_CLOSE_GRACE_MS).unref();
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new CelgateError('E_CONFIG', `explicit proxy cannot listen on ${options.listen}: ${err.code ?? err.message} (set http.proxy to another loopback host:port, or "off")`, { cause: err })),
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
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        for (const socket of live) socket.destroy();
      });
      upstream.close();
    },
  };
}
