/**
 * The MCP frame codec of vsock port 5003 (format: docs/mcp.md). Sans-io: bytes in, frames or one
 * typed error out. No sockets, no clock, no logging; it never throws past its own functions.
 *
 * Frame layout (big-endian):
 *   0  4  magic "CGMF"
 *   4  1  version (1)
 *   5  1  kind: 1 OPEN, 2 DATA, 3 CLOSE
 *   6  4  stream id (1 … 2^31-1; 0 is reserved)
 *  10  4  payload length (≤ MAX_FRAME_BYTES - HEADER_BYTES)
 *  14  …  payload (UTF-8)
 */
import { CelgateError } from '../../errors.js';

export const FRAME_MAGIC = Buffer.from('CGMF', 'latin1');
export const FRAME_VERSION = 1;
export const HEADER_BYTES = 14;
/** Whole frame, header included. */
export const MAX_FRAME_BYTES = 1024 * 1024;
export const MAX_PAYLOAD_BYTES = MAX_FRAME_BYTES - HEADER_BYTES;
export const MAX_STREAM_ID = 0x7fffffff;
/** OPEN payload: the guest process name. */
export const MAX_PROCESS_NAME_BYTES = 256;
/** CLOSE payload: a short reason. */
export const MAX_CLOSE_REASON_BYTES = 1024;

export const FrameKind = { OPEN: 1, DATA: 2, CLOSE: 3 } as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

export type Frame =
  | { kind: typeof FrameKind.OPEN; streamId: number; processName: string }
  | { kind: typeof FrameKind.DATA; streamId: number; payload: Buffer }
  | { kind: typeof FrameKind.CLOSE; streamId: number; reason: string };

/** Why a byte stream stopped being a valid frame sequence. All of these end the connection:
 * once the header cannot be trusted there is no way to find the next frame. */
export type FrameErrorReason =
  | 'bad_magic'
  | 'bad_version'
  | 'bad_kind'
  | 'bad_stream_id'
  | 'oversize'
  | 'truncated'
  | 'invalid_utf8'
  | 'bad_process_name'
  | 'bad_close_reason';

