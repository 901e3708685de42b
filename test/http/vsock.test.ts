import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isCelgateError } from '../../src/errors.js';
import {
  MAX_META_PREAMBLE_BYTES,
  connectGuestPort,
  connectVsock,
  encodeMetaPreamble,
  listenVsock,
  parseConnectReply,
  parseMetaPreamble,
  type GuestConnection,
} from '../../src/transport/vsock.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'celgate-vsock-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function nextConnection(): { seen: Promise<GuestConnection>; on: (c: GuestConnection) => void } {
  let on!: (c: GuestConnection) => void;
  const seen = new Promise<GuestConnection>((resolve) => (on = resolve));
  return { seen, on };
}

function readAll(c: GuestConnection, until: number): Promise<Buffer> {
  return new Promise((resolve) => {
    let buf = c.head;
    if (buf.length >= until) return resolve(buf);
    c.socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= until) resolve(buf);
    });
    c.socket.resume();
  });
}

describe('parseMetaPreamble', () => {
  it('reports no preamble when the first byte is not NUL', () => {
    expect(parseMetaPreamble(Buffer.from('GET / HTTP/1.1\r\n'))).toEqual({ status: 'none' });
    expect(parseMetaPreamble(Buffer.from([0x16, 3, 1]))).toEqual({ status: 'none' });
  });

  it('parses process name and pid and says where the protocol bytes start', () => {
    const buf = Buffer.concat([
      encodeMetaPreamble({ process_name: 'curl', pid: 42 }),
      Buffer.from('rest'),
    ]);
    const r = parseMetaPreamble(buf);
    expect(r.status).toBe('done');
    if (r.status !== 'done') return;
    expect(r.meta).toEqual({ process_name: 'curl', pid: 42 });
    expect(buf.subarray(r.consumed).toString()).toBe('rest');
  });

  it('asks for more bytes while the preamble is incomplete', () => {
    expect(parseMetaPreamble(Buffer.from('\0ME'))).toEqual({ status: 'need_more' });
    expect(parseMetaPreamble(Buffer.from('\0META {"pid":1'))).toEqual({ status: 'need_more' });
    expect(parseMetaPreamble(Buffer.alloc(0))).toEqual({ status: 'need_more' });
  });

  it.each([
    ['a NUL without META', '\0HELLO {}\n', 'E_PARSE'],
    ['invalid JSON', '\0META {nope}\n', 'E_PARSE'],
    ['a JSON array', '\0META [1]\n', 'E_PARSE'],
    ['a string pid', '\0META {"pid":"1"}\n', 'E_PARSE'],
    ['a negative pid', '\0META {"pid":-1}\n', 'E_PARSE'],
    ['a numeric process name', '\0META {"process_name":5}\n', 'E_PARSE'],
  ])('rejects %s with a typed error', (_name, text, code) => {
    expect(() => parseMetaPreamble(Buffer.from(text))).toThrowError(
      expect.objectContaining({ code }),
    );
  });

  it('refuses a preamble longer than the limit, even before its newline', () => {
    const long = Buffer.concat([
      Buffer.from('\0META {"process_name":"'),
      Buffer.alloc(MAX_META_PREAMBLE_BYTES, 0x61),
    ]);
    let err: unknown;
    try {
      parseMetaPreamble(long);
    } catch (e) {
      err = e;
    }
    expect(isCelgateError(err, 'E_LIMIT')).toBe(true);
  });
});

describe('parseConnectReply', () => {
  it('accepts OK n and reports the consumed length', () => {
    expect(parseConnectReply(Buffer.from('OK 1073741824\nxx'))).toEqual({
      status: 'ok',
      hostPort: 1073741824,
      consumed: 14,
    });
    expect(parseConnectReply(Buffer.from('OK 12'))).toEqual({ status: 'need_more' });
  });
  it('rejects anything else', () => {
    expect(() => parseConnectReply(Buffer.from('ERR nope\n'))).toThrowError(
      expect.objectContaining({ code: 'E_PARSE' }),
    );
    expect(() => parseConnectReply(Buffer.alloc(100, 0x41))).toThrowError(
      expect.objectContaining({ code: 'E_LIMIT' }),
    );
  });
});

