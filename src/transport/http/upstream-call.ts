/**
 * The stream face of the upstream pool for the Node path (exchange.ts) and WebSocket upgrades
 * (websocket.ts): an `UpstreamCall` is a Writable for the request body — framed by Content-Length
 * or chunked, each write waiting for the upstream socket to drain — and reports the answer as an
 * `UpstreamResponse` Readable (body chunks with backpressure on the pooled connection), a 101
 * with the raw socket, or one error: a connect, TLS or destination-guard failure, a timeout, an
 * upstream that closed or broke the response. Interim 1xx heads never reach it (the pool skips
 * them; `Expect: 100-continue` is answered to the guest by the exchange).
 *
 * Owns: request framing and stream adapters over `PoolHandle`. Must not: decide, or send anything
 * the exchange did not hand it after an `allow`.
 */
import type net from 'node:net';
import { Readable, Writable } from 'node:stream';
import { headerLines } from './llhttp.js';
import type { Upstream } from './upstream.js';
import {
  CHUNKED,
  type PoolHandle,
  type UpstreamExchange,
  type UpstreamPool,
} from './upstream-pool.js';

export interface CallOptions {
  scheme: 'http' | 'https';
  /** The host the guest asked for (SNI, the certificate name, the pool key). */
  host: string;
  port: number;
  method: string;
  /** Path and query as sent upstream. */
  path: string;
  /** `[name, value, …]` as sent, Host included; framing headers are added here. */
  headers: readonly string[];
  /** Content-Length of the body, 0 for none, `CHUNKED` for a body of unknown length. */
  bodyLength: number;
  /** Ask for a protocol switch: a connection of its own, and a 101 arrives as `onUpgrade`. */
  upgrade?: boolean;
}

/** The answer's head and body, as the response half (response.ts, mcp-relay.ts) reads it. */
export class UpstreamResponse extends Readable {
  /** The whole body arrived. */
  complete = false;
  constructor(
    readonly statusCode: number,
    readonly statusMessage: string,
    readonly rawHeaders: string[],
    private readonly call: UpstreamCall,
  ) {
    super();
  }
  override _read(): void {
    this.call.handle?.resume();
  }
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.complete) {
      this.emit('aborted');
      this.call.abandon();
    }
    // As IncomingMessage: an error is passed on only to a listener that asked for it.
    cb(this.listenerCount('error') > 0 ? err : null);
  }
}

export interface CallEvents {
  response(res: UpstreamResponse): void;
  /** A 101 to a call with `upgrade`: the socket is the caller's; `rest` followed the head. */
  upgrade?(res: UpstreamResponse, socket: net.Socket, rest: Buffer): void;
}

/**
 * One request on the pool. Write the body and `end()` it (or `end()` at once for none); the answer
 * comes to `events`, a failure before it as the stream's 'error' (a failure after it destroys the
 * response). `destroy()` gives the request up and closes its connection.
 */
export class UpstreamCall extends Writable {
  handle: PoolHandle | null = null;
  private res: UpstreamResponse | null = null;
  private pending: (() => void) | null = null;
  /** The exchange is over (answered and ended, failed or upgraded): the handle is not ours any more. */
  private settled = false;
  private readonly chunked: boolean;

  constructor(
    upstream: Upstream,
    pool: UpstreamPool,
    private readonly o: CallOptions,
    private readonly events: CallEvents,
  ) {
    // Not destroyed when the body is finished: destroying gives the request up.
    super({ decodeStrings: true, autoDestroy: false });
    this.chunked = o.bodyLength === CHUNKED;
    const refused = upstream.destination(o.host, o.port).refused;
    if (refused !== undefined) {
      // Nothing is connected to a destination the guard refuses; the call fails with the refusal.
      this.settled = true;
      process.nextTick(() => this.destroy(refused));
      return;
    }
    const framing = this.chunked ? 'Transfer-Encoding: chunked\r\n' : '';
    const connection = o.upgrade === true ? '' : 'Connection: keep-alive\r\n';
    const head = `${o.method} ${o.path} HTTP/1.1\r\n${headerLines(o.headers)}${framing}${connection}\r\n`;
    this.handle = pool.request(
      {
        scheme: o.scheme,
        host: o.host,
        port: o.port,
        method: o.method,
        head,
        bodyLength: o.bodyLength,
        ...(o.upgrade === true ? { upgrade: true } : {}),
      },
      {
        head: (s, m, r) => this.onHead(s, m, r),
        body: (c) => this.onBody(c),
        end: () => this.onEnd(),
        drained: () => this.release(),
        fail: (e, r) => this.onFail(e, r),
        upgraded: (s, m, r, sock, rest) => this.onUpgraded(s, m, r, sock, rest),
      } satisfies UpstreamExchange,
    );
    if (o.bodyLength === 0) this.handle.endRequest();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const h = this.handle;
    if (h === null || this.settled || chunk.length === 0) {
      cb();
      return;
    }
    let ok: boolean;
    if (this.chunked) {
      h.write(`${chunk.length.toString(16)}\r\n`);
      h.write(chunk);
      ok = h.write('\r\n');
    } else ok = h.write(chunk);
    if (ok) cb();
    else this.pending = () => cb();
  }

  override _final(cb: (err?: Error | null) => void): void {
    const h = this.handle;
    if (h !== null && !this.settled && this.o.bodyLength !== 0) {
      if (this.chunked) h.write('0\r\n\r\n');
      h.endRequest();
    }
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.abandon();
    this.release();
    cb(err);
  }

  /** Gives the request up: its connection closes (unless the exchange is already over). */
  abandon(): void {
    if (this.settled) return;
    this.settled = true;
    this.handle?.abandon();
  }

  private release(): void {
    const p = this.pending;
    this.pending = null;
    p?.();
  }

  // ---- the pool's callbacks (UpstreamExchange) ----

  private onHead(status: number, message: string, rawHeaders: string[]): void {
    const res = new UpstreamResponse(status, message, rawHeaders, this);
    this.res = res;
    this.events.response(res);
  }

  private onBody(chunk: Buffer): void {
    const res = this.res;
    if (res === null || res.destroyed) return;
    if (!res.push(chunk)) this.handle?.pause();
  }

  private onEnd(): void {
    this.settled = true;
    const res = this.res;
    if (res === null) return;
    res.complete = true;
    res.push(null);
  }

  private onFail(err: Error, responded: boolean): void {
    if (this.settled) return;
    this.settled = true;
    this.release();
    if (responded && this.res !== null) {
      this.res.destroy(err);
      if (!this.destroyed) this.destroy();
    } else this.destroy(err);
  }

  private onUpgraded(
    status: number,
    message: string,
    raw: string[],
    socket: net.Socket,
    rest: Buffer,
  ): void {
    this.settled = true;
    const res = new UpstreamResponse(status, message, raw, this);
    res.complete = true;
    res.push(null);
    if (this.events.upgrade === undefined) {
      socket.destroy();
      this.destroy(new Error(`upstream ${this.o.host} switched protocols unasked`));
      return;
    }
    this.events.upgrade(res, socket, rest);
  }
}
