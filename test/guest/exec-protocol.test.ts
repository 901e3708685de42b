import { describe, expect, it } from 'vitest';
import { isCelgateError } from '../../src/errors.js';
import {
  encodeFrame,
  FrameDecoder,
  parseExecRequest,
  parseExecResponse,
} from '../../src/transport/exec/protocol.js';
import { parseConnectRequest } from '../../src/transport/guest/hybrid-endpoint.js';

const req = {
  v: 1,
  id: 'r1',
  argv: ['echo', 'hi'],
  cwd: '/',
  env: {},
  timeout_ms: 1000,
  stdin: '',
};

describe('exec protocol frames', () => {
  it('round-trips frames split at every byte boundary', () => {
    const bytes = Buffer.concat([
      encodeFrame(req, 1 << 20),
      encodeFrame({ ...req, id: 'r2' }, 1 << 20),
    ]);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const d = new FrameDecoder(1 << 20);
      const got = [...d.push(bytes.subarray(0, cut)), ...d.push(bytes.subarray(cut))];
      expect(got.map((f) => (f as { id: string }).id)).toEqual(['r1', 'r2']);
      expect(d.pending).toBe(0);
    }
  });

  it('rejects an oversized length prefix before buffering the body', () => {
    const d = new FrameDecoder(100);
    const head = Buffer.alloc(4);
    head.writeUInt32BE(101);
    expect(() => d.push(head)).toThrow(/exceeds 100/);
  });

  it('rejects a frame that is not JSON with E_PARSE', () => {
    const d = new FrameDecoder(100);
    const body = Buffer.from('{nope');
    const head = Buffer.alloc(4);
    head.writeUInt32BE(body.length);
    try {
      d.push(Buffer.concat([head, body]));
      expect.unreachable();
    } catch (e) {
      expect(isCelgateError(e, 'E_PARSE')).toBe(true);
    }
  });

  it('refuses to encode a payload over the bound', () => {
    expect(() => encodeFrame({ x: 'y'.repeat(200) }, 100)).toThrow(/exceeds 100/);
  });
});

describe('exec request validation', () => {
  it('fills defaults for cwd, env, timeout and stdin', () => {
    expect(parseExecRequest({ v: 1, id: 'a', argv: ['true'] })).toMatchObject({
      cwd: '/',
      env: {},
      timeout_ms: 30_000,
      stdin: '',
    });
  });

  it.each([
    ['a wrong version', { ...req, v: 2 }, /version/],
    ['an empty argv', { ...req, argv: [] }, /argv/],
    ['a non-string argument', { ...req, argv: ['ls', 1] }, /argv/],
    ['a NUL in an argument', { ...req, argv: ['ls', 'a\0b'] }, /NUL/],
    ['a relative cwd', { ...req, cwd: 'tmp' }, /cwd/],
    ['a zero timeout', { ...req, timeout_ms: 0 }, /timeout_ms/],
    ['an env value that is not a string', { ...req, env: { A: 1 } }, /env/],
    ['stdin that is not base64', { ...req, stdin: '***' }, /base64/],
  ])('rejects %s', (_name, value, message) => {
    expect(() => parseExecRequest(value)).toThrow(message);
  });

  it('rejects a response missing its fields', () => {
    expect(() => parseExecResponse({ v: 1, id: 'x', exit_code: 'zero' })).toThrow(/exit_code/);
    expect(
      parseExecResponse({ v: 1, id: 'x', error: { code: 'E_LIMIT', message: 'm' } }),
    ).toMatchObject({ error: { code: 'E_LIMIT' } });
  });
});

describe('hybrid-vsock CONNECT line', () => {
  it('parses CONNECT with the bytes that follow left in place', () => {
    expect(parseConnectRequest(Buffer.from('CONNECT 5000\nxyz'))).toEqual({
      status: 'ok',
      port: 5000,
      consumed: 13,
    });
    expect(parseConnectRequest(Buffer.from('CONNE'))).toEqual({ status: 'need_more' });
  });
  it('rejects garbage and over-long lines', () => {
    expect(() => parseConnectRequest(Buffer.from('HELLO 1\n'))).toThrow(/CONNECT/);
    expect(() => parseConnectRequest(Buffer.alloc(40, 0x41))).toThrow(/too long/);
  });
});