describe.each(['tcp', 'uds'] as const)('listenVsock / connectVsock in %s mode', (mode) => {
  async function listen(
    on: (c: GuestConnection) => void,
    extra: { onReject?: (e: Error) => void } = {},
  ) {
    const udsBase = mode === 'uds' ? join(tempDir(), 'v.sock') : undefined;
    const l = await listenVsock(
      { mode, port: mode === 'tcp' ? 0 : 5002, udsBase, onReject: extra.onReject },
      on,
    );
    cleanups.push(() => l.close());
    const port = mode === 'tcp' ? Number(l.address.split(':').pop()) : 5002;
    return { l, ep: { mode, port, udsBase } };
  }

  it('strips the META preamble and delivers process name and following bytes', async () => {
    const n = nextConnection();
    const { ep } = await listen(n.on);
    const client = await connectVsock(ep, { process_name: 'python3', pid: 7 });
    cleanups.push(() => void client.destroy());
    client.write('hello');
    const c = await n.seen;
    expect(c.meta).toEqual({ process_name: 'python3', pid: 7 });
    expect((await readAll(c, 5)).toString()).toBe('hello');
  });

  it('passes a connection without preamble through untouched', async () => {
    const n = nextConnection();
    const { ep } = await listen(n.on);
    const client = await connectVsock(ep);
    cleanups.push(() => void client.destroy());
    client.write('GET / HTTP/1.1\r\n');
    const c = await n.seen;
    expect(c.meta).toEqual({});
    expect((await readAll(c, 16)).toString()).toBe('GET / HTTP/1.1\r\n');
  });

  it('refuses a malformed preamble and keeps serving the next connection', async () => {
    const n = nextConnection();
    const rejected: Error[] = [];
    const { ep } = await listen(n.on, { onReject: (e) => rejected.push(e) });
    const bad = await connectVsock(ep);
    bad.write('\0META {broken\n');
    await new Promise((r) => bad.once('close', r));
    expect(rejected.map((e) => (e as { code?: string }).code)).toEqual(['E_PARSE']);
    const good = await connectVsock(ep, { process_name: 'ok' });
    cleanups.push(() => void good.destroy());
    good.write('x');
    expect((await n.seen).meta.process_name).toBe('ok');
  });
});

describe('connectGuestPort', () => {
  it('performs the hybrid-vsock CONNECT handshake and keeps bytes after OK', async () => {
    const base = join(tempDir(), 'guest.vsock');
    const asked: string[] = [];
    const vmm = net.createServer((s) => {
      s.once('data', (d) => {
        asked.push(d.toString());
        s.write('OK 1073741825\nbanner');
      });
    });
    await new Promise<void>((r) => vmm.listen(base, r));
    cleanups.push(() => new Promise<void>((r) => vmm.close(() => r())));
    const sock = await connectGuestPort(base, 5000);
    cleanups.push(() => void sock.destroy());
    const first = await new Promise<Buffer>((r) => {
      sock.once('data', r);
      sock.resume();
    });
    expect(asked).toEqual(['CONNECT 5000\n']);
    expect(first.toString()).toBe('banner');
  });

  it('rejects with a typed error when the VMM refuses', async () => {
    const base = join(tempDir(), 'guest.vsock');
    const vmm = net.createServer((s) => s.once('data', () => s.end('NO\n')));
    await new Promise<void>((r) => vmm.listen(base, r));
    cleanups.push(() => new Promise<void>((r) => vmm.close(() => r())));
    await expect(connectGuestPort(base, 5000)).rejects.toMatchObject({ code: 'E_PARSE' });
  });
});
