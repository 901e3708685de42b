/**
 * Every hostile fixture sent to the real listeners yields FORMERR / NOTIMP (id echoed) or no answer,
 * a logged and counted reason, and never a crash: the service answers normally afterwards.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectVsock } from '../../src/transport/vsock.js';
import { startHarness, type Harness } from './harness.js';

const dir = new URL('../fixtures/dns/', import.meta.url);
interface Case {
  file: string;
  expect: 'ok' | 'FORMERR' | 'NOTIMP' | 'BADVERS' | 'drop';
  problem?: string;
}
const RCODES = { FORMERR: 1, NOTIMP: 4, BADVERS: 16 } as const;
const hostile = (JSON.parse(readFileSync(new URL('cases.json', dir), 'utf8')) as Case[]).filter(
  (c) => c.expect !== 'ok',
);
const fixture = (file: string) => readFileSync(new URL(file, dir));

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ static: { 'ok.internal': ['10.0.0.1'] } });
});
afterAll(async () => h?.close());

/** Sends one datagram and waits for an answer or `quietMs` of silence. */
function udpExchange(msg: Buffer, quietMs = 300): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const t = setTimeout(() => {
      s.close();
      resolve(null);
    }, quietMs);
    s.on('message', (m) => {
      clearTimeout(t);
      s.close();
      resolve(m);
    });
    s.send(msg, h.udp.port, h.udp.host);
  });
}

const okQuery = () =>
  dnsPacket.encode({ type: 'query', id: 99, questions: [{ type: 'A', name: 'ok.internal' }] });
/** The full rcode: header bits plus the OPT record's extended bits when the answer ends with one. */
const rcode = (b: Buffer) =>
  (b.length >= 23 && b.readUInt16BE(b.length - 10) === 41 ? b[b.length - 6]! << 4 : 0) |
  (b[3]! & 0xf);

describe('hostile fixtures over UDP', () => {
  it.each(hostile.filter((c) => c.file !== 'zero-length.bin'))(
    '$file → $expect, reason $problem logged',
    async (c) => {
      const bytes = fixture(c.file);
      const before = h.service.resolver.stats.malformed[c.problem as never] ?? 0;
      const answer = await udpExchange(bytes);
      if (c.expect === 'drop') expect(answer).toBeNull();
      else {
        expect(answer).not.toBeNull();
        expect(answer!.readUInt16BE(0)).toBe(bytes.readUInt16BE(0)); // id echoed
        expect(answer![2]! & 0x80).toBe(0x80); // QR
        expect(rcode(answer!)).toBe(RCODES[c.expect as keyof typeof RCODES]);
      }
      expect(h.service.resolver.stats.malformed[c.problem as never]).toBe(before + 1);
      expect(
        h.log.lines.some(
          (l) => l.level === 'warn' && l.obj.dns_problem === c.problem && l.obj.transport === 'udp',
        ),
      ).toBe(true);
      // Still serving.
      const ok = await udpExchange(okQuery(), 3000);
      expect(ok !== null && rcode(ok)).toBe(0);
    },
  );

  it('drops an empty datagram and records why', async () => {
    expect(await udpExchange(Buffer.alloc(0))).toBeNull();
    expect(h.service.resolver.stats.malformed.empty).toBeGreaterThanOrEqual(1);
  });

  it('records no policy event for malformed messages', () => {
    const events = h.sink.decisions.map((d) => d.event);
    expect(events.every((e) => e.common.event_type.startsWith('dns.'))).toBe(true);
    expect(events.every((e) => 'dns' in e && e.dns.request.qname === 'ok.internal')).toBe(true);
    expect(h.sink.dnsRows.every((r) => r.qname === 'ok.internal')).toBe(true);
  });
});

