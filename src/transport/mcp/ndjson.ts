/**
 * Newline-delimited JSON-RPC codec for the guest-side MCP relay (local clients speak one JSON
 * message per line, as MCP's stdio transport does). Sans-io: bytes in, complete lines or one typed
 * error out; never throws past itself. Lines are bounded like frames.
 */
import { MAX_PAYLOAD_BYTES, decodeUtf8 } from './frame.js';

/** Longest line accepted (the same bound as one frame payload, so every line fits a frame). */
export const MAX_LINE_BYTES = MAX_PAYLOAD_BYTES;

export type NdjsonErrorReason = 'oversize' | 'invalid_utf8' | 'truncated';

export interface NdjsonError {
  reason: NdjsonErrorReason;
  message: string;
}

export class NdjsonDecoder {
  private parts: Buffer[] = [];
  private size = 0;
  private failed: NdjsonError | null = null;

  constructor(private readonly maxLine: number = MAX_LINE_BYTES) {}

  /** Bytes of an unfinished line held so far. */
  get buffered(): number {
    return this.size;
  }

  get error(): NdjsonError | null {
    return this.failed;
  }

  /** Returns the complete, non-empty lines (without "\n" or a trailing "\r") in `chunk`. */
  push(chunk: Uint8Array): { lines: string[]; error: NdjsonError | null } {
    const lines: string[] = [];
    if (this.failed) return { lines, error: this.failed };
    let start = 0;
    const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    for (;;) {
      const nl = bytes.indexOf(0x0a, start);
      const end = nl === -1 ? bytes.length : nl;
      if (this.size + (end - start) > this.maxLine)
        return this.fail(
          { reason: 'oversize', message: `line exceeds ${this.maxLine} bytes` },
          lines,
        );
      if (nl === -1) {
        if (end > start) {
          this.parts.push(Buffer.from(bytes.subarray(start, end)));
          this.size += end - start;
        }
        break;
      }
      const piece = bytes.subarray(start, end);
      const line = this.parts.length === 0 ? piece : Buffer.concat([...this.parts, piece]);
      this.parts = [];
      this.size = 0;
      const text = decodeUtf8(line);
      if (text === null)
        return this.fail({ reason: 'invalid_utf8', message: 'line is not valid UTF-8' }, lines);
      const trimmed = text.endsWith('\r') ? text.slice(0, -1) : text;
      if (trimmed.trim() !== '') lines.push(trimmed);
      start = nl + 1;
    }
    return { lines, error: null };
  }

  /** Call at end of input: an unterminated last line is an error (`truncated`). */
  end(): NdjsonError | null {
    if (this.failed) return this.failed;
    if (this.size === 0) return null;
    this.failed = {
      reason: 'truncated',
      message: `input ended inside a line (${this.size} bytes without a newline)`,
    };
    return this.failed;
  }

  private fail(error: NdjsonError, lines: string[]): { lines: string[]; error: NdjsonError } {
    this.failed = error;
    this.parts = [];
    this.size = 0;
    return { lines, error };
  }
}

/** One message as one line. JSON.stringify never emits a raw newline, so the framing is safe. */
export function encodeLine(message: unknown): Buffer {
  return Buffer.from(`${JSON.stringify(message)}\n`, 'utf8');
}
