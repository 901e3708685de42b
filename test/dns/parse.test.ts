import { readFileSync } from 'node:fs';
import dnsPacket from 'dns-packet';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseQuery } from '../../src/transport/dns/parse.js';
import { parseResponse } from '../../src/transport/dns/response.js';
import { readName } from '../../src/transport/dns/wire.js';
import { RCODE } from '../../src/transport/dns/limits.js';

const dir = new URL('../fixtures/dns/', import.meta.url);
interface Case {
  file: string;
  what: string;
  expect: 'ok' | 'FORMERR' | 'NOTIMP' | 'BADVERS' | 'drop';
  problem?: string;
  qname?: string;
  qtype?: string;
  edns?: boolean;
}
const cases = JSON.parse(readFileSync(new URL('cases.json', dir), 'utf8')) as Case[];
const fixture = (file: string) => readFileSync(new URL(file, dir));

describe('parseQuery on the fixture corpus', () => {
  it.each(cases.filter((c) => c.expect === 'ok'))('parses $file ($what)', (c) => {
    const r = parseQuery(fixture(c.file));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.query.questions).toHaveLength(1);
    expect(r.query.questions[0]!.qname).toBe(c.qname);
    expect(r.query.questions[0]!.qtype).toBe(c.qtype);
    expect(r.query.questions[0]!.qclass).toBe('IN');
    expect(r.query.edns !== null).toBe(c.edns === true);
  });

  it.each(cases.filter((c) => c.expect !== 'ok'))('rejects $file with $problem → $expect', (c) => {
    const r = parseQuery(fixture(c.file));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.problem).toBe(c.problem);
    expect(r.error.message.length).toBeGreaterThan(5);
    const want = c.expect === 'drop' ? null : RCODE[c.expect as 'FORMERR' | 'NOTIMP' | 'BADVERS'];
    expect(r.error.rcode).toBe(want);
  });

  it('covers every README row with a fixture file and vice versa', () => {
    const readme = readFileSync(new URL('README.md', dir), 'utf8');
    for (const c of cases) expect(readme).toContain(`\`${c.file}\``);
    const files = (
      readFileSync(new URL('generate.mjs', dir), 'utf8').match(/out\('([^']+\.bin)'/g) ?? []
    ).map((s) => s.slice(5, -1));
    expect(new Set(files)).toEqual(new Set(cases.map((c) => c.file)));
  });
});

describe('parseQuery details', () => {
  it('reads EDNS: payload size and the DO bit', () => {
    const r = parseQuery(fixture('edns-do-cookie.bin'));
    expect(r.ok && r.query.edns).toEqual({ udpSize: 4096, version: 0, dnssecOk: true });
  });

  it('keeps the question bytes exactly as sent, case included, for echoing', () => {
    const raw = fixture('mixed-case.bin');
    const r = parseQuery(raw);
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.query.questionBytes.toString('latin1')).toContain('ExAmPlE');
  });

  it('accepts a second question compressed against the first and decides both names', () => {
    const msg = dnsPacket.encode({
      type: 'query',
      id: 9,
      questions: [
        { type: 'A', name: 'a.example.com' },
        { type: 'AAAA', name: 'example.com' },
      ],
    });
    const r = parseQuery(msg);
    expect(r.ok && r.query.questions.map((q) => `${q.qname}/${q.qtype}`)).toEqual([
      'a.example.com/A',
      'example.com/AAAA',
    ]);
  });

  it('names unknown types the RFC 3597 way', () => {
    const msg = Buffer.from(
      dnsPacket.encode({ type: 'query', id: 1, questions: [{ type: 'A', name: 'x.test' }] }),
    );
    msg.writeUInt16BE(65534, msg.length - 4);
    const r = parseQuery(msg);
    expect(r.ok && r.query.questions[0]!.qtype).toBe('TYPE65534');
  });

  it('escapes non-printable label bytes so rules cannot be confused by them', () => {
    const name = readName(
      Buffer.from([...Buffer.alloc(12), 3, 0x41, 0x00, 0x2e, 3, 0x63, 0x6f, 0x6d, 0]),
      12,
    );
    expect(name.ok && name.value).toBe('a\\000\\..com');
  });
});

