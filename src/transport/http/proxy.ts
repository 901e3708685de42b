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
import { rawResponse, badRequest } from './denial.js';
import { handleRequest } from './exchange.js';
import {
  answerMalformed,
  createPipeline,
  malformedRequest,
  type PipelineDeps,
  type PipelineOptions,
} from './pipeline.js';
import { firstBytes } from './terminator.js';
import type { GuestMeta } from '../vsock.js';
import { agentLabel, parseProxyListen } from './proxy-settings.js';
import { parseHostHeader, type ExchangeContext } from './target.js';
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

export interface ExplicitProxyOptions extends PipelineOptions {
  /** `host:port` on loopback; port 0 picks a free port (tests). */
  listen: string;
}

export type ExplicitProxyDeps = PipelineDeps;

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
  const pipeline = createPipeline(options, deps);
  const { limits, exchange: exchangeDeps, refusal: record } = pipeline;
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
  const terminator = pipeline.terminator(serveNode, 'CONNECT');

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
      const d = badRequest(400, 'https:// URLs must go through CONNECT', req.headers.accept ?? '');
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
      const d = badRequest(400, 'CONNECT needs a host:port target');
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
    const m = malformedRequest(code);
    if (m === null || !socket.writable) return void socket.destroy();
    record(contexts.get(socket) ?? direct(), m.kind);
    answerMalformed(socket, m, code, PROXY_CLOSE_GRACE_MS);
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
    warnings: pipeline.warnings,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        for (const socket of live) socket.destroy();
      });
      pipeline.close();
    },
  };
}
