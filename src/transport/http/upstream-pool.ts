/**
 * celgate's one upstream HTTP/1.1 client (docs/http.md "One upstream client"), used by the direct
 * path (direct.ts), HTTP/2 streams (h2.ts) and, through the stream API of upstream-call.ts, the
 * Node path and WebSocket upgrades. A request head goes out as one write, the body follows through
 * `PoolHandle.write` (the caller frames it), the response is parsed by llhttp (the parser Node's
 * client uses; the fallback parser of response-parser.ts when llhttp is unavailable) and handed to
 * the exchange by callbacks: `head` for the final response head (interim 1xx heads are skipped, as
 * Node's client does without an 'information' listener), `body` per chunk, `end` at the end of the
 * message, `fail` on any error, `upgraded` for a 101 to a request that asked for it. Connections
 * are reused LIFO per (scheme, host, port) the guest asked for; where they connect and how TLS is
 * verified comes from `Upstream.connect` (the map, the destination guard, the system roots plus
 * extra CAs, the certificate checked against the host the guest asked for). Kept as celgate's own
 * client over undici and https.Agent by bench/upstream-client.ts.
 *
 * Owns: upstream connections and their parsers. Must not: decide, or send anything not allowed —
 * it only sends what the exchange hands it after the decision.
 */
import type net from 'node:net';
import { CelgateError } from '../../errors.js';
import {
  HTTPParser,
  isParseError,
  LLHTTP,
  newParser,
  type HTTPParser as Parser,
  type OnHeadersComplete,
} from './llhttp.js';
import { fallbackResponseParser } from './response-parser.js';
import type { Upstream } from './upstream.js';

/** Idle kept-alive connections kept per (scheme, host, port). */
export const MAX_IDLE_PER_ORIGIN = 64;
/** An idle upstream connection is closed after this long (servers close theirs too; a stale one
 * costs a retry). */
export const UPSTREAM_IDLE_MS = 30_000;
/** How often idle connections past their limit are closed. */
export const SWEEP_MS = 1000;
/** Largest upstream response head (Node's default `maxHeaderSize`). */
export const MAX_RESPONSE_HEAD_BYTES = 16 * 1024;

/** What the pool tells the exchange. Called at most: head once, body n times, then end or fail once. */
export interface UpstreamExchange {
  head(status: number, message: string, rawHeaders: string[]): void;
  body(chunk: Buffer): void;
  end(): void;
  /** The upstream took the request body bytes written so far (after a `write` returned false). */
  drained(): void;
  /** `responded`: head() was already called (the response is cut short). */
  fail(err: Error, responded: boolean): void;
  /**
   * A `101 Switching Protocols` to a request sent with `upgrade`: the connection leaves the pool
   * and `socket` (paused, no listeners of the pool's left) is the caller's, with `rest` the bytes
   * that followed the head. Without this callback a 101 is an error.
   */
  upgraded?(
    status: number,
    message: string,
    rawHeaders: string[],
    socket: net.Socket,
    rest: Buffer,
  ): void;
}

export interface PoolRequest {
  scheme: 'http' | 'https';
  /** The host the guest asked for: the pool key, the SNI and the name its certificate must carry. */
  host: string;
  port: number;
  method: string;
  /** The serialised request head (request line, headers, blank line), latin1. */
  head: string;
  /**
   * Request body bytes that follow the head, written with `PoolHandle.write`: its Content-Length,
   * 0 for none, or `CHUNKED` for a chunked body (the caller writes the chunk framing).
   */
  bodyLength: number;
  /** An upgrade request: a connection of its own, never reused after (whatever the answer). */
  upgrade?: boolean;
}

/** `PoolRequest.bodyLength` of a body of unknown length, sent with chunked framing. */
export const CHUNKED = -1;

/**
 * A server that announces `Keep-Alive: timeout=N` closes idle connections after N s; like Node's
 * agent, stop reusing one a second before that so a request is not sent into the server's close.
 */
