/** The sans-io frame and NDJSON codecs: round trips, split delivery, every bound, no throws. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  FrameDecoder,
  FrameKind,
  HEADER_BYTES,
  MAX_PAYLOAD_BYTES,
  MAX_PROCESS_NAME_BYTES,
  NdjsonDecoder,
  MAX_LINE_BYTES,
  encodeClose,
  encodeData,
  encodeFrame,
  encodeOpen,
  truncateUtf8,
} from '../../src/transport/mcp/index.js';
import { isCelgateError } from '../../src/errors.js';

describe('frame codec', () => {
  it('round-trips OPEN, DATA and CLOSE frames delivered one byte at a time', () => {
    const bytes = Buffer.concat([
      encodeOpen(7, 'claude'),
      encodeData(7, '{"jsonrpc":"2.0","id":1,"method":"ping"}'),
      encodeClose(7, 'bye'),
    ]);
    const d = new FrameDecoder();
    const frames = [];
    for (const b of bytes) {
      const r = d.push(Buffer.from([b]));
      expect(r.error).toBeNull();
      frames.push(...r.frames);
    }
    expect(frames).toEqual([
      { kind: FrameKind.OPEN, streamId: 7, processName: 'claude' },
      {
        kind: FrameKind.DATA,
        streamId: 7,
        payload: Buffer.from('{"jsonrpc":"2.0","id":1,"method":"ping"}'),
      },
      { kind: FrameKind.CLOSE, streamId: 7, reason: 'bye' },
    ]);
    expect(d.end()).toBeNull();
  });

  it('decodes many frames from one chunk and keeps a partial tail', () => {
    const a = encodeData(1, '{"a":1}');
    const b = encodeData(2, '{"b":2}');
    const d = new FrameDecoder();
    const r = d.push(Buffer.concat([a, b, b.subarray(0, 5)]));
    expect(r.frames.map((f) => f.streamId)).toEqual([1, 2]);
    expect(d.buffered).toBe(5);
    expect(d.push(b.subarray(5)).frames).toHaveLength(1);
  });

  it('accepts a payload of exactly the limit and refuses one byte more', () => {
    const max = Buffer.alloc(MAX_PAYLOAD_BYTES, 0x20);
    const ok = new FrameDecoder().push(encodeFrame(FrameKind.DATA, 1, max));
    expect(ok.error).toBeNull();
    expect(ok.frames).toHaveLength(1);
    const header = encodeFrame(FrameKind.DATA, 1, '').subarray(0, HEADER_BYTES);
    header.writeUInt32BE(MAX_PAYLOAD_BYTES + 1, 10);
    expect(new FrameDecoder().push(header).error?.reason).toBe('oversize');
    expect(() => encodeFrame(FrameKind.DATA, 1, Buffer.alloc(MAX_PAYLOAD_BYTES + 1))).toThrow(
      /exceeds/,
    );
  });

  it('rejects bad magic as soon as the first wrong byte arrives', () => {
    expect(new FrameDecoder().push(Buffer.from('G')).error?.reason).toBe('bad_magic');
    expect(new FrameDecoder().push(Buffer.from('CG')).error).toBeNull();
  });

  it('is dead after an error and reports the same error again', () => {
    const d = new FrameDecoder();
    const first = d.push(Buffer.from('XXXX')).error;
    expect(d.push(encodeData(1, '{}'))).toEqual({ frames: [], error: first });
  });

  it('bounds the process name of OPEN frames', () => {
    const long = 'p'.repeat(MAX_PROCESS_NAME_BYTES + 10);
    const enc = encodeOpen(1, long);
    const r = new FrameDecoder().push(enc);
    expect(r.error).toBeNull();
    expect((r.frames[0] as { processName: string }).processName).toHaveLength(
      MAX_PROCESS_NAME_BYTES,
    );
    const raw = encodeFrame(FrameKind.OPEN, 1, Buffer.from(long));
    expect(new FrameDecoder().push(raw).error?.reason).toBe('bad_process_name');
  });

  it('refuses stream id 0 when encoding with a typed error', () => {
    try {
      encodeData(0, '{}');
      throw new Error('no throw');
    } catch (err) {
      expect(isCelgateError(err, 'E_LIMIT')).toBe(true);
    }
  });

  it('truncates UTF-8 without splitting a character', () => {
    expect(truncateUtf8('héllo', 2)).toBe('h');
    expect(truncateUtf8('abc', 10)).toBe('abc');
  });

  it('decodes a maximum-size frame delivered in 64 KiB chunks', () => {
    const payload = Buffer.alloc(MAX_PAYLOAD_BYTES, 0x61);
    const bytes = Buffer.concat([encodeFrame(FrameKind.DATA, 5, payload), encodeData(6, '{}')]);
    const d = new FrameDecoder();
    const frames = [];
    for (let i = 0; i < bytes.length; i += 65_536)
      frames.push(...d.push(bytes.subarray(i, i + 65_536)).frames);
    expect(frames.map((f) => f.streamId)).toEqual([5, 6]);
    expect((frames[0] as { payload: Buffer }).payload.equals(payload)).toBe(true);
    expect(d.buffered).toBe(0);
  });

  it('decodes the same frames however a valid stream is split (property)', () => {
    const frame = fc.oneof(
      fc.record({
        kind: fc.constant(FrameKind.DATA),
        id: fc.integer({ min: 1, max: 99 }),
        text: fc.string({ maxLength: 300 }),
      }),
      fc.record({
        kind: fc.constant(FrameKind.OPEN),
        id: fc.integer({ min: 1, max: 99 }),
        text: fc.stringMatching(/^[a-z0-9-]{0,40}$/),
      }),
      fc.record({
        kind: fc.constant(FrameKind.CLOSE),
        id: fc.integer({ min: 1, max: 99 }),
        text: fc.string({ maxLength: 50 }),
      }),
    );
    fc.assert(
      fc.property(
        fc.array(frame, { maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (list, cuts) => {
          const bytes = Buffer.concat(list.map((f) => encodeFrame(f.kind, f.id, f.text)));
          const whole = new FrameDecoder().push(bytes).frames;
          const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort(
            (a, b) => a - b,
          );
          const d = new FrameDecoder();
          const pieces = [];
          let prev = 0;
          for (const p of [...points, bytes.length]) {
            const r = d.push(bytes.subarray(prev, p));
            expect(r.error).toBeNull();
            pieces.push(...r.frames);
            prev = p;
          }
          expect(pieces).toEqual(whole);
          expect(whole).toHaveLength(list.length);
          expect(d.end()).toBeNull();
        },
      ),
      { numRuns: 300 },
    );
  });

  it('never throws on arbitrary bytes, split anywhere (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }), (chunks) => {
        const d = new FrameDecoder();
        for (const c of chunks) d.push(c);
        d.end();
      }),
      { numRuns: 500 },
    );
  });
});

describe('NDJSON codec', () => {
  it('splits lines across chunks, drops blank lines and a trailing CR', () => {
    const d = new NdjsonDecoder();
    expect(d.push(Buffer.from('{"a":1}\r\n\n{"b"')).lines).toEqual(['{"a":1}']);
    expect(d.push(Buffer.from(':2}\n')).lines).toEqual(['{"b":2}']);
    expect(d.end()).toBeNull();
  });

  it.each([
    ['an unterminated last line', [Buffer.from('{"a":1}')], 'truncated'],
    ['invalid UTF-8', [Buffer.from([0x7b, 0xff, 0x7d, 0x0a])], 'invalid_utf8'],
    ['a line over the limit', [Buffer.alloc(MAX_LINE_BYTES, 0x20), Buffer.from('x')], 'oversize'],
  ])('reports %s as a typed error', (_name, chunks, reason) => {
    const d = new NdjsonDecoder();
    let err = null;
    for (const c of chunks) err = d.push(c).error ?? err;
    err = err ?? d.end();
    expect(err?.reason).toBe(reason);
  });
});
