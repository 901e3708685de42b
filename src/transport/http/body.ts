/**
 * Request-body handling for rules that read `body`: read a bounded prefix of a stream (pausing it at
 * the limit so the rest can still be streamed upstream), and decode gzip / deflate / br for rules
 * only — the bytes forwarded are never altered.
 *
 * Owns: bounded buffering and decoding. Must not: decide, write to sockets, or buffer past its limit.
 */
import type { Readable } from 'node:stream';
import zlib from 'node:zlib';
import { CelgateError } from '../../errors.js';
import type { BodyFacts } from '../../events/index.js';

export interface BodyPrefix {
  chunks: Buffer[];
  bytes: number;
  /** True when the stream ended within the limit (all of the body is in `chunks`). */
  complete: boolean;
}

/**
 * Reads from `stream` until it ends or at least `limit` bytes arrived; then pauses it and leaves the
 * rest unread. Rejects with E_PARSE when the stream errors or is aborted.
 */
export function readBodyPrefix(stream: Readable, limit: number): Promise<BodyPrefix> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    const done = (complete: boolean) => {
      cleanup();
      stream.pause();
      resolve({ chunks, bytes, complete });
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      bytes += chunk.length;
      if (bytes >= limit) done(false);
    };
    const onEnd = () => done(true);
    const onError = (cause: unknown) => {
      cleanup();
      reject(new CelgateError('E_PARSE', 'request body failed while buffering', { cause }));
    };
    const onClose = () => {
      if (!stream.readableEnded) onError(new Error('client closed the connection'));
    };
    const cleanup = () => {
      stream.removeListener('data', onData);
      stream.removeListener('end', onEnd);
      stream.removeListener('error', onError);
      stream.removeListener('close', onClose);
    };
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
    stream.on('close', onClose);
    stream.resume();
  });
}

function decoderFor(
  encoding: string,
): (() => zlib.Gunzip | zlib.Inflate | zlib.BrotliDecompress) | null {
  const flush = { finishFlush: zlib.constants.Z_SYNC_FLUSH };
  switch (encoding) {
    case 'gzip':
    case 'x-gzip':
      return () => zlib.createGunzip(flush);
    case 'deflate':
      return () => zlib.createInflate(flush);
    case 'br':
      return () =>
        zlib.createBrotliDecompress({ finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH });
    default:
      return null;
  }
}

/** Decompresses at most `limit` output bytes; stops early (no bomb can grow past the limit). */
function inflatePrefix(
  raw: Buffer,
  make: () => NodeJS.ReadWriteStream & { destroy(): void },
  limit: number,
): Promise<{ out: Buffer; cut: boolean }> {
  return new Promise((resolve, reject) => {
    const z = make();
    const out: Buffer[] = [];
    let n = 0;
    let settled = false;
    const finish = (cut: boolean) => {
      if (settled) return;
      settled = true;
      z.destroy();
      resolve({ out: Buffer.concat(out).subarray(0, limit), cut });
    };
    z.on('data', (d: Buffer) => {
      out.push(d);
      n += d.length;
      if (n > limit) finish(true);
    });
    z.on('end', () => finish(false));
    z.on('error', (err) => {
      if (settled) return;
      settled = true;
      reject(err);
    });
    z.end(raw);
  });
}

export interface BodyFactsInput {
  prefix: BodyPrefix;
  /** The request's content-encoding header, '' when none. */
  contentEncoding: string;
  contentType: string;
  /** Declared content-length, or null. */
  declaredLength: number | null;
  limit: number;
}

/** Builds the `body` facts rules see from a buffered prefix: decoded, bounded, honest about truncation. */
export async function bodyFacts(input: BodyFactsInput): Promise<BodyFacts> {
  const { prefix, limit } = input;
  const raw = prefix.chunks.length === 1 ? prefix.chunks[0]! : Buffer.concat(prefix.chunks);
  const size = prefix.complete ? prefix.bytes : Math.max(input.declaredLength ?? 0, prefix.bytes);
  if (prefix.bytes === 0 && prefix.complete) {
    return {
      state: 'absent',
      text: '',
      size: 0,
      content_type: input.contentType,
      truncated: false,
    };
  }
  const encodings = input.contentEncoding
    .toLowerCase()
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '' && s !== 'identity');
  let decoded = raw.subarray(0, limit);
  let cut = !prefix.complete || raw.length > limit;
  if (encodings.length > 0) {
    let data = raw;
    try {
      for (const enc of encodings.reverse()) {
        const make = decoderFor(enc);
        if (make === null) throw new Error(`unsupported content-encoding ${enc}`);
        const r = await inflatePrefix(data, make, limit);
        data = r.out;
        cut ||= r.cut;
      }
    } catch {
      return {
        state: 'undecodable',
        text: '',
        size,
        content_type: input.contentType,
        truncated: !prefix.complete,
      };
    }
    decoded = data;
  }
  return {
    state: cut ? 'truncated' : 'buffered',
    text: decoded.toString('utf8'),
    size,
    content_type: input.contentType,
    truncated: cut,
  };
}