function idleLimitFrom(raw: readonly string[]): number {
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]!.length !== 10 || raw[i]!.toLowerCase() !== 'keep-alive') continue;
    const m = /(?:^|[\s,])timeout=(\d+)/i.exec(raw[i + 1]!);
    if (m !== null) return Math.min(UPSTREAM_IDLE_MS, Number(m[1]) * 1000 - 1000);
  }
  return UPSTREAM_IDLE_MS;
}

/** Methods that may be sent again on a fresh connection when a reused one died before answering. */
const RETRYABLE = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

class Connection {
  readonly parser: Parser;
  ex: UpstreamExchange | null = null;
  handle: PoolHandle | null = null;
  responded = false;
  /** 1xx head seen; its message-complete is not the response's end. */
  interim = false;
  finished = false;
  keepAlive = false;
  /** Answered at least one request before (a failure before any answer may be a stale socket). */
  used = false;
  /** The whole request (head and body) has been written; only then can the connection be reused. */
  requestSent = false;
  idleSince = 0;
  /** How long this connection may sit idle: ours, or less when the server's `Keep-Alive: timeout=N` says so. */
  idleLimit = UPSTREAM_IDLE_MS;
  timer: NodeJS.Timeout | null = null;
  error: Error | null = null;
  private extraHeaders: string[] | null = null;
  private upgradedHead: { status: number; message: string; raw: string[] } | null = null;
  paused = false;

  constructor(
    readonly pool: UpstreamPool,
    readonly key: string,
    readonly socket: net.Socket,
    readonly label: string,
  ) {
    const p = LLHTTP.ok
      ? newParser(HTTPParser.RESPONSE, MAX_RESPONSE_HEAD_BYTES)
      : fallbackResponseParser(MAX_RESPONSE_HEAD_BYTES);
    this.parser = p;
    p[HTTPParser.kOnHeaders] = (h: string[]) => {
      (this.extraHeaders ??= []).push(...h);
    };
    p[HTTPParser.kOnHeadersComplete] = ((
      _maj,
      _min,
      headers,
      _m,
      _u,
      status,
      message,
      upgrade,
      keepAlive,
    ) => {
      let raw = headers ?? [];
      if (this.extraHeaders !== null) {
        raw = this.extraHeaders.concat(raw);
        this.extraHeaders = null;
      }
      const code = status ?? 0;
      if (code >= 100 && code < 200 && code !== 101) {
        this.interim = true;
        return 1;
      }
      const ex = this.ex;
      if (
        code === 101 &&
        ex?.upgraded !== undefined &&
        this.handle?.request.upgrade === true &&
        !this.responded
      ) {
        // Handed over in onData, once the parser has said where the head ended.
        this.responded = true;
        this.upgradedHead = { status: code, message: message ?? '', raw };
        this.clearTimer();
        return 2;
      }
      if (ex === null || this.responded || upgrade || code === 101) {
        // An answer nobody asked for (or a protocol switch we never requested): the connection is unusable.
        this.kill(
          new CelgateError('E_UPSTREAM', `upstream ${this.label} sent an unexpected response`),
        );
        return 1;
      }
      this.responded = true;
      this.keepAlive = keepAlive;
      this.idleLimit = idleLimitFrom(raw);
      this.clearTimer();
      ex.head(code, message ?? '', raw);
      return this.handle?.request.method === 'HEAD' ? 1 : 0;
    }) satisfies OnHeadersComplete;
    p[HTTPParser.kOnBody] = (b: Buffer) => this.ex?.body(b);
    p[HTTPParser.kOnMessageComplete] = () => {
      // Trailers of a chunked body arrive as headers; they are not passed on (neither were they by
      // Node's client path) and must not leak into the next response's head.
      this.extraHeaders = null;
      if (this.upgradedHead !== null) return;
      if (this.interim) {
        this.interim = false;
        return;
      }
      const ex = this.ex;
      if (ex === null) return;
      this.ex = null;
      this.finished = true;
      ex.end();
    };
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
    socket.on('drain', this.onDrain);
  }

