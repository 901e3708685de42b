/** A raw frame-level guest for tests: write any bytes, read back decoded frames. */
import net from 'node:net';
import {
  FrameDecoder,
  FrameKind,
  encodeData,
  encodeOpen,
  type Frame,
} from '../../src/transport/mcp/index.js';

export class RawGuest {
  readonly frames: Frame[] = [];
  ended = false;
  private readonly decoder = new FrameDecoder();
  private waiters: (() => void)[] = [];

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (c: Buffer) => {
      this.frames.push(...this.decoder.push(c).frames);
      this.wake();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  static connect(port: number): Promise<RawGuest> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host: '127.0.0.1' }, () => resolve(new RawGuest(s)));
      s.once('error', reject);
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Waits until `pred` holds over the frames received (or the socket closed), at most `ms`. */
  async until(pred: (frames: Frame[]) => boolean, ms = 5_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred(this.frames)) {
      if (this.ended || Date.now() > deadline) return;
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
  }

  write(bytes: Buffer | string): void {
    this.socket.write(bytes);
  }

  /** JSON messages received on a stream (batches stay arrays). */
  messages(streamId = 1): any[] {
    return this.frames
      .filter((f) => f.kind === FrameKind.DATA && f.streamId === streamId)
      .map((f) => JSON.parse((f as { payload: Buffer }).payload.toString('utf8')));
  }

  closes(): { streamId: number; reason: string }[] {
    return this.frames.filter((f) => f.kind === FrameKind.CLOSE) as {
      streamId: number;
      reason: string;
    }[];
  }

  /** OPEN + initialize + initialized on `streamId`; waits for the initialize reply. */
  async init(streamId = 1): Promise<void> {
    this.write(encodeOpen(streamId, 'raw-guest'));
    this.write(
      encodeData(
        streamId,
        JSON.stringify({
          jsonrpc: '2.0',
          id: 'init',
          method: 'initialize',
          params: {
            protocolVersion: '2025-06-18',
            capabilities: {},
            clientInfo: { name: 'raw', version: '1' },
          },
        }),
      ),
    );
    await this.until(() => this.messages(streamId).some((m) => m.id === 'init'));
    this.write(
      encodeData(streamId, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' })),
    );
  }

  send(streamId: number, message: unknown): void {
    this.write(
      encodeData(streamId, typeof message === 'string' ? message : JSON.stringify(message)),
    );
  }

  close(): void {
    this.socket.destroy();
  }
}
