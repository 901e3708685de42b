/** Pure pieces: framing, cache, synthetic answers, response rewriting, config parsing. */
import dgram from 'node:dgram';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import { describe, expect, it } from 'vitest';
import { isCelgateError } from '../../src/errors.js';
import { NULL_SINK } from '../../src/events/sink.js';
import { AnswerCache } from '../../src/transport/dns/cache.js';
import { parseDnsConfig } from '../../src/transport/dns/config.js';
import { FrameReader, frame } from '../../src/transport/dns/framing.js';
import { parseQuery, type DnsQuery } from '../../src/transport/dns/parse.js';
import { parseResponse } from '../../src/transport/dns/response.js';
import { denialResponse, rewriteResponse, staticResponse } from '../../src/transport/dns/synth.js';
import { parseUpstream } from '../../src/transport/dns/upstream.js';

const haveIpv6 = await new Promise<boolean>((resolve) => {
  const s = dgram.createSocket('udp6');
  s.once('error', () => resolve(false));
  s.bind(0, '::1', () => {
    s.close();
    resolve(true);
  });
});
const decode = (b: Buffer) => dnsPacket.decode(b) as dnsPacket.DecodedPacket & { rcode: string };
const q = (
  name: string,
  type: dnsPacket.RecordType = 'A',
  extra: Partial<dnsPacket.Packet> = {},
): DnsQuery => {
  const r = parseQuery(
    dnsPacket.encode({
      type: 'query',
      id: 4321,
      flags: dnsPacket.RECURSION_DESIRED,
      questions: [{ type, name }],
      ...extra,
    }),
  );
  if (!r.ok) throw new Error(r.error.message);
  return r.query;
};

describe('FrameReader', () => {
  it('reassembles frames split at every byte and batched together', () => {
    const msgs = [Buffer.from('abc'), Buffer.from('defgh'), Buffer.alloc(300, 7)];
    const wire = Buffer.concat(msgs.map(frame));
    const r = new FrameReader();
    const out: Buffer[] = [];
    for (const b of wire) out.push(...r.push(Buffer.from([b])).frames);
    expect(out).toEqual(msgs);
    expect(new FrameReader().push(wire).frames).toEqual(msgs);
  });

  it('stops at a zero-length or oversized frame and says which', () => {
    expect(
      new FrameReader().push(Buffer.concat([frame(Buffer.from('x')), Buffer.from([0, 0])])),
    ).toEqual({ ok: false, reason: 'zero_length_frame', frames: [Buffer.from('x')] });
    expect(new FrameReader(10).push(frame(Buffer.alloc(11)))).toMatchObject({
      ok: false,
      reason: 'frame_too_large',
    });
  });
});

describe('AnswerCache', () => {
  const entry = {
    bytes: Buffer.from('x'),
    questionEnd: 12,
    ttlOffsets: [],
    answers: [],
    records: [],
    rcode: 0,
  };
  it('expires entries when their TTL runs out', () => {
    const c = new AnswerCache(10);
    c.set('k', entry, 30, 1_000);
    expect(c.get('k', 30_999)).not.toBeNull();
    expect(c.get('k', 31_000)).toBeNull();
  });
  it('evicts the least recently used entry when full, and caps TTLs', () => {
    const c = new AnswerCache(2, 60);
    c.set('a', entry, 10, 0);
    c.set('b', entry, 10, 0);
    c.get('a', 1);
    c.set('c', entry, 100_000, 0);
    expect(c.get('b', 2)).toBeNull();
    expect(c.get('a', 2)).not.toBeNull();
    expect(c.get('c', 60_000)).toBeNull();
    expect(c.size).toBe(1);
  });
  it('bounds the bytes it holds, evicting the oldest', () => {
    const c = new AnswerCache(100, 60, 1000);
    const big = { ...entry, bytes: Buffer.alloc(400) };
    c.set('a', big, 10, 0);
    c.set('b', big, 10, 0);
    c.set('c', big, 10, 0);
    expect(c.get('a', 1)).toBeNull();
    expect(c.totalBytes).toBe(800);
    c.set('huge', { ...entry, bytes: Buffer.alloc(1001) }, 10, 0);
    expect(c.get('huge', 1)).toBeNull();
  });

  it('does not store zero TTLs or anything when disabled', () => {
    const c = new AnswerCache(0);
    c.set('a', entry, 10, 0);
    const d = new AnswerCache(5);
    d.set('a', entry, 0, 0);
    expect(c.size + d.size).toBe(0);
  });
});