  send(handle: PoolHandle, ex: UpstreamExchange): void {
    const r = handle.request;
    this.ex = ex;
    this.handle = handle;
    this.responded = false;
    this.finished = false;
    this.requestSent = r.bodyLength === 0;
    this.timer = setTimeout(this.onTimeout, this.pool.timeoutMs);
    this.socket.write(r.head, 'latin1');
  }

  /** Request body bytes; false when the caller should wait for `drained`. */
  write(chunk: Buffer | string): boolean {
    return this.socket.write(chunk, 'latin1');
  }

  /** Backpressure from the guest. */
  pause(): void {
    if (!this.paused) {
      this.paused = true;
      this.socket.pause();
    }
  }
  resume(): void {
    if (this.paused) {
      this.paused = false;
      this.socket.resume();
    }
  }

  /** Drops the exchange without telling it (the guest went away) and closes the connection. */
  abandon(): void {
    this.ex = null;
    this.kill(null);
  }

  kill(err: Error | null): void {
    this.clearTimer();
    if (err !== null) this.error ??= err;
    this.socket.destroy();
  }

  private clearTimer(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private readonly onDrain = (): void => this.ex?.drained();

  /** A 101 the request asked for: the socket leaves the pool and goes to the exchange. */
  private handOver(rest: Buffer): void {
    const { status, message, raw } = this.upgradedHead!;
    const ex = this.ex!;
    this.ex = null;
    const s = this.socket;
    s.pause();
    s.removeListener('data', this.onData);
    s.removeListener('end', this.onEnd);
    s.removeListener('error', this.onError);
    s.removeListener('close', this.onClose);
    s.removeListener('drain', this.onDrain);
    this.parser.close();
    ex.upgraded!(status, message, raw, s, rest);
  }

  private readonly onTimeout = (): void => {
    this.timer = null;
    this.kill(
      new CelgateError(
        'E_TIMEOUT',
        `upstream ${this.label} did not answer within ${this.pool.timeoutMs} ms`,
      ),
    );
  };

  private readonly onData = (chunk: Buffer): void => {
    let r: ReturnType<Parser['execute']>;
    try {
      r = this.parser.execute(chunk);
    } catch (err) {
      // The exchange's callback threw (a bug): this connection ends, the process goes on.
      this.kill(
        new CelgateError(
          'E_INTERNAL',
          `relaying the response from ${this.label} failed: ${(err as Error).message}`,
        ),
      );
      return;
    }
    if (this.upgradedHead !== null && !isParseError(r)) {
      this.handOver(chunk.subarray(r));
      return;
    }
    if (isParseError(r)) {
      this.kill(
        new CelgateError(
          'E_UPSTREAM',
          `upstream ${this.label} sent a malformed response (${r.code})`,
        ),
      );
      return;
    }
    if (this.finished && this.ex === null) {
      this.finished = false;
      this.used = true;
      this.pool.release(this);
    }
  };

  private readonly onEnd = (): void => {
    // A body delimited by the connection's end completes here; anything else is cut short.
    if (this.ex !== null) {
      const r = this.parser.finish();
      if (isParseError(r))
        this.error ??= new CelgateError(
          'E_UPSTREAM',
          `upstream ${this.label} closed mid-response (${r.code})`,
        );
    }
    this.socket.destroy();
  };

  private readonly onError = (err: Error): void => {
    this.error ??= err;
  };

  private readonly onClose = (): void => {
    this.clearTimer();
    this.pool.forget(this);
    this.parser.close();
    const ex = this.ex;
    if (ex === null) return;
    this.ex = null;
    const err =
      this.error ??
      new CelgateError(
        'E_UPSTREAM',
        `upstream ${this.label} closed the connection before answering`,
      );
    // Only a request with no body can be sent again: a body's bytes are not kept.
    const bodiless = this.handle?.request.bodyLength === 0;
    if (
      !this.responded &&
      this.used &&
      bodiless &&
      RETRYABLE.has(this.handle?.request.method ?? '') &&
      (err as CelgateError).code !== 'E_TIMEOUT'
    ) {
      // A kept-alive connection the server had already closed: send the request once more on a new one.
      if (this.handle !== null && this.pool.retry(this.handle, ex)) return;
    }
    ex.fail(err, this.responded);
  };
}

/** One request's hold on its connection (a retry moves it to a new one): backpressure and giving up. */
export class PoolHandle {
  constructor(
    public conn: Connection,
    readonly request: PoolRequest,
  ) {}
  pause(): void {
    this.conn.pause();
  }
  resume(): void {
    this.conn.resume();
  }
  /** The guest went away: drop the exchange without telling it and close the connection. */
  abandon(): void {
    this.conn.abandon();
  }
  /** Request body bytes, framed by the caller (Content-Length or chunked); false: wait for `drained`. */
  write(chunk: Buffer | string): boolean {
    return this.conn.write(chunk);
  }
  /** The whole body has been written. */
  endRequest(): void {
    this.conn.requestSent = true;
  }
}

export class UpstreamPool {
  private readonly idle = new Map<string, Connection[]>();
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly upstream: Upstream) {
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweeper.unref();
  }

