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
import { listenVsock, type GuestConnection, type VsockEndpoint } from '../vsock.js';
import { rawResponse, badRequest } from './denial.js';
import { handleRequest } from './exchange.js';
import {
  answerMalformed,
  createPipeline,
  malformedRequest,
  type PipelineDeps,
  type PipelineOptions,
} from './pipeline.js';
import type { ExchangeContext } from './target.js';
import { handleUpgrade } from './websocket.js';
import { firstBytes } from './terminator.js';

export type { SecureContextSource } from './terminator.js';

export interface HttpServiceOptions extends PipelineOptions {
  /** The vsock endpoint (DESIGN default port 5002). */
  vsock: VsockEndpoint;
  /** Destination port assumed for intercepted TLS / plain HTTP (the bridge redirects 443 / 80). */
  httpsPort?: number;
  httpPort?: number;
}

/** How long a refused connection gets to drain its error response before it is destroyed. */
export const CLOSE_GRACE_MS = 1000;

export type HttpServiceDeps = PipelineDeps;

export interface HttpService {
  addresses: Record<string, string>;
  /** One line when the direct path is unavailable on this Node (llhttp.ts self-test). */
  warnings: string[];
  close(): Promise<void>;
}

export async function startHttpService(
  options: HttpServiceOptions,
  deps: HttpServiceDeps,
): Promise<HttpService> {
  const pipeline = createPipeline(options, deps);
  const { limits, exchange: exchangeDeps, refusal: record } = pipeline;
  const contexts = new WeakMap<object, ExchangeContext>();
  const httpsPort = options.httpsPort ?? 443;
  const httpPort = options.httpPort ?? 80;
  const live = new Set<net.Socket>();

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
    const d = badRequest(
      405,
      'CONNECT is not accepted on the interception port',
      req.headers.accept ?? '',
    );
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
    const m = malformedRequest(code);
    if (m === null) return void socket.destroy();
    if (ctx !== undefined) record(ctx, m.kind, '', socket.writable ? m.status : null);
    if (socket.writable) answerMalformed(socket, m, code, CLOSE_GRACE_MS);
    else socket.destroy();
  });

  /** The Node `http.Server` path: requests with bodies, upgrades, `Expect`, malformed input. */
  const serveNode = (socket: Duplex, ctx: ExchangeContext) => {
    contexts.set(socket, ctx);
    armHeaderTimer(socket, limits.headersTimeoutMs);
    socket.once('close', () => clearTimeout(headerTimers.get(socket)));
    server.emit('connection', socket);
  };
  /** Every connection starts on the direct path (direct.ts); what it does not take comes here. */
  const terminator = pipeline.terminator((socket, ctx, bytes) => {
    if (bytes.length > 0) socket.unshift(bytes);
    serveNode(socket, ctx);
    // Paused by the direct path; resuming replays the unshifted bytes before any new read.
    socket.resume();
  });

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
    warnings: pipeline.warnings,
    async close() {
      await listener.close();
      for (const s of live) s.destroy();
      server.closeAllConnections();
      pipeline.close();
    },
  };
}
