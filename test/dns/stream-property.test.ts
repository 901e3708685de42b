/**
 * The vsock stream under arbitrary segmentation (property): a stream of framed messages (good
 * queries, blocked ones, hostile fixtures), cut into random chunks and written with pauses between
 * them, is answered exactly once per answerable message, in order, on one connection.
 */
import { readFileSync } from 'node:fs';
import type net from 'node:net';
import dnsPacket from 'dns-packet';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectVsock } from '../../src/transport/vsock.js';
import { blockRule, startHarness, type Harness } from './harness.js';

const dir = new URL('../fixtures/dns/', import.meta.url);
interface Case {
  file: string;
  expect: string;
}
const hostile = (JSON.parse(readFileSync(new URL('cases.json', dir), 'utf8')) as Case[])
  .filter((c) => c.expect !== 'ok')
  .map((c) => ({ bytes: readFileSync(new URL(c.file, dir)), answered: c.expect !== 'drop' }))
  .filter((c) => c.bytes.length > 0); // a zero-length frame ends the stream; tested elsewhere

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ static: { 'ok.internal': ['10.0.0.1'] } });
  expect(h.registry.installRaw(blockRule('no-bad', 'dns.request.qname == "bad.internal"')).ok).toBe(
    true,
  );
});
afterAll(async () => h?.close());

const framed = (m: Buffer) => Buffer.concat([Buffer.from([m.length >> 8, m.length & 255]), m]);

function collect(socket: net.Socket, count: number): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const out: Buffer[] = [];
    const timer = setTimeout(() => reject(new Error(`${out.length} of ${count} answers`)), 5000);
    socket.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        out.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
      }
      if (out.length === count) {
        clearTimeout(timer);
        resolve(out);
      }
    });
  });
}

describe('vsock stream segmentation (property)', () => {
  it('answers each answerable message once, in order, however the bytes are split', async () => {
    const message = fc.oneof(
      fc.integer({ min: 0, max: 0xffff }).map((id) => ({
        bytes: dnsPacket.encode({
          type: 'query',
          id,
          questions: [{ type: 'A', name: 'ok.internal' }],
        }),
        answered: true,
        rcode: 0,
      })),
      fc.integer({ min: 0, max: 0xffff }).map((id) => ({
        bytes: dnsPacket.encode({
          type: 'query',
          id,
          questions: [{ type: 'A', name: 'bad.internal' }],
        }),
        answered: true,
        rcode: 3,
      })),
      fc.integer({ min: 0, max: hostile.length - 1 }).map((i) => ({ ...hostile[i]!, rcode: -1 })),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(message, { minLength: 1, maxLength: 12 }),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 20 }),
        async (msgs, cuts) => {
          const stream = Buffer.concat(msgs.map((m) => framed(Buffer.from(m.bytes))));
          const expected = msgs.filter((m) => m.answered);
          const socket = await connectVsock({ mode: 'tcp', host: '127.0.0.1', port: h.vsockPort });
          try {
            const answers = collect(socket, expected.length);
            let at = 0;
            for (let i = 0; at < stream.length; i++) {
              const n = cuts[i % cuts.length]!;
              socket.write(stream.subarray(at, at + n));
              at += n;
              if (i % 3 === 2) await new Promise((r) => setImmediate(r));
            }
            const got = expected.length === 0 ? [] : await answers;
            expect(got.map((b) => b.readUInt16BE(0))).toEqual(
              expected.map((m) => Buffer.from(m.bytes).readUInt16BE(0)),
            );
            got.forEach((b, i) => {
              if (expected[i]!.rcode >= 0) expect(b[3]! & 0xf).toBe(expected[i]!.rcode);
            });
          } finally {
            socket.destroy();
          }
        },
      ),
      { numRuns: 40 },
    );
  });
});
