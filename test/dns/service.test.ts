/**
 * The DNS service with real clients (dig over UDP and TCP, Node's dns.Resolver, a framed vsock
 * client) against a loopback authoritative upstream that this file starts.
 */
import { execFile } from 'node:child_process';
import { Resolver } from 'node:dns/promises';
import net from 'node:net';
import { promisify } from 'node:util';
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectVsock } from '../../src/transport/vsock.js';
import { MAX_PIPELINED } from '../../src/transport/dns/limits.js';
import { startAuthority, type Authority } from '../../bench/dns-authority.js';
import { blockRule, startHarness, type Harness } from './harness.js';

const run = promisify(execFile);
const haveDig = await run('dig', ['-v']).then(
  () => true,
  () => false,
);

let upstream: Authority;
let h: Harness;

beforeAll(async () => {
  upstream = await startAuthority(
    {
      'allowed.test': [
        { type: 'A', data: '192.0.2.10', ttl: 120 },
        { type: 'AAAA', data: '2001:db8::10' },
      ],
      'other.test': [{ type: 'A', data: '192.0.2.11' }],
      'third.test': [{ type: 'TXT', data: 'hello' }],
      'big.test': [{ type: 'A', data: '192.0.2.99' }],
      'many.test': Array.from({ length: 40 }, (_, i) => ({
        type: 'A' as const,
        data: `198.51.100.${i + 1}`,
      })),
      'blocked.test': [{ type: 'A', data: '192.0.2.66' }],
    },
    { truncate: ['big.test'] },
  );
  h = await startHarness({
    upstreams: [upstream.address],
    static: { 'db.internal': ['10.1.2.3', 'fd00::3'] },
  });
  const r = h.registry.installRaw(
    blockRule('dns-block-test', 'dns.request.qname.endsWith("blocked.test")'),
  );
  expect(r.ok).toBe(true);
});

afterAll(async () => {
  await h?.close();
  await upstream?.close();
});

const dig = async (name: string, type: string, ...flags: string[]) => {
  const { stdout } = await run('dig', [
    `@${h.udp.host}`,
    '-p',
    String(h.udp.port),
    name,
    type,
    '+tries=1',
    '+time=3',
    ...flags,
  ]);
  return stdout;
};

function udpQuery(msg: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    const t = setTimeout(() => {
      s.close();
      reject(new Error('no UDP answer'));
    }, 3000);
    s.on('message', (m) => {
      clearTimeout(t);
      s.close();
      resolve(m);
    });
    s.send(msg, h.udp.port, h.udp.host);
  });
}

function readFrames(socket: net.Socket, count: number): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const out: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        out.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
      }
      if (out.length >= count) resolve(out);
    });
    socket.on('error', reject);
    setTimeout(() => reject(new Error(`only ${out.length} of ${count} frames`)), 5000);
  });
}

/** Lets the service's post-answer recording (setImmediate) run. */
const settle = () => new Promise<void>((r) => setImmediate(r));
const decode = (b: Buffer) => dnsPacket.decode(b) as dnsPacket.DecodedPacket & { rcode: string };
const framed = (m: Buffer) => Buffer.concat([Buffer.from([m.length >> 8, m.length & 255]), m]);
const query = (id: number, name: string, type: dnsPacket.RecordType = 'A') =>
  dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name }],
  });

describe('dig against the UDP and TCP listeners', () => {
  it.skipIf(!haveDig)('answers an allowed name with the upstream answer over UDP', async () => {
    const out = await dig('allowed.test', 'A');
    expect(out).toContain('status: NOERROR');
    expect(out).toMatch(/allowed\.test\.\s+\d+\s+IN\s+A\s+192\.0\.2\.10/);
  });

  it.skipIf(!haveDig)(
    'answers a blocked name NXDOMAIN over UDP, question echoed, rule recorded',
    async () => {
      const before = h.sink.dnsRows.length;
      const out = await dig('www.Blocked.test', 'A');
      expect(out).toContain('status: NXDOMAIN');
      expect(out).toMatch(/;www\.Blocked\.test\.\s+IN\s+A/);
      await settle(); // rows are recorded right after the answer is sent
      const row = h.sink.dnsRows.slice(before).find((r) => r.qname === 'www.blocked.test');
      expect(row).toMatchObject({
        rcode: 'NXDOMAIN',
        decision: 'block',
        rule_id: 'dns-block-test',
        transport: 'udp',
        qtype: 'A',
      });
      const d = h.sink.decisions.find((x) => x.event.common.event_id === row!.event_id);
      expect(d?.decision.reason).toContain('dns-block-test');
    },
  );

  it.skipIf(!haveDig)('serves AAAA and blocks over TCP too', async () => {
    expect(await dig('allowed.test', 'AAAA', '+tcp')).toMatch(/IN\s+AAAA\s+2001:db8::10/);
    expect(await dig('blocked.test', 'A', '+tcp')).toContain('status: NXDOMAIN');
    await settle(); // rows are recorded right after the answer is sent
    expect(h.sink.dnsRows.some((r) => r.transport === 'tcp' && r.rcode === 'NXDOMAIN')).toBe(true);
  });

  it.skipIf(!haveDig)('falls back to TCP upstream when the UDP answer is truncated', async () => {
    const tcpBefore = upstream.queries.tcp;
    const out = await dig('big.test', 'A', '+tcp');
    expect(out).toMatch(/IN\s+A\s+192\.0\.2\.99/);
    expect(upstream.queries.tcp).toBeGreaterThan(tcpBefore);
  });

  it('sets TC for an answer larger than a non-EDNS client accepts over UDP; TCP gets it all', async () => {
    const answer = await udpQuery(query(21, 'many.test'));
    expect(answer[2]! & 0x02).toBe(0x02); // TC
    expect(answer.readUInt16BE(6)).toBe(0); // no answers in the truncated reply
    expect(decode(answer).questions).toEqual([{ name: 'many.test', type: 'A', class: 'IN' }]);
    if (haveDig) {
      const out = await dig('many.test', 'A', '+noedns');
      expect(out).toContain('Truncated, retrying in TCP mode');
      expect(out.match(/IN\s+A\s+198\.51\.100\.\d+/g)).toHaveLength(40);
    }
  });
});

