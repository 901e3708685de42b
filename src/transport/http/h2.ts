/**
 * The HTTP/2 codec's side of the exchange pipeline: one guest stream (Node's compatibility
 * request/response, from terminator.ts) becomes one exchange in exchange.ts, like an HTTP/1.1
 * request — one event, one decision, one ledger row; a refused stream gets its own 403 while the
 * connection's other streams go on. The upstream is spoken to over HTTP/1.1 by the shared client.
 *
 * The request is shown to the pipeline as HTTP/1.1 would show it: pseudo-headers removed, and
 * `:authority` as `Host` (RFC 9113 §8.3.1). CONNECT (and extended CONNECT) is refused: nothing is
 * tunnelled from inside a stream.
 *
 * Owns: that translation. Must not: decide, or forward.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type http2 from 'node:http2';
import { normalizeHeaders, type HttpRequestEvent } from '../../events/index.js';
import type { BodyScrubber } from '../secrets.js';
import { badRequest, type Denial } from './denial.js';
import {
  handleRequest,
  judgeRequest,
  NetRecord,
  originFor,
  pooledRequestHead,
  upstreamFailure,
  writeNetRow,
  type ExchangeDeps,
} from './exchange.js';
import { judgeStreamedHead, responseDrops, type ResponseDeps } from './response.js';
import { resolveTarget, type ExchangeContext, type RequestTarget } from './target.js';
import type { PoolHandle, UpstreamExchange, UpstreamPool } from './upstream-pool.js';

/** What a pooled HTTP/2 exchange needs beyond the pipeline's deps. */
export interface H2Deps extends ExchangeDeps {
  response: Pick<ResponseDeps, 'decider' | 'record' | 'sink' | 'secrets'>;
}

/** `[name, value, …]` without pseudo-headers; `:authority` becomes `host` when no Host was sent. */
export function http1View(raw: readonly string[]): string[] {
  const out: string[] = [];
  let authority: string | null = null;
  let host = false;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.charCodeAt(0) === 58 /* ':' */) {
      if (name === ':authority') authority = raw[i + 1]!;
      continue;
    }
    if (name === 'host') host = true;
    out.push(name, raw[i + 1]!);
  }
  if (!host && authority !== null) out.unshift('host', authority);
  return out;
}

export function handleHttp2Stream(
  req: http2.Http2ServerRequest,
  res: http2.Http2ServerResponse,
  ctx: ExchangeContext,
  deps: H2Deps,
): void {
  res.stream.on('error', () => {});
  if (req.method === 'CONNECT') {
    writeNetRow(deps.sink, {
      ctx,
      method: 'CONNECT',
      target: null,
      event: null,
      decision: null,
      status: 405,
      bytesIn: 0,
      bytesOut: 0,
      durationMs: 0,
      error: 'connect_refused',
      sessionOrigin: deps.origin,
    });
    const d = badRequest(
      405,
      'CONNECT is not accepted inside an HTTP/2 connection',
      req.headers.accept ?? '',
    );
    res.writeHead(d.status, d.headers);
    res.end(d.body);
    return;
  }
  const raw = http1View(req.rawHeaders);
  // A stream without a body, while no rule reads response bodies, goes on the pool (as the direct
  // path's requests do); the rest through handleRequest, which buffers and judges bodies.
  if (
    req.stream.endAfterHeaders &&
    deps.decider.needsBody?.('http.response') !== true &&
    deps.decider.mayAsk?.('http.request') !== true &&
    deps.mcp?.candidateHead(
      ctx.sniHost,
      String(req.headers['content-type'] ?? ''),
      String(req.headers.accept ?? ''),
    ) !== true
  ) {
    new PooledStream(req, res, ctx, deps, deps.pool).start(raw);
    return;
  }
  // The pipeline reads rawHeaders once; an own property shadows the compatibility getter.
  Object.defineProperty(req, 'rawHeaders', { value: raw, configurable: true });
  void handleRequest(
    req as unknown as IncomingMessage,
    res as unknown as ServerResponse,
    ctx,
    deps,
  ).catch(() => res.stream.close());
}

/** One bodiless HTTP/2 stream forwarded on the upstream pool (the direct path's client). */
class PooledStream implements UpstreamExchange {
  private rec: NetRecord | null = null;
  private event: HttpRequestEvent | null = null;
  private target: RequestTarget | null = null;
  private handle: PoolHandle | null = null;
  private scrubber: BodyScrubber | null = null;
  private accept = '';
  private status = 0;
  private done = false;

  constructor(
    private readonly req: http2.Http2ServerRequest,
    private readonly res: http2.Http2ServerResponse,
    private readonly ctx: ExchangeContext,
    private readonly deps: H2Deps,
    private readonly pool: UpstreamPool,
  ) {}