describe('parseResponse', () => {
  it('summarises answers and takes the smallest answer TTL as the cache TTL', () => {
    const msg = dnsPacket.encode({
      type: 'response',
      id: 5,
      flags: 0,
      questions: [{ type: 'A', name: 'example.com' }],
      answers: [
        { type: 'A', name: 'example.com', ttl: 300, data: '192.0.2.1' },
        { type: 'A', name: 'example.com', ttl: 60, data: '192.0.2.2' },
        { type: 'AAAA', name: 'example.com', ttl: 90, data: '2001:db8::1' },
      ],
    });
    const r = parseResponse(msg);
    expect(r.ok && r.response.answers).toEqual(['A 192.0.2.1', 'A 192.0.2.2', 'AAAA 2001:db8::1']);
    expect(r.ok && r.response.cacheTtl).toBe(60);
    expect(r.ok && r.response.ttlOffsets).toHaveLength(3);
  });

  it('summarises a CNAME chain, TXT strings and other types', () => {
    const msg = dnsPacket.encode({
      type: 'response',
      id: 6,
      flags: 0,
      questions: [{ type: 'A', name: 'www.example.com' }],
      answers: [
        { type: 'CNAME', name: 'www.example.com', ttl: 10, data: 'edge.example.net' },
        { type: 'A', name: 'edge.example.net', ttl: 10, data: '192.0.2.9' },
        { type: 'TXT', name: 'edge.example.net', ttl: 10, data: ['v=spf1', '-all'] },
        {
          type: 'MX',
          name: 'edge.example.net',
          ttl: 10,
          data: { preference: 10, exchange: 'mx.example.net' },
        },
      ],
    });
    const r = parseResponse(msg);
    expect(r.ok && r.response.answers).toEqual([
      'CNAME edge.example.net',
      'A 192.0.2.9',
      'TXT "v=spf1" "-all"',
      'MX (18 bytes)',
    ]);
  });

  it('caches NXDOMAIN for the SOA minimum (RFC 2308)', () => {
    const msg = dnsPacket.encode({
      type: 'response',
      id: 5,
      flags: 3,
      questions: [{ type: 'A', name: 'nope.test' }],
      authorities: [
        {
          type: 'SOA',
          name: 'test',
          ttl: 30,
          data: { mname: 'a', rname: 'b', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 7 },
        },
      ],
    });
    const r = parseResponse(msg);
    expect(r.ok && r.response.rcode).toBe(3);
    expect(r.ok && r.response.cacheTtl).toBe(7);
  });

  it('does not cache a truncated response', () => {
    const msg = dnsPacket.encode({
      type: 'response',
      id: 5,
      flags: dnsPacket.TRUNCATED_RESPONSE,
      questions: [{ type: 'A', name: 'big.test' }],
    });
    const r = parseResponse(msg);
    expect(r.ok && r.response.truncated).toBe(true);
    expect(r.ok && r.response.cacheTtl).toBe(null);
  });
});

describe('hostile input never throws past the parser (property)', () => {
  const seeds = cases.map((c) => fixture(c.file));

  it('random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 600 }), (bytes) => {
        const r = parseQuery(bytes);
        expect(typeof r.ok).toBe('boolean');
        parseResponse(bytes);
      }),
      { numRuns: 3000 },
    );
  });

  it('mutated fixtures: flipped bytes, truncations and splices', () => {
    const mutation = fc.record({
      seed: fc.integer({ min: 0, max: seeds.length - 1 }),
      flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
      cut: fc.option(fc.nat(), { nil: undefined }),
      tail: fc.uint8Array({ maxLength: 40 }),
    });
    fc.assert(
      fc.property(mutation, ({ seed, flips, cut, tail }) => {
        const base = Buffer.from(seeds[seed]!);
        for (const [at, value] of flips) if (base.length > 0) base[at % base.length] = value;
        const cutAt = cut === undefined ? base.length : cut % (base.length + 1);
        const bytes = Buffer.concat([base.subarray(0, cutAt), tail]);
        const r = parseQuery(bytes);
        if (r.ok) {
          // Whatever the parser accepts is internally consistent.
          expect(r.query.questions.length).toBeGreaterThan(0);
          for (const q of r.query.questions) expect(q.qname).toBe(q.qname.toLowerCase());
        } else {
          expect(r.error.problem).toMatch(/^[a-z_]+$/);
        }
        const resp = Buffer.from(bytes);
        if (resp.length > 2) resp[2] = resp[2]! | 0x80;
        parseResponse(resp);
      }),
      { numRuns: 5000 },
    );
  });
});