describe('synthetic answers', () => {
  it('NXDOMAIN puts rcode 3 in the low bits of the flags and echoes the question and EDNS', () => {
    const query = q('Blocked.Example', 'AAAA', {
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232 }] as never,
    });
    const a = denialResponse(query, 3);
    expect(a.readUInt16BE(2) & 0xf).toBe(3);
    const d = decode(a);
    expect(d).toMatchObject({
      id: 4321,
      type: 'response',
      rcode: 'NXDOMAIN',
      flag_rd: true,
      flag_ra: true,
    });
    expect(d.questions).toEqual([{ name: 'Blocked.Example', type: 'AAAA', class: 'IN' }]);
    expect(d.additionals?.[0]).toMatchObject({ type: 'OPT' });
  });

  it('static answers carry only the addresses of the asked family', () => {
    const addrs = ['10.0.0.1', '10.0.0.2', 'fd00::1'];
    expect(
      decode(staticResponse(q('db.internal', 'A'), addrs, 60)).answers?.map(
        (x) => (x as { data: unknown }).data,
      ),
    ).toEqual(['10.0.0.1', '10.0.0.2']);
    expect(
      decode(staticResponse(q('db.internal', 'AAAA'), addrs, 60)).answers?.map(
        (x) => (x as { data: unknown }).data,
      ),
    ).toEqual(['fd00::1']);
    const txt = decode(staticResponse(q('db.internal', 'TXT'), addrs, 60));
    expect(txt.rcode).toBe('NOERROR');
    expect(txt.answers).toEqual([]);
  });

  it('rewrites a stored response for a new client: id, question case, aged TTLs', () => {
    const stored = dnsPacket.encode({
      type: 'response',
      id: 1,
      flags: dnsPacket.RECURSION_AVAILABLE,
      questions: [{ type: 'A', name: 'example.com' }],
      answers: [{ type: 'A', name: 'example.com', ttl: 100, data: '192.0.2.1' }],
    });
    const parsed = parseResponse(stored);
    if (!parsed.ok) throw new Error(parsed.problem);
    const out = decode(
      rewriteResponse(
        stored,
        q('EXAMPLE.com'),
        parsed.response.questionEnd,
        parsed.response.ttlOffsets,
        30,
      ),
    );
    expect(out.id).toBe(4321);
    expect(out.questions?.[0]?.name).toBe('EXAMPLE.com');
    expect(out.answers?.[0]).toMatchObject({ ttl: 70, data: '192.0.2.1' });
    const aged = decode(
      rewriteResponse(
        stored,
        q('example.com'),
        parsed.response.questionEnd,
        parsed.response.ttlOffsets,
        500,
      ),
    );
    expect((aged.answers?.[0] as { ttl?: number } | undefined)?.ttl).toBe(0);
  });
});