describe('hostile fixtures over the vsock stream', () => {
  it('answers every framed hostile message in order (FORMERR / NOTIMP) and skips the dropped ones', async () => {
    const socket = await connectVsock({ mode: 'tcp', host: '127.0.0.1', port: h.vsockPort });
    const sendable = hostile.filter((c) => fixture(c.file).length > 0);
    const frames = sendable.map((c) => {
      const b = fixture(c.file);
      return Buffer.concat([Buffer.from([b.length >> 8, b.length & 255]), b]);
    });
    const expected = sendable.filter((c) => c.expect !== 'drop');
    const got: Buffer[] = [];
    const done = new Promise<void>((resolve, reject) => {
      let buf = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          got.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
          buf = buf.subarray(2 + buf.readUInt16BE(0));
        }
        if (got.length >= expected.length + 1) resolve();
      });
      setTimeout(() => reject(new Error(`got ${got.length} answers`)), 5000);
    });
    // One write carrying every frame, then a good query that must still be answered.
    socket.write(Buffer.concat([...frames, Buffer.from([0, okQuery().length]), okQuery()]));
    await done;
    socket.destroy();
    expect(got.slice(0, expected.length).map((b) => b.readUInt16BE(0))).toEqual(
      expected.map((c) => fixture(c.file).readUInt16BE(0)),
    );
    expect(got.slice(0, expected.length).map(rcode)).toEqual(
      expected.map((c) => RCODES[c.expect as keyof typeof RCODES]),
    );
    expect(rcode(got[expected.length]!)).toBe(0);
  });

  it('closes a stream that sends a zero-length frame, after answering what came before', async () => {
    const socket = await connectVsock({ mode: 'tcp', host: '127.0.0.1', port: h.vsockPort });
    const q = okQuery();
    const chunks: Buffer[] = [];
    const closed = new Promise<void>((r) => socket.on('close', () => r()));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.write(Buffer.concat([Buffer.from([0, q.length]), q, Buffer.from([0, 0])]));
    await closed;
    const all = Buffer.concat(chunks);
    expect(all.readUInt16BE(0)).toBe(all.length - 2);
    expect(rcode(all.subarray(2))).toBe(0);
    expect(h.log.lines.some((l) => l.obj.reason === 'zero_length_frame')).toBe(true);
  });

  it('closes a stream whose frame does not complete in time (slow drip)', async () => {
    const slow = await startHarness({ frame_deadline_ms: 150 });
    try {
      const socket = await connectVsock({ mode: 'tcp', host: '127.0.0.1', port: slow.vsockPort });
      socket.on('error', () => {});
      const closed = new Promise<void>((r) => socket.on('close', () => r()));
      socket.write(Buffer.from([0, 40, 0x12])); // announces 40 bytes, sends 1
      await closed;
      expect(slow.log.lines.some((l) => l.obj.reason === 'frame_deadline')).toBe(true);
    } finally {
      await slow.close();
    }
  });

  it('refuses a connection whose META preamble is malformed and logs why', async () => {
    const socket = net.connect(h.vsockPort, '127.0.0.1');
    const closed = new Promise<void>((r) => socket.on('close', () => r()));
    socket.on('error', () => {});
    socket.write(Buffer.from('\0META {not json}\n'));
    await closed;
    expect(h.log.lines.some((l) => l.msg.includes('vsock connection refused'))).toBe(true);
  });
});

describe('uds (hybrid-vsock) mode', () => {
  it('serves framed queries on <base>_<port>', async () => {
    const base = join(mkdtempSync(join(tmpdir(), 'celgate-dns-')), 'vsock');
    const u = await startHarness({
      vsock: { mode: 'uds', udsBase: base, port: 5007 },
      listen: null,
      static: { 'ok.internal': ['10.0.0.1'] },
    });
    try {
      expect(u.service.addresses.dns_vsock).toBe(`${base}_5007`);
      const socket = await connectVsock(
        { mode: 'uds', udsBase: base, port: 5007 },
        { process_name: 'python3' },
      );
      const q = okQuery();
      const answer = new Promise<Buffer>((r) => socket.once('data', (c: Buffer) => r(c)));
      socket.write(Buffer.concat([Buffer.from([0, q.length]), q]));
      const a = await answer;
      socket.destroy();
      expect(rcode(a.subarray(2))).toBe(0);
      await new Promise<void>((r) => setImmediate(r)); // recording runs right after the answer
      expect(u.sink.dnsRows[0]).toMatchObject({
        transport: 'vsock',
        process_name: 'python3',
        answers: ['A 10.0.0.1'],
      });
    } finally {
      await u.close();
    }
  });
});