  start(raw: string[]): void {
    const { deps, ctx } = this;
    const method = this.req.method;
    const rec = new NetRecord(deps.sink, ctx, method, null, deps.origin);
    this.rec = rec;
    this.res.once('close', this.onClose);
    const headers = normalizeHeaders(raw);
    this.accept = headers.accept ?? '';
    const tr = resolveTarget(method, this.req.url, headers, raw.length / 2, ctx, deps.limits);
    if (!tr.ok) {
      rec.error = tr.code;
      this.respond(badRequest(tr.status, tr.reason, this.accept));
      return;
    }
    const target = tr.target;
    this.target = target;
    rec.setTarget(target);
    const refused = deps.upstream.destination(target.host, target.port).refused;
    const judged = judgeRequest(
      deps,
      ctx,
      rec,
      { method, target, headers, refused },
      this.accept,
      this.deny,
    );
    if (judged instanceof Promise) {
      // Held for an approver (docs/approvals.md); the stream has no body to keep.
      void judged
        .then((event) => {
          if (event !== null && !this.done && !this.res.destroyed) this.forward(event, target, raw);
        })
        .catch(() => this.res.stream.close());
      return;
    }
    if (judged === null) return;
    this.forward(judged, target, raw);
  }

  private forward(event: HttpRequestEvent, target: RequestTarget, raw: string[]): void {
    const { deps } = this;
    const method = this.req.method;
    this.event = event;
    const head = pooledRequestHead(deps.secrets, event, target, method, raw);
    this.handle = this.pool.request(
      { scheme: target.scheme, host: target.host, port: target.port, method, head, bodyLength: 0 },
      this,
    );
    this.handle.endRequest();
  }

  private readonly deny = (d: Denial): void => this.respond(d);

  private respond(d: Denial): void {
    if (this.done || this.res.headersSent) return;
    this.status = d.status;
    delete d.headers.connection;
    this.res.writeHead(d.status, d.headers);
    if (this.req.method === 'HEAD') this.res.end();
    else this.res.end(d.body);
  }

  head(status: number, _message: string, raw: string[]): void {
    if (this.done) return;
    const v = judgeStreamedHead(
      this.deps.response,
      this.event!,
      originFor(this.deps, this.ctx),
      { method: this.req.method, host: this.target!.host, accept: this.accept },
      status,
      raw,
    );
    if (!v.allowed) {
      this.handle?.abandon();
      this.handle = null;
      this.rec!.event = v.event;
      this.rec!.decision = v.decision;
      this.respond(v.denial);
      return;
    }
    const { secrets } = v;
    const scrub = v.scrubber !== null;
    this.scrubber = v.scrubber;
    const out: string[] = [];
    const drops = responseDrops(raw);
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i]!.toLowerCase();
      if (drops.has(name) || name === 'host' || (scrub && name === 'content-length')) continue;
      out.push(name, secrets === undefined ? raw[i + 1]! : secrets.scrub(raw[i + 1]!));
    }
    this.status = status;
    this.res.writeHead(status, out as unknown as http2.OutgoingHttpHeaders);
  }

  body(raw: Buffer): void {
    if (this.done) return;
    this.rec!.bytesOut += raw.length;
    const chunk = this.scrubber === null ? raw : this.scrubber.push(raw);
    if (chunk.length === 0) return;
    if (!this.res.write(chunk)) {
      this.handle?.pause();
      this.res.once('drain', this.onDrain);
    }
  }

  private readonly onDrain = (): void => this.handle?.resume();

  drained(): void {}

  end(): void {
    this.handle = null;
    if (this.done) return;
    const rest = this.scrubber?.end();
    this.scrubber = null;
    if (rest !== undefined && rest.length > 0) this.res.end(rest);
    else this.res.end();
  }

  fail(err: Error, responded: boolean): void {
    this.handle = null;
    if (this.done || this.rec === null) return;
    this.rec.error = 'upstream_error';
    if (responded || this.res.headersSent) {
      // Cut short mid-response: reset the stream so the guest does not take a truncated body for a whole one.
      this.res.stream.close(0x02 /* INTERNAL_ERROR */);
      return;
    }
    this.respond(upstreamFailure(this.deps, this.rec, this.event, this.target!, err, this.accept));
  }

  private readonly onClose = (): void => {
    this.done = true;
    // The guest reset the stream before the answer was whole: the upstream connection is dropped.
    this.handle?.abandon();
    this.handle = null;
    const rec = this.rec;
    this.rec = null;
    rec?.finish(this.res.headersSent ? this.status : null);
  };
}
