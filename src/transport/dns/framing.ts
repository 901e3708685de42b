/**
 * RFC 7766 / RFC 1035 §4.2.2 stream framing: each DNS message on a TCP or vsock stream is preceded by
 * its length as a 2-byte big-endian integer. `FrameReader` is sans-io: feed it chunks, take whole
 * messages out. It buffers at most one partial frame (≤ 65,537 bytes), so memory stays bounded however
 * the guest splits or batches its writes. No sockets, no timers; never throws.
 */

export const FRAME_HEADER_BYTES = 2;
export const MAX_FRAME_BYTES = 0xffff;

export type FrameResult =
  | { ok: true; frames: Buffer[] }
  | { ok: false; reason: 'zero_length_frame' | 'frame_too_large'; frames: Buffer[] };

export class FrameReader {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly maxFrame: number = MAX_FRAME_BYTES) {}

  /** Bytes received but not yet taken out as frames. */
  get buffered(): number {
    return this.pending.length;
  }

  /** True while a frame has started but its bytes have not all arrived. */
  get midFrame(): boolean {
    const n = this.pending.length;
    return (
      n > 0 && (n < FRAME_HEADER_BYTES || n < FRAME_HEADER_BYTES + this.pending.readUInt16BE(0))
    );
  }

  /** Appends a chunk without taking frames out; pair with `next()` to consume at your own pace. */
  append(chunk: Buffer): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
  }

  /** The next complete frame, null when more bytes are needed, or the reason the stream is bad. */
  next(): Buffer | null | { error: 'zero_length_frame' | 'frame_too_large' } {
    if (this.pending.length < FRAME_HEADER_BYTES) return null;
    const len = this.pending.readUInt16BE(0);
    if (len === 0 || len > this.maxFrame) {
      this.pending = Buffer.alloc(0);
      return { error: len === 0 ? 'zero_length_frame' : 'frame_too_large' };
    }
    if (this.pending.length < FRAME_HEADER_BYTES + len) return null;
    const out = Buffer.from(this.pending.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + len));
    const rest = this.pending.subarray(FRAME_HEADER_BYTES + len);
    this.pending = rest.length === 0 ? Buffer.alloc(0) : rest;
    return out;
  }

  /**
   * Appends a chunk and returns every complete frame it finished. A zero-length frame or one larger
   * than the bound ends the stream: the frames before it are still returned, with the reason.
   */
  push(chunk: Buffer): FrameResult {
    this.append(chunk);
    const frames: Buffer[] = [];
    for (;;) {
      const f = this.next();
      if (f === null) break;
      if (!Buffer.isBuffer(f)) return { ok: false, reason: f.error, frames };
      frames.push(f);
    }
    // Copy a small remainder so a large chunk is not kept alive by a subarray.
    if (this.pending.length > 0) this.pending = Buffer.from(this.pending);
    return { ok: true, frames };
  }
}

/** Prefixes a message with its 2-byte length. */
export function frame(message: Buffer): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + message.length);
  out.writeUInt16BE(message.length, 0);
  message.copy(out, FRAME_HEADER_BYTES);
  return out;
}