export interface FrameError {
  reason: FrameErrorReason;
  message: string;
  /** The stream the bad frame named, when the header got that far. */
  streamId: number | null;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Strict UTF-8 decode; null when the bytes are not valid UTF-8. */
export function decodeUtf8(bytes: Uint8Array): string | null {
  try {
    return utf8.decode(bytes);
  } catch {
    return null;
  }
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
// eslint-disable-next-line no-control-regex
const CONTROL_ALL = /[\u0000-\u001f\u007f]/g;

/**
 * Incremental decoder. `push(chunk)` returns every complete frame the bytes so far contain, and at
 * most one error; after an error the decoder is dead (every later push returns the same error).
 * `end()` reports a frame cut off by the end of the stream.
 */
export class FrameDecoder {
  private buf: Buffer = Buffer.alloc(0);
  /** Chunks of a frame whose header is known, held unjoined until the whole frame is here, so a
   * 1 MiB frame in 64 KiB chunks is copied once, not once per chunk. */
  private tail: Buffer[] = [];
  private tailSize = 0;
  /** Size of the frame at the start of `buf` once its header is known, else 0. */
  private need = 0;
  private failed: FrameError | null = null;

  get error(): FrameError | null {
    return this.failed;
  }

  /** Bytes held waiting for the rest of a frame. */
  get buffered(): number {
    return this.buf.length + this.tailSize;
  }

  push(chunk: Uint8Array): { frames: Frame[]; error: FrameError | null } {
    const frames: Frame[] = [];
    if (this.failed) return { frames, error: this.failed };
    const bytes = Buffer.from(chunk); // a copy: callers may reuse their buffers
    if (this.need > 0) {
      this.tail.push(bytes);
      this.tailSize += bytes.length;
      if (this.buf.length + this.tailSize < this.need) return { frames, error: null };
      this.buf = Buffer.concat([this.buf, ...this.tail]);
      this.tail = [];
      this.tailSize = 0;
    } else {
      this.buf = this.buf.length === 0 ? bytes : Buffer.concat([this.buf, bytes]);
    }
    this.need = 0;
    let off = 0;
    while (off < this.buf.length) {
      const rest = this.buf.subarray(off);
      const header = checkHeader(rest);
      if (header === 'need_more') break;
      if (!('kind' in header)) return this.fail(header, frames);
      if (rest.length < HEADER_BYTES + header.length) {
        this.need = HEADER_BYTES + header.length;
        break;
      }
      const payload = rest.subarray(HEADER_BYTES, HEADER_BYTES + header.length);
      const frame = buildFrame(header.kind, header.streamId, payload);
      if (!('kind' in frame)) return this.fail(frame, frames);
      frames.push(frame);
      off += HEADER_BYTES + header.length;
    }
    if (off > 0)
      this.buf = off === this.buf.length ? Buffer.alloc(0) : Buffer.from(this.buf.subarray(off));
    return { frames, error: null };
  }

  /** Call when the byte stream ends: a partial frame is reported as `truncated`. */
  end(): FrameError | null {
    if (this.failed) return this.failed;
    const held = this.buffered;
    if (held === 0) return null;
    const streamId = this.buf.length >= 10 ? this.buf.readUInt32BE(6) : null;
    this.failed = {
      reason: 'truncated',
      message: `stream ended inside a frame (${held} bytes of an incomplete frame)`,
      streamId,
    };
    this.buf = Buffer.alloc(0);
    this.tail = [];
    this.tailSize = 0;
    return this.failed;
  }

  private fail(error: FrameError, frames: Frame[]): { frames: Frame[]; error: FrameError } {
    this.failed = error;
    this.tail = [];
    this.tailSize = 0;
    this.buf = Buffer.alloc(0);
    return { frames, error };
  }
}

type Header = { kind: FrameKind; streamId: number; length: number };

/** Validates as much of a header as `bytes` holds; magic is checked byte by byte as it arrives. */
function checkHeader(bytes: Buffer): Header | FrameError | 'need_more' {
  const magicBytes = Math.min(bytes.length, 4);
  for (let i = 0; i < magicBytes; i++) {
    if (bytes[i] !== FRAME_MAGIC[i])
      return { reason: 'bad_magic', message: 'frame does not start with "CGMF"', streamId: null };
  }
  if (bytes.length < 5) return 'need_more';
  if (bytes[4] !== FRAME_VERSION) {
    return {
      reason: 'bad_version',
      message: `unsupported frame version ${bytes[4]} (this gateway speaks ${FRAME_VERSION})`,
      streamId: null,
    };
  }
  if (bytes.length < HEADER_BYTES) return 'need_more';
  const kind = bytes[5]!;
  const streamId = bytes.readUInt32BE(6);
  const length = bytes.readUInt32BE(10);
  if (kind !== FrameKind.OPEN && kind !== FrameKind.DATA && kind !== FrameKind.CLOSE) {
    return { reason: 'bad_kind', message: `unknown frame kind ${kind}`, streamId };
  }
  if (streamId === 0 || streamId > MAX_STREAM_ID) {
    return {
      reason: 'bad_stream_id',
      message: `stream id ${streamId} is outside 1…${MAX_STREAM_ID}`,
      streamId: null,
    };
  }
  if (length > MAX_PAYLOAD_BYTES) {
    return {
      reason: 'oversize',
      message: `frame payload of ${length} bytes exceeds the ${MAX_PAYLOAD_BYTES}-byte limit`,
      streamId,
    };
  }
  return { kind: kind as FrameKind, streamId, length };
}

function buildFrame(kind: FrameKind, streamId: number, payload: Buffer): Frame | FrameError {
  if (kind === FrameKind.DATA) return { kind, streamId, payload: Buffer.from(payload) };
  const limit = kind === FrameKind.OPEN ? MAX_PROCESS_NAME_BYTES : MAX_CLOSE_REASON_BYTES;
  const reason = kind === FrameKind.OPEN ? 'bad_process_name' : 'bad_close_reason';
  if (payload.length > limit) {
    return {
      reason,
      message: `${kind === FrameKind.OPEN ? 'process name' : 'close reason'} exceeds ${limit} bytes`,
      streamId,
    };
  }
  const text = decodeUtf8(payload);
  if (text === null)
    return { reason: 'invalid_utf8', message: 'OPEN/CLOSE payload is not valid UTF-8', streamId };
  if (kind === FrameKind.OPEN) {
    if (CONTROL.test(text))
      return { reason, message: 'process name contains control characters', streamId };
    return { kind, streamId, processName: text };
  }
  return { kind, streamId, reason: text };
}

/** Encodes one frame. Throws CelgateError E_LIMIT for a payload over the bound (a caller bug). */
export function encodeFrame(
  kind: FrameKind,
  streamId: number,
  payload: Buffer | string = '',
): Buffer {
  const length = typeof payload === 'string' ? Buffer.byteLength(payload, 'utf8') : payload.length;
  if (length > MAX_PAYLOAD_BYTES) {
    throw new CelgateError(
      'E_LIMIT',
      `frame payload of ${length} bytes exceeds ${MAX_PAYLOAD_BYTES}`,
    );
  }
  if (!Number.isInteger(streamId) || streamId < 1 || streamId > MAX_STREAM_ID) {
    throw new CelgateError('E_LIMIT', `stream id ${streamId} is outside 1…${MAX_STREAM_ID}`);
  }
  const out = Buffer.allocUnsafe(HEADER_BYTES + length);
  FRAME_MAGIC.copy(out, 0);
  out[4] = FRAME_VERSION;
  out[5] = kind;
  out.writeUInt32BE(streamId, 6);
  out.writeUInt32BE(length, 10);
  // Strings are written straight into the frame: no intermediate Buffer per message.
  if (typeof payload === 'string') out.write(payload, HEADER_BYTES, 'utf8');
  else payload.copy(out, HEADER_BYTES);
  return out;
}

export const encodeData = (streamId: number, json: string): Buffer =>
  encodeFrame(FrameKind.DATA, streamId, json);
export const encodeOpen = (streamId: number, processName: string): Buffer =>
  encodeFrame(
    FrameKind.OPEN,
    streamId,
    truncateUtf8(processName.replace(CONTROL_ALL, '?'), MAX_PROCESS_NAME_BYTES),
  );
export const encodeClose = (streamId: number, reason: string): Buffer =>
  encodeFrame(FrameKind.CLOSE, streamId, truncateUtf8(reason, MAX_CLOSE_REASON_BYTES));

/** Cuts a string to at most `max` UTF-8 bytes without splitting a character. */
export function truncateUtf8(text: string, max: number): string {
  if (Buffer.byteLength(text) <= max) return text;
  let out = Buffer.from(text).subarray(0, max).toString('utf8');
  while (Buffer.byteLength(out) > max || out.endsWith('\ufffd')) out = out.slice(0, -1);
  return out;
}
