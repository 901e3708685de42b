/**
 * RFC 7766 / RFC 1035 §4.2.2 stream framing: each DNS message on a TCP or vsock stream is preceded by
 * its length as a 2-byte big-endian integer. `FrameReader` is sans-io: feed it chunks, take whole
 * messages out. It buffers at most one partial frame (≤ 65,537 bytes), so memory stays bounded however
 * the guest splits or batches its writes. No sockets, no timers; never throws.
 */

export const FRAME_HEADER_BYTES = 2;
export const MAX_FRAME_BYTES = 0xffff;

export type FrameResult = { ok: true; frames: Buffer[] } | { ok: false; reason: 'zero_length_frame' | 'frame_too_large'; frames: Buffer[] };

export class FrameReader {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly maxFrame: number = MAX_FRAME_BYTES) {}

  /** Bytes received but not yet part of a whole frame. */
  get buffered(): number {
    return this.pending.length;
  }

  /**
   * Appends a chunk and returns every complete frame it finished. A zero-length frame or one larger
   * than the bound ends the stream: the frames before it are still returned, with the reason.
   */
  push(chunk: Buffer): FrameResult {
    let buf = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const frames: Buffer[] = [];
    while (buf.length >= FRAME_HEADER_BYTES) {
      const len = buf.readUInt16BE(0);
      if (len === 0) {
        this.pending = Buffer.alloc(0);
        return { ok: false, reason: 'zero_length_frame', frames };
      }
      if (len > this.maxFrame) {
        this.pending = Buffer.alloc(0);
        return { ok: false, reason: 'frame_too_large', frames };
      }
      if (buf.length < FRAME_HEADER_BYTES + len) break;
      frames.push(Buffer.from(buf.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + len)));
      buf = buf.subarray(FRAME_HEADER_BYTES + len);
    }
    this.pending = buf.length === 0 ? Buffer.alloc(0) : Buffer.from(buf);
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
