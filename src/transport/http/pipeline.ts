/**
 * What the two HTTP front ends — the vsock service (service.ts), the explicit proxy (proxy.ts) —
 * build the same way: the exchange pipeline's dependencies (one upstream client, the decider with
 * the secret guard, MCP over HTTPS), the shared TLS terminator wired to the HTTP/1.1 direct path
 * and the HTTP/2 codec, connection-level ledger rows, and the answer to a request Node's parser
 * refused. A front end adds only what is its own: how connections arrive and how they are bounded.
 *
 * Owns: that wiring. Must not: accept connections, decide, or forward anything itself.
 */
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { EventOrigin, EventSink } from '../../events/index.js';
import { withSecretGuard } from '../../policy/secrets.js';
import type { SecretStore } from '../secrets.js';
import { rawResponse, badRequest } from './denial.js';
import { destinationGuard } from './destination.js';
import { serveDirect, type DirectDeps } from './direct.js';
import {
  responseDepsOf,
  writeNetRow,
  type BodyAwareDecider,
  type ExchangeDeps,
} from './exchange.js';
import { handleHttp2Stream, type H2Deps } from './h2.js';
import { resolveLimits, type HttpLimits } from './limits.js';
import { LLHTTP, reasonPhrase } from './llhttp.js';
import { McpHttp, type McpHttpOptions } from './mcp.js';
import type { ExchangeContext } from './target.js';
import { TlsTerminator, type SecureContextSource } from './terminator.js';
import { Upstream, type UpstreamMap } from './upstream.js';
import { UpstreamPool } from './upstream-pool.js';

/** The options both front ends take for the pipeline behind them. */
export interface PipelineOptions {
  limits?: Partial<HttpLimits>;
  upstreamMap?: UpstreamMap;
  /** Extra CA certificates (PEM) trusted for upstream TLS, on top of the system roots. */
  extraCa?: readonly string[];
  /** Secrets substituted at egress (src/transport/secrets.ts); none when undefined. */
  secrets?: SecretStore;
  /** MCP over HTTPS (mcp.ts): forced endpoints (`mcp.remote`), the rules for tools/list hiding. */
  mcp?: McpHttpOptions;
  /** IP ranges a guest's request may be connected to although they are special-purpose
   * (loopback, private, link-local, …; see destination.ts). Default none. */
  allowPrivateDestinations?: readonly string[];
  /** Offer HTTP/2 (ALPN `h2`) to TLS clients; default true. */
  http2?: boolean;
  /** Serve HTTP/1.1 on the direct path (direct.ts) unless a request needs the Node path; default
   * true. False: Node's http.Server for all. */
  direct?: boolean;
}

export interface PipelineDeps {
  decider: BodyAwareDecider;
  sink: EventSink;
  origin: EventOrigin;
  certs: SecureContextSource;
}

/** Hands a connection the direct path does not take (or all, without it) to Node's http.Server. */
export type Handover = (socket: net.Socket, ctx: ExchangeContext, bytes: Buffer) => void;

export interface Pipeline {
  limits: HttpLimits;
  exchange: ExchangeDeps;
  /** One line when the direct path is unavailable on this Node (llhttp.ts self-test). */
  warnings: string[];
  /** Writes the `net_events` row of a connection refused or failed before a request was judged. */
  refusal(ctx: ExchangeContext, error: string, method?: string, status?: number | null): void;
  /**
   * The shared TLS terminator: HTTP/1.1 on the direct path (what it does not take goes to
   * `handover`), HTTP/2 stream by stream; a connection it refuses is recorded with `refuseMethod`.
   */
  terminator(handover: Handover, refuseMethod?: string): TlsTerminator;
  /** Closes the upstream client, the terminators made here and MCP's open streams. */
  close(): void;
}

export function createPipeline(options: PipelineOptions, deps: PipelineDeps): Pipeline {
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
  const exchange: ExchangeDeps = {
    decider,
    sink: deps.sink,
    origin: deps.origin,
    upstream,
    pool,
    limits,
    secrets,
    mcp: new McpHttp(options.mcp),
  };
  const refusal = (
    ctx: ExchangeContext,
    error: string,
    method = '',
    status: number | null = null,
  ) =>
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
  // The direct path needs llhttp; without it (llhttp.ts) every request takes the public-API path.
  const useDirect = options.direct !== false && LLHTTP.ok;
  const h2Deps: H2Deps = { ...exchange, response: responseDepsOf(exchange) };
  const terminators: TlsTerminator[] = [];
  return {
    limits,
    exchange,
    warnings:
      LLHTTP.ok || options.direct === false
        ? []
        : [`http.direct_unavailable: serving HTTP/1.1 on Node's http.Server (${LLHTTP.reason})`],
    refusal,
    terminator(handover, refuseMethod = '') {
      const directDeps: DirectDeps = {
        ...exchange,
        response: responseDepsOf(exchange),
        refuse: (ctx, reason) => refusal(ctx, reason),
        handover,
      };
      const t = new TlsTerminator(
        { certs: deps.certs, limits, http2: options.http2 !== false },
        {
          http1: (socket, ctx, initial) =>
            useDirect
              ? serveDirect(socket, ctx, directDeps, initial)
              : handover(socket, ctx, initial ?? Buffer.alloc(0)),
          http2: (req, res, ctx) => handleHttp2Stream(req, res, ctx, h2Deps),
          refuse: (ctx, error) => refusal(ctx, error, refuseMethod),
        },
      );
      terminators.push(t);
      return t;
    },
    close() {
      for (const t of terminators) t.close();
      pool.close();
      upstream.close();
      exchange.mcp?.close();
    },
  };
}

/** A request Node's http.Server refused to parse, as the ledger and the guest are told it. */
export interface Malformed {
  /** `net_events.error`: header_too_large, request_smuggling, header_timeout or parse_error. */
  kind: string;
  status: 400 | 408 | 431;
}

/** Sorts a `clientError` code; null when the peer is simply gone (nothing to answer). */
export function malformedRequest(code: string): Malformed | null {
  if (code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE') return null;
  if (code === 'HPE_HEADER_OVERFLOW') return { kind: 'header_too_large', status: 431 };
  if (code === 'HPE_UNEXPECTED_CONTENT_LENGTH' || code === 'HPE_INVALID_TRANSFER_ENCODING')
    return { kind: 'request_smuggling', status: 400 };
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return { kind: 'header_timeout', status: 408 };
  return { kind: 'parse_error', status: 400 };
}

/**
 * Answers a malformed request and closes: a lingering close that keeps discarding input, so the
 * peer is not reset before it reads the answer, but never longer than `graceMs`.
 */
export function answerMalformed(socket: Duplex, m: Malformed, code: string, graceMs: number): void {
  const d = badRequest(m.status, `malformed request (${m.kind}: ${code})`);
  socket.end(rawResponse(d, reasonPhrase(m.status)));
  socket.on('data', () => {});
  socket.resume();
  setTimeout(() => socket.destroy(), graceMs).unref();
}