describe('Node dns.Resolver pointed at the listener', () => {
  it('resolves allowed names, gets ENOTFOUND for blocked ones, and static names locally', async () => {
    const r = new Resolver({ timeout: 3000, tries: 1 });
    r.setServers([`${h.udp.host}:${h.udp.port}`]);
    expect(await r.resolve4('other.test')).toEqual(['192.0.2.11']);
    expect(await r.resolveTxt('third.test')).toEqual([['hello']]);
    await expect(r.resolve4('blocked.test')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    const udpBefore = upstream.queries.udp;
    expect(await r.resolve4('DB.internal')).toEqual(['10.1.2.3']);
    expect(await r.resolve6('db.internal')).toEqual(['fd00::3']);
    expect(upstream.queries.udp).toBe(udpBefore);
  });

  it('serves the second lookup from the cache with an aged-or-equal TTL', async () => {
    const r = new Resolver({ timeout: 3000, tries: 1 });
    r.setServers([`${h.udp.host}:${h.udp.port}`]);
    await r.resolve4('allowed.test', { ttl: true });
    const before = upstream.queries.udp;
    const [rec] = await r.resolve4('allowed.test', { ttl: true });
    expect(rec).toMatchObject({ address: '192.0.2.10' });
    expect(rec!.ttl).toBeLessThanOrEqual(120);
    expect(upstream.queries.udp).toBe(before);
    await settle(); // rows are recorded right after the answer is sent
    const row = h.sink.dnsRows.at(-1)!;
    expect(row).toMatchObject({
      qname: 'allowed.test',
      cached: true,
      answers: ['A 192.0.2.10'],
      upstream_ms: null,
    });
  });
});

describe('the vsock port (RFC 7766 framing)', () => {
  it('answers three queries sent in one write, in order, with the META process name recorded', async () => {
    const socket = await connectVsock(
      { mode: 'tcp', host: '127.0.0.1', port: h.vsockPort },
      { process_name: 'curl', pid: 42 },
    );
    const answers = readFrames(socket, 3);
    // The first goes upstream, the second is blocked, the third is static: later ones are ready
    // first, yet answers must come back in query order.
    socket.write(
      Buffer.concat([
        framed(query(1, 'third.test', 'TXT')),
        framed(query(2, 'x.blocked.test')),
        framed(query(3, 'db.internal')),
      ]),
    );
    const frames = await answers;
    socket.destroy();
    const decoded = frames.map((f) => decode(f));
    expect(decoded.map((d) => d.id)).toEqual([1, 2, 3]);
    expect(decoded.map((d) => d.rcode)).toEqual(['NOERROR', 'NXDOMAIN', 'NOERROR']);
    expect(decoded[1]!.questions).toEqual([{ name: 'x.blocked.test', type: 'A', class: 'IN' }]);
    expect(decoded[2]!.answers?.[0]).toMatchObject({ type: 'A', data: '10.1.2.3' });
    await settle(); // rows are recorded right after the answer is sent
    const rows = h.sink.dnsRows.filter((r) => r.transport === 'vsock');
    expect(rows.map((r) => r.process_name)).toContain('curl');
    const evt = h.sink.decisions.find(
      (d) => d.event.common.event_id === rows.find((r) => r.qname === 'x.blocked.test')!.event_id,
    );
    expect(evt?.event).toMatchObject({
      common: { process_name: 'curl', event_type: 'dns.request' },
      dns: { request: { transport: 'vsock', qname: 'x.blocked.test' } },
    });
  });

  it('answers a query split across many writes', async () => {
    const socket = await connectVsock({ mode: 'tcp', host: '127.0.0.1', port: h.vsockPort });
    const answers = readFrames(socket, 1);
    const bytes = framed(query(77, 'other.test'));
    for (const b of bytes) socket.write(Buffer.from([b]));
    const [f] = await answers;
    socket.destroy();
    expect(decode(f!)).toMatchObject({ id: 77, rcode: 'NOERROR' });
  });

  it('keeps order across more pipelined queries than MAX_PIPELINED (reading pauses, then resumes)', async () => {
    const socket = await connectVsock({ mode: 'tcp', host: '127.0.0.1', port: h.vsockPort });
    const n = MAX_PIPELINED * 2 + 5;
    const answers = readFrames(socket, n);
    socket.write(
      Buffer.concat(
        Array.from({ length: n }, (_, i) =>
          framed(query(1000 + i, i % 3 === 0 ? 'other.test' : 'db.internal')),
        ),
      ),
    );
    const frames = await answers;
    socket.destroy();
    expect(frames.map((f) => f.readUInt16BE(0))).toEqual(
      Array.from({ length: n }, (_, i) => 1000 + i),
    );
  });
});

describe('policy changes and failures', () => {
  it('applies a rule installed at runtime to the next query', async () => {
    const first = decode(await udpQuery(query(10, 'other.test')));
    expect(first.rcode).toBe('NOERROR');
    expect(
      h.registry.installRaw(blockRule('dns-runtime', 'dns.request.qname == "other.test"')).ok,
    ).toBe(true);
    const second = decode(await udpQuery(query(11, 'other.test')));
    expect(second.rcode).toBe('NXDOMAIN');
    await settle(); // rows are recorded right after the answer is sent
    expect(h.sink.dnsRows.at(-1)).toMatchObject({ rule_id: 'dns-runtime', rcode: 'NXDOMAIN' });
    h.registry.delete('dns-runtime');
    expect(decode(await udpQuery(query(12, 'other.test'))).rcode).toBe('NOERROR');
  });

  it('treats an ask rule with no approver as a block: NXDOMAIN, reason says so', async () => {
    expect(
      h.registry.installRaw({
        ...blockRule('dns-ask', 'dns.request.qname == "ask.test"'),
        action: 'ask',
      }).ok,
    ).toBe(true);
    const answer = decode(await udpQuery(query(13, 'ask.test')));
    expect(answer.rcode).toBe('NXDOMAIN');
    await settle();
    const row = h.sink.dnsRows.at(-1)!;
    expect(row).toMatchObject({ qname: 'ask.test', decision: 'block', rule_id: 'dns-ask' });
    expect(row.reason).toMatch(/approv/);
    h.registry.delete('dns-ask');
  });

  it('refuses an allowed zone transfer (AXFR) without asking upstream, and records it', async () => {
    const before = upstream.queries.udp + upstream.queries.tcp;
    const answer = decode(await udpQuery(query(14, 'allowed.test', 'AXFR')));
    expect(answer.rcode).toBe('REFUSED');
    expect(upstream.queries.udp + upstream.queries.tcp).toBe(before);
    await settle();
    expect(h.sink.dnsRows.at(-1)).toMatchObject({
      qname: 'allowed.test',
      qtype: 'AXFR',
      decision: 'allow',
      rcode: 'REFUSED',
    });
  });

  it('answers SERVFAIL when the engine fails, and never asks upstream', async () => {
    const broken = await startHarness({
      upstreams: [upstream.address],
      decider: {
        decide: () => {
          throw new Error('boom');
        },
      },
    });
    try {
      const before = upstream.queries.udp;
      const s = dgram.createSocket('udp4');
      const answer = await new Promise<Buffer>((resolve) => {
        s.on('message', (m) => resolve(m));
        s.send(query(5, 'allowed.test'), broken.udp.port, broken.udp.host);
      });
      s.close();
      expect(decode(answer).rcode).toBe('SERVFAIL');
      expect(upstream.queries.udp).toBe(before);
      await settle(); // rows are recorded right after the answer is sent
      expect(broken.sink.decisions[0]!.decision).toMatchObject({
        action: 'error',
        mode: 'fail_closed',
      });
      expect(broken.sink.dnsRows[0]).toMatchObject({ decision: 'error', rcode: 'SERVFAIL' });
    } finally {
      await broken.close();
    }
  });

  it('answers SERVFAIL within the timeout when every upstream is silent', async () => {
    const silent = await startAuthority({}, { silent: true });
    const silent2 = await startAuthority({}, { silent: true });
    const g = await startHarness({ upstreams: [silent.address, silent2.address], timeout_ms: 200 });
    try {
      const r = new Resolver({ timeout: 5000, tries: 1 });
      r.setServers([`${g.udp.host}:${g.udp.port}`]);
      await expect(r.resolve4('anything.test')).rejects.toMatchObject({ code: 'ESERVFAIL' });
      expect(silent.queries.udp).toBe(1);
      expect(silent2.queries.udp).toBe(1); // retried on the next resolver
      await settle(); // rows are recorded right after the answer is sent
      const row = g.sink.dnsRows[0]!;
      expect(row).toMatchObject({ rcode: 'SERVFAIL', decision: 'allow' });
      expect(
        g.log.lines.some(
          (l) => l.msg.includes('upstream failed') && String(l.obj.reason).includes('timed out'),
        ),
      ).toBe(true);
    } finally {
      await g.close();
      await silent.close();
      await silent2.close();
    }
  });
});
