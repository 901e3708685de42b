/**
 * The direct path of the vsock HTTP service: a guest connection's requests are parsed by llhttp
 * (the parser inside Node's `http` module, same strictness), decided, and forwarded on a pooled
 * upstream connection (upstream-pool.ts), the response judged on status and headers and streamed
 * back with backpressure — without Node's per-request `IncomingMessage` / `ServerResponse` /
 * `ClientRequest` / `Agent` objects, which cost the gateway about as much CPU as celgate's own
 * work on every request (docs/benchmarks.md, "Floors").
 *
 * It takes requests without a body and with a `Content-Length` body (streamed upstream with
 * backpressure, never buffered; dropped, to keep the connection in step, when it is refused or the
 * upstream answers early) while no rule reads a body. At the first request it does not take — a
 * chunked body, `Expect`, an upgrade or CONNECT, a malformed or oversized head, a body while a rule
 * reads `http.request.body`, or any request while a rule reads `http.response.body` — it hands the
 * connection, with that request's bytes unread, to the Node `http.Server` path (exchange.ts), which
 * serves it from then on. So malformed input is judged and recorded by exactly one implementation.
 *
 * Owns: the guest side of direct exchanges (head parsing, framing, keep-alive, slow-head and idle
 * limits; the pure head rules are in direct-head.ts). Must not: decide itself (exchange.ts
 * `judgeRequest`, response.ts `judgeResponse`), or send anything upstream before the decision.
 */
import type net from 'node:net';
import { normalizeHeaders, type HttpRequestEvent } from '../../events/index.js';
import { denialHead, badRequest, renderDenial, type Denial } from './denial.js';
import {
  judgeRequest,
  NetRecord,
  originFor,
  pooledRequestHead,
  upstreamFailure,
  type ExchangeContext,
  type ExchangeDeps,
} from './exchange.js';
import type { BodyScrubber } from '../secrets.js';
import {
  httpDate,
  HTTPParser,
  isParseError,
  METHODS,
  newParser,
  reasonPhrase,
  type HTTPParser as Parser,
  type OnHeadersComplete,
} from './llhttp.js';
import { judgeStreamedHead, type ResponseDeps } from './response.js';
import { resolveTarget, type RequestTarget } from './target.js';
import type { PoolHandle, UpstreamExchange, UpstreamPool } from './upstream-pool.js';
import { Deadline } from './deadline.js';
import { directBodyLength, responseHead } from './direct-head.js';

export interface DirectDeps extends ExchangeDeps {
  pool: UpstreamPool;
  response: Pick<ResponseDeps, 'decider' | 'record' | 'sink'>;
  /** Writes a connection-level ledger row (a head that did not complete in time). */
  refuse(ctx: ExchangeContext, reason: string): void;
  /** Gives the connection to the Node `http.Server` path; `bytes` (unread input) are replayed first. */
  handover(socket: net.Socket, ctx: ExchangeContext, bytes: Buffer): void;
}

/** Serves `socket`'s requests on the direct path; `initial` holds bytes already read from it. */
export function serveDirect(
  socket: net.Socket,
  ctx: ExchangeContext,
  deps: DirectDeps,
  initial: Buffer | null,
): void {
  const c = new GuestConnection(socket, ctx, deps);
  if (initial !== null && initial.length > 0) c.onData(initial);
  socket.resume();
}

const EMPTY = Buffer.alloc(0);
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');

/** Waiting for a request head (at the start, or after the keep-alive wait saw bytes). */
const PHASE_HEAD = 0;
/** Between exchanges on a kept-alive connection. */
const PHASE_IDLE = 1;
/** An exchange is in flight; later bytes wait (pipelining). */
const PHASE_BUSY = 2;

class GuestConnection implements UpstreamExchange {
  private buf: Buffer = EMPTY;
  /** Bytes of `buf` already searched for the end of a head. */
  private scanned = 0;
  private phase = PHASE_HEAD;
  private readonly parser: Parser;
  private readonly deadline: Deadline;
  private readonly keepAliveHeader: string;
  private closed = false;
  private handedOver = false;
  private peerEnded = false;
  /** Reading is paused: a pipelining guest is ahead of its answers. */
  private readPaused = false;
  /** The request is held for an approver: its body stays in `buf` until the answer. */
  private held = false;
  /** Reading is paused: the upstream has not taken the request body written so far. */
  private uploadPaused = false;
  private corked = false;
  /** Bytes of the current request's body still to come from the guest (forwarded, or dropped
   * once nothing upstream wants them). The next request starts only after them. */
  private bodyLeft = 0;

  // The head llhttp just parsed.
  private method = '';
  private url = '';
  private raw: string[] = [];
  private extra: string[] | null = null;
  private major = 1;
  private minor = 1;
  private keepAliveAsked = true;
  private upgrade = false;
  private complete = false;