describe('dns config section', () => {
  it('has documented defaults: vsock on, no plain listener, public upstreams', () => {
    expect(parseDnsConfig(undefined)).toEqual({
      vsock: true,
      listen: null,
      upstreams: ['1.1.1.1:53', '9.9.9.9:53'],
      static: {},
      static_ttl_s: 60,
      timeout_ms: 2000,
      cache_entries: 4096,
      cache_max_ttl_s: 86400,
    });
  });

  it.each([
    [{ listen: 'localhost:53' }, 'dns.listen'],
    [{ upstreams: ['resolver.example'] }, 'dns.upstreams'],
    [{ static: { 'a.test': ['not-an-ip'] } }, 'dns.static.a.test'],
    [{ timeout_ms: 0 }, 'dns.timeout_ms'],
    [{ tiemout_ms: 5 }, 'dns.tiemout_ms'],
    [{ vsock: 'yes' }, 'dns.vsock'],
  ])('refuses %j naming %s', (raw, key) => {
    try {
      parseDnsConfig(raw, 'cfg.yaml');
      expect.unreachable();
    } catch (err) {
      expect(isCelgateError(err, 'E_CONFIG')).toBe(true);
      expect((err as Error).message).toContain(key);
    }
  });

  it('refuses to forward to its own listener', async () => {
    const { startDnsService } = await import('../../src/transport/dns/service.js');
    const deps = {
      decider: {
        decide: () => {
          throw new Error('unused');
        },
      },
      sink: NULL_SINK,
      log: { info() {}, warn() {}, debug() {} },
    };
    await expect(
      startDnsService(
        {
          origin: { session_id: 's' },
          vsock: null,
          listen: '127.0.0.1:5399',
          upstreams: ['127.0.0.1:5399'],
        },
        deps,
      ),
    ).rejects.toMatchObject({ code: 'E_CONFIG' });
  });

  it.skipIf(!haveIpv6)(
    'listens on an IPv6 loopback address for UDP and TCP (skipped without ::1)',
    async () => {
      const { startDnsService } = await import('../../src/transport/dns/service.js');
      const deps = {
        decider: {
          decide: () => {
            throw new Error('engine down');
          },
        },
        sink: NULL_SINK,
        log: { info() {}, warn() {}, debug() {} },
      };
      const svc = await startDnsService(
        { origin: { session_id: 's' }, vsock: null, listen: '[::1]:0', upstreams: [] },
        deps,
      );
      try {
        expect(svc.addresses.dns_udp).toMatch(/^\[::1\]:\d+$/);
        expect(svc.addresses.dns_tcp).toBe(svc.addresses.dns_udp);
        const port = Number(svc.addresses.dns_udp!.split(':').pop());
        const answer = await new Promise<Buffer>((resolve) => {
          const s = dgram.createSocket('udp6');
          s.on('message', (m) => {
            s.close();
            resolve(m);
          });
          s.send(
            dnsPacket.encode({ type: 'query', id: 8, questions: [{ type: 'A', name: 'v6.test' }] }),
            port,
            '::1',
          );
        });
        expect(decode(answer).rcode).toBe('SERVFAIL'); // the engine failed: fail closed
      } finally {
        await svc.close();
      }
    },
  );

  it('expands "system" to the nameservers of resolv.conf', () => {
    const dir = mkdtempSync(join(tmpdir(), 'celgate-resolv-'));
    const file = join(dir, 'resolv.conf');
    writeFileSync(
      file,
      '# comment\nsearch corp.example\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\nnameserver 2001:db8::53\nnameserver not-an-ip\noptions ndots:2\n',
    );
    expect(
      parseDnsConfig({ upstreams: ['system', '9.9.9.9'] }, 'cfg.yaml', file).upstreams,
    ).toEqual(['10.0.0.2:53', '[2001:db8::53]:53', '9.9.9.9']);
    writeFileSync(file, 'search only.example\n');
    expect(() => parseDnsConfig({ upstreams: ['system'] }, 'cfg.yaml', file)).toThrow(
      /lists no nameserver/,
    );
    expect(() =>
      parseDnsConfig({ upstreams: ['system'] }, 'cfg.yaml', join(dir, 'missing')),
    ).toThrow(/"system" needs/);
  });

  it('parses upstream spellings', () => {
    expect(parseUpstream('1.1.1.1')).toEqual({ host: '1.1.1.1', port: 53 });
    expect(parseUpstream('127.0.0.1:5353')).toEqual({ host: '127.0.0.1', port: 5353 });
    expect(parseUpstream('[::1]:53')).toEqual({ host: '::1', port: 53 });
    expect(parseUpstream('2606:4700::1111')).toEqual({ host: '2606:4700::1111', port: 53 });
  });
});
