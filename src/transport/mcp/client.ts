/**
 * The guest side of the MCP frame protocol: `FramedConnection` multiplexes streams over one vsock
 * connection, and `FramedClientTransport` is an `@modelcontextprotocol/sdk` Transport over one
 * stream, so an SDK `Client` (tests, benches, the guest bridge's relay) talks to celgate directly.
 * It parses replies with the same sans-io codec as the gateway; it makes no policy decisions.
 */
import type { Duplex } from 'node:stream';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { CelgateError } from '../../errors.js';
import { connectVsock, type GuestMeta, type VsockEndpoint } from '../vsock.js';
import {
  FrameDecoder,
  FrameKind,
  MAX_STREAM_ID,
  decodeUtf8,
  encodeClose,
  encodeData,
  encodeFrame,
  encodeOpen,
} from './frame.js';

export class FramedConnection {
  private readonly decoder = new FrameDecoder();
  private readonly streams = new Map<number, FramedClientTransport>();
  private nextId = 1;
  private closed = false;

  constructor(readonly socket: Duplex) {
    socket.on('data', (chunk: Buffer) => this.onBytes(chunk));
    socket.on('close', () => this.shutdown(new Error('connection closed')));
    socket.on('error', (err) => this.shutdown(err));
  }

  static async connect(endpoint: VsockEndpoint, meta?: GuestMeta): Promise<FramedConnection> {
    return new FramedConnection(await connectVsock(endpoint, meta));
  }

  /** A new stream (not yet opened: the SDK calls `start()`, which sends OPEN). */
  openTransport(processName = ''): FramedClientTransport {
    if (this.closed) throw new CelgateError('E_UPSTREAM', 'the MCP connection is closed');
    if (this.nextId > MAX_STREAM_ID)
      throw new CelgateError('E_LIMIT', 'stream ids exhausted on this connection');
    const t = new FramedClientTransport(this, this.nextId++, processName);
    this.streams.set(t.streamId, t);
    return t;
  }

  /** @internal */
  write(buf: Buffer): Promise<void> {
    if (this.closed || !this.socket.writable)
      return Promise.reject(new CelgateError('E_UPSTREAM', 'the MCP connection is closed'));
    return new Promise((resolve, reject) =>
      this.socket.write(buf, (err) => (err ? reject(err) : resolve())),
    );
  }

  /** @internal */
  forget(id: number): void {
    this.streams.delete(id);
  }

  close(): void {
    this.shutdown(null);
    this.socket.end();
  }

  private onBytes(chunk: Buffer): void {
    const { frames, error } = this.decoder.push(chunk);
    for (const f of frames) {
      const t = this.streams.get(f.streamId);
      if (!t) continue;
      if (f.kind === FrameKind.DATA) t.deliver(f.payload);
      else if (f.kind === FrameKind.CLOSE) t.remoteClosed(f.reason);
    }
    if (error) {
      this.shutdown(new CelgateError('E_PARSE', `bad frame from celgate: ${error.message}`));
      this.socket.destroy();
    }
  }

  private shutdown(err: Error | null): void {
    if (this.closed) return;
    this.closed = true;
    for (const t of [...this.streams.values()])
      t.remoteClosed(err ? err.message : 'connection closed', err === null);
    this.streams.clear();
  }
}

export class FramedClientTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  /** Set when celgate closed the stream, with its reason (e.g. "json_too_deep"). */
  closeReason: string | null = null;
  private state: 'new' | 'open' | 'closed' = 'new';

  constructor(
    private readonly conn: FramedConnection,
    readonly streamId: number,
    private readonly processName: string,
  ) {}

  async start(): Promise<void> {
    if (this.state !== 'new') throw new CelgateError('E_INTERNAL', 'transport already started');
    this.state = 'open';
    await this.conn.write(encodeOpen(this.streamId, this.processName));
  }

  async send(message: JSONRPCMessage): Promise<void> {
    if (this.state !== 'open')
      throw new CelgateError(
        'E_UPSTREAM',
        `MCP stream is ${this.state}${this.closeReason ? ` (${this.closeReason})` : ''}`,
      );
    await this.conn.write(encodeData(this.streamId, JSON.stringify(message)));
  }

  /** Sends raw payload bytes on this stream (tests of hostile input). */
  sendRaw(payload: Buffer | string): Promise<void> {
    return this.conn.write(encodeFrame(FrameKind.DATA, this.streamId, payload));
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    const wasOpen = this.state === 'open';
    this.state = 'closed';
    this.conn.forget(this.streamId);
    if (wasOpen) await this.conn.write(encodeClose(this.streamId, 'client closed')).catch(() => {});
    this.onclose?.();
  }

  /** @internal a DATA frame for this stream. */
  deliver(payload: Buffer): void {
    const text = decodeUtf8(payload);
    let value: unknown;
    try {
      if (text === null) throw new Error('reply is not valid UTF-8');
      value = JSON.parse(text);
    } catch (err) {
      this.onerror?.(
        new CelgateError('E_PARSE', `bad JSON-RPC from celgate: ${(err as Error).message}`),
      );
      return;
    }
    for (const m of Array.isArray(value) ? value : [value]) this.onmessage?.(m as JSONRPCMessage);
  }

  /** @internal celgate closed this stream, or the connection went away. */
  remoteClosed(reason: string, clean = false): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.closeReason = reason;
    this.conn.forget(this.streamId);
    if (!clean)
      this.onerror?.(new CelgateError('E_UPSTREAM', `celgate closed the MCP stream: ${reason}`));
    this.onclose?.();
  }
}

/** One connection, one stream: what a single SDK Client needs. Closing the transport ends the socket. */
export async function connectFramedTransport(
  endpoint: VsockEndpoint,
  opts: { processName?: string; meta?: GuestMeta } = {},
): Promise<FramedClientTransport> {
  const conn = await FramedConnection.connect(endpoint, opts.meta);
  const t = conn.openTransport(opts.processName ?? opts.meta?.process_name ?? '');
  const close = t.close.bind(t);
  t.close = async () => {
    await close();
    conn.close();
  };
  return t;
}