  // The exchange in flight.
  private rec: NetRecord | null = null;
  private request: HttpRequestEvent | null = null;
  private target: RequestTarget | null = null;
  private handle: PoolHandle | null = null;
  private accept = '';
  private keepAlive = true;
  /** The response body goes to the guest chunked (no length known, an HTTP/1.1 guest). */
  private chunked = false;
  /** Set while a response body from a host secrets go to is scanned for echoed values. */
  private scrubber: BodyScrubber | null = null;
  private status = 0;
  private headSent = false;

  constructor(
    private readonly socket: net.Socket,
    private readonly ctx: ExchangeContext,
    private readonly deps: DirectDeps,
  ) {
    const p = newParser(HTTPParser.REQUEST, deps.limits.maxHeaderBytes);
    this.parser = p;
    p[HTTPParser.kOnHeaders] = (h: string[], url: string) => {
      (this.extra ??= []).push(...h);
      this.url += url;
    };
    p[HTTPParser.kOnHeadersComplete] = ((
      major,
      minor,
      headers,
      method,
      url,
      _s,
      _m,
      upgrade,
      keepAlive,
    ) => {
      this.raw = this.extra === null ? (headers ?? []) : this.extra.concat(headers ?? []);
      this.extra = null;
      this.url += url ?? '';
      this.method = METHODS[method ?? -1] ?? '';
      this.major = major;
      this.minor = minor;
      this.upgrade = upgrade;
      this.keepAliveAsked = keepAlive;
      return 0;
    }) satisfies OnHeadersComplete;
    p[HTTPParser.kOnMessageComplete] = () => {
      this.complete = true;
    };
    this.keepAliveHeader = `Connection: keep-alive\r\nKeep-Alive: timeout=${Math.floor(deps.limits.keepAliveTimeoutMs / 1000)}\r\n`;
    this.deadline = new Deadline(this.onDeadline);
    this.deadline.set(deps.limits.headersTimeoutMs);
    socket.setNoDelay(true);
    socket.setTimeout(deps.limits.idleTimeoutMs, this.onIdle);
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onClose);
    socket.on('drain', this.onDrain);
  }

  readonly onData = (chunk: Buffer): void => {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    if (this.bodyLeft > 0) this.pumpBody();
    if (this.phase !== PHASE_BUSY) this.next();
    else if (this.buf.length > this.deps.limits.maxHeaderBytes && !this.readPaused) {
      // A pipelining guest waits for its earlier answers before more is read.
      this.readPaused = true;
      this.socket.pause();
    }
  };

  /** Starts the next buffered request, if its head is complete. */
  private readonly next = (): void => {
    if (
      this.closed ||
      this.handedOver ||
      this.phase === PHASE_BUSY ||
      this.bodyLeft > 0 ||
      this.buf.length === 0
    )
      return;
    const buf = this.buf;
    const end = buf.indexOf(HEAD_END, Math.max(0, this.scanned - 3));
    if (end < 0) {
      this.scanned = buf.length;
      if (buf.length > this.deps.limits.maxHeaderBytes) this.handover();
      return;
    }
    const headLen = end + 4;
    this.url = '';
    this.complete = false;
    this.upgrade = false;
    const r = this.parser.execute(headLen === buf.length ? buf : buf.subarray(0, headLen));
    const bodyLength =
      isParseError(r) || this.upgrade || this.major !== 1 || this.method === ''
        ? -1
        : directBodyLength(this.raw, this.ctx.sniHost, this.complete, this.deps);
    if (bodyLength < 0) {
      this.handover();
      return;
    }
    this.buf = headLen === buf.length ? EMPTY : buf.subarray(headLen);
    this.scanned = 0;
    this.bodyLeft = bodyLength;
    try {
      this.exchange(bodyLength);
      if (this.bodyLeft > 0) this.pumpBody();
    } catch (err) {
      // A bug, never a forward: answer this request with a 502 and keep the process.
      if (this.rec !== null) this.rec.error = 'internal_error';
      this.keepAlive = false;
      this.respond(
        renderDenial({
          kind: 'upstream_error',
          status: 502,
          rule_id: null,
          reason: `celgate failed while handling the request: ${(err as Error).message}`,
          event_id: this.request?.common.event_id ?? '',
          accept: this.accept,
        }),
      );
    }
  };

  /**
   * Moves the request body from `buf` to the upstream (or drops it when nothing upstream wants it
   * any more: a refusal, a failure, an early answer), exactly `bodyLeft` bytes, so the parser stays
   * in step for the next request. Pauses reading while the upstream is behind.
   */
  private pumpBody(): void {
    if (this.held) return;
    while (this.bodyLeft > 0 && this.buf.length > 0) {
      const take = Math.min(this.bodyLeft, this.buf.length);
      const slice = take === this.buf.length ? this.buf : this.buf.subarray(0, take);
      this.buf = take === this.buf.length ? EMPTY : this.buf.subarray(take);
      this.bodyLeft -= take;
      this.parser.execute(slice);
      if (this.rec !== null) this.rec.bytesIn += take;
      if (this.handle !== null && !this.handle.write(slice) && !this.uploadPaused) {
        this.uploadPaused = true;
        this.socket.pause();
      }
    }
    if (this.bodyLeft > 0) return;
    this.handle?.endRequest();
    // The body is in: a request buffered behind it may start once this exchange is answered.
    if (this.phase !== PHASE_BUSY && this.buf.length > 0) process.nextTick(this.next);
  }

  private handover(): void {
    this.handedOver = true;
    this.deadline.stop();
    this.socket.setTimeout(0, this.onIdle);
    this.socket.removeListener('data', this.onData);
    this.socket.removeListener('end', this.onEnd);
    this.socket.removeListener('close', this.onClose);
    this.socket.removeListener('drain', this.onDrain);
    this.socket.pause();
    this.parser.close();
    const bytes = this.buf;
    this.buf = EMPTY;
    this.deps.handover(this.socket, this.ctx, bytes);
  }

  private exchange(bodyLength: number): void {
    this.phase = PHASE_BUSY;
    this.deadline.clear();
    const deps = this.deps;
    const method = this.method;
    const rec = new NetRecord(deps.sink, this.ctx, method, null, deps.origin);
    this.rec = rec;
    this.keepAlive = this.keepAliveAsked;
    this.headSent = false;
    this.status = 0;
    this.request = null;
    const headers = normalizeHeaders(this.raw);
    this.accept = headers.accept ?? '';
    const tr = resolveTarget(method, this.url, headers, this.raw.length / 2, this.ctx, deps.limits);
    if (!tr.ok) {
      rec.error = tr.code;
      this.keepAlive = false;
      this.respond(badRequest(tr.status, tr.reason, this.accept));
      return;
    }
    const target = tr.target;
    this.target = target;
    rec.setTarget(target);
    const body =
      bodyLength === 0
        ? undefined
        : {
            state: 'streamed' as const,
            text: '',
            size: bodyLength,
            content_type: headers['content-type'] ?? '',
            truncated: false,
          };
    const refused = deps.upstream.destination(target.host, target.port).refused;
    const judged = judgeRequest(
      deps,
      this.ctx,
      rec,
      { method, target, headers, body, refused },
      this.accept,
      this.deny,
    );
    if (judged instanceof Promise) {
      // Held for an approver (a rule turned `ask` after this head was taken, else directBody had
      // handed it over): the body waits in `buf` until the answer.
      this.held = true;
      void judged
        .then((event) => {
          this.held = false;
          if (this.closed) return;
          if (event !== null) this.forwardJudged(event, target, method, bodyLength);
          if (this.bodyLeft > 0) {
            this.pumpBody();
            if (this.readPaused && this.bodyLeft > 0) {
              this.readPaused = false;
              this.socket.resume();
            }
          }
        })
        .catch(() => {
          if (!this.closed) this.socket.destroy();
        });
      return;
    }
    if (judged === null) return;
    this.forwardJudged(judged, target, method, bodyLength);
  }

  private forwardJudged(
    event: HttpRequestEvent,
    target: RequestTarget,
    method: string,
    bodyLength: number,
  ): void {
    const deps = this.deps;
    this.request = event;
    const head = pooledRequestHead(deps.secrets, event, target, method, this.raw);
    this.handle = deps.pool.request(
      { scheme: target.scheme, host: target.host, port: target.port, method, head, bodyLength },
      this,
    );
  }

  private readonly deny = (d: Denial): void => this.respond(d);

  /** Answers the exchange with a celgate response (a denial or an error) and finishes it. */
  private respond(d: Denial): void {
    if (this.closed) return;
    this.status = d.status;
    this.headSent = true;
    this.cork();
    this.socket.write(
      denialHead(d, reasonPhrase(d.status), `Date: ${httpDate()}\r\n${this.connectionHeader()}`),
      'latin1',
    );
    if (this.method !== 'HEAD') this.socket.write(d.body);
    this.finish();
  }

  /** What Node's http.Server says about the connection: close, or keep-alive with its timeout. */
  private connectionHeader(): string {
    return this.keepAlive ? this.keepAliveHeader : 'Connection: close\r\n';
  }

  /** Writes issued in this tick leave together (one TLS record, one syscall). */
  private cork(): void {
    if (this.corked) return;
    this.corked = true;
    this.socket.cork();
    process.nextTick(this.uncork);
  }
  private readonly uncork = (): void => {
    this.corked = false;
    this.socket.uncork();
  };

  // ---- the upstream's answer (UpstreamExchange) ----

  head(status: number, message: string, raw: string[]): void {
    if (this.closed) return;
    const v = judgeStreamedHead(
      this.deps.response,
      this.request!,
      originFor(this.deps, this.ctx),
      { method: this.method, host: this.target!.host, accept: this.accept },
      status,
      raw,
    );
    if (!v.allowed) {
      this.handle?.abandon();
      this.dropHandle();
      this.rec!.event = v.event;
      this.rec!.decision = v.decision;
      this.respond(v.denial);
      return;
    }
    const { headers, secrets, noBody } = v;
    const scrub = v.scrubber !== null;
    this.scrubber = v.scrubber;
    const h = responseHead(status, message, raw, headers, {
      secrets,
      scrub,
      noBody,
      http11: this.minor >= 1,
    });
    this.chunked = h.chunked;
    if (h.untilClose) this.keepAlive = false;
    const s = `${h.text}${this.connectionHeader()}\r\n`;
    this.status = status;
    this.headSent = true;
    this.cork();
    this.socket.write(s, 'latin1');
  }

  body(raw: Buffer): void {
    if (this.closed) return;
    this.rec!.bytesOut += raw.length;
    const chunk = this.scrubber === null ? raw : this.scrubber.push(raw);
    if (chunk.length === 0) return;
    let ok: boolean;
    if (this.chunked) {
      this.cork();
      this.socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
      this.socket.write(chunk);
      ok = this.socket.write('\r\n', 'latin1');
    } else {
      ok = this.socket.write(chunk);
    }
    if (!ok) this.handle?.pause();
  }

  drained(): void {
    if (this.uploadPaused) {
      this.uploadPaused = false;
      this.socket.resume();
    }
  }

  /** Nothing upstream wants more of this request: the rest of its body (if any) is dropped. */
  private dropHandle(): void {
    this.handle = null;
    this.drained();
  }

  end(): void {
    this.dropHandle();
    if (this.closed) return;
    if (this.scrubber !== null) {
      const rest = this.scrubber.end();
      this.scrubber = null;
      if (rest.length > 0) {
        if (this.chunked) this.socket.write(`${rest.length.toString(16)}\r\n`, 'latin1');
        this.socket.write(rest);
        if (this.chunked) this.socket.write('\r\n', 'latin1');
      }
    }
    if (this.chunked) this.socket.write('0\r\n\r\n', 'latin1');
    this.finish();
  }

  fail(err: Error, responded: boolean): void {
    this.dropHandle();
    if (this.closed || this.rec === null) return;
    this.rec.error = 'upstream_error';
    if (responded || this.headSent) {
      // Cut short mid-response: the guest must not take a truncated body for a whole one.
      this.socket.destroy();
      return;
    }
    this.respond(
      upstreamFailure(this.deps, this.rec, this.request, this.target!, err, this.accept),
    );
  }

  /** The exchange is answered: record it, then wait for the next request or close. */
  private finish(): void {
    const rec = this.rec;
    this.rec = null;
    this.request = null;
    this.target = null;
    rec?.finish(this.status);
    if (!this.keepAlive) {
      this.phase = PHASE_IDLE;
      this.socket.end();
      return;
    }
    this.phase = PHASE_IDLE;
    this.deadline.set(this.deps.limits.keepAliveTimeoutMs);
    if (this.readPaused) {
      this.readPaused = false;
      this.socket.resume();
    }
    if (this.buf.length > 0) process.nextTick(this.next);
    else if (this.peerEnded) this.socket.end();
  }

  private readonly onDeadline = (): void => {
    if (this.closed || this.handedOver || this.phase === PHASE_BUSY) return;
    if (this.phase === PHASE_IDLE && this.buf.length === 0) {
      // A kept-alive connection nobody used: close it quietly.
      this.socket.destroy();
      return;
    }
    if (this.phase === PHASE_IDLE) {
      // Bytes of a next request arrived during the keep-alive wait: its head gets the head timeout.
      this.phase = PHASE_HEAD;
      this.deadline.set(this.deps.limits.headersTimeoutMs);
      return;
    }
    this.deps.refuse(this.ctx, 'header_timeout');
    this.socket.destroy();
  };

  private readonly onIdle = (): void => {
    this.socket.destroy();
  };

  private readonly onEnd = (): void => {
    this.peerEnded = true;
    if (this.phase !== PHASE_BUSY && this.buf.length === 0) this.socket.end();
  };

  private readonly onDrain = (): void => {
    this.handle?.resume();
  };

  private readonly onClose = (): void => {
    this.closed = true;
    this.deadline.stop();
    this.parser.close();
    this.handle?.abandon();
    this.handle = null;
    const rec = this.rec;
    this.rec = null;
    rec?.finish(this.headSent ? this.status : null);
  };
}