  get timeoutMs(): number {
    return this.upstream.timeoutMs;
  }

  /**
   * Sends `r` on an idle connection to its origin, or a new one. The caller has checked the
   * destination (`Upstream.destination`) and must not call this for a refused one.
   */
  request(r: PoolRequest, ex: UpstreamExchange): PoolHandle {
    const key = `${r.scheme}://${r.host}:${r.port}`;
    const list = this.idle.get(key);
    let c: Connection | undefined;
    const now = performance.now();
    while (r.upgrade !== true && list !== undefined && (c = list.pop()) !== undefined) {
      if (!c.socket.destroyed && now - c.idleSince < c.idleLimit) break;
      c.kill(null);
      c = undefined;
    }
    // An upgrade request gets a connection of its own.
    if (r.upgrade === true) c = undefined;
    c ??= this.connect(key, r);
    const handle = new PoolHandle(c, r);
    c.send(handle, ex);
    return handle;
  }

  /** After a finished exchange: keep the connection for the next request, or close it. */
  release(c: Connection): void {
    c.resume();
    // A connection that answered before the request body was all sent is out of step: close it.
    if (
      this.closed ||
      !c.keepAlive ||
      !c.requestSent ||
      c.socket.destroyed ||
      c.idleLimit <= 0 ||
      c.handle?.request.upgrade === true
    ) {
      c.kill(null);
      return;
    }
    let list = this.idle.get(c.key);
    if (list === undefined) this.idle.set(c.key, (list = []));
    if (list.length >= MAX_IDLE_PER_ORIGIN) {
      c.kill(null);
      return;
    }
    c.idleSince = performance.now();
    list.push(c);
  }

  /** A connection that closed: it is no longer idle. */
  forget(c: Connection): void {
    const list = this.idle.get(c.key);
    if (list === undefined) return;
    const i = list.indexOf(c);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.idle.delete(c.key);
  }

  /** Re-sends a failed request on a new connection; false when it cannot be. */
  retry(handle: PoolHandle, ex: UpstreamExchange): boolean {
    if (this.closed) return false;
    const fresh = this.connect(handle.conn.key, handle.request);
    handle.conn = fresh;
    fresh.send(handle, ex);
    return true;
  }

  close(): void {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const list of this.idle.values()) for (const c of list) c.kill(null);
    this.idle.clear();
  }

  private connect(key: string, r: PoolRequest): Connection {
    return new Connection(
      this,
      key,
      this.upstream.connect(r.scheme, r.host, r.port),
      `${r.host}:${r.port}`,
    );
  }

  /** Closes idle connections past their limit (they leave the lists when their sockets close). */
  private sweep(): void {
    const now = performance.now();
    for (const list of this.idle.values()) {
      for (const c of list) if (now - c.idleSince >= c.idleLimit) c.kill(null);
    }
  }
}
