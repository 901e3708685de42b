/**
 * The forwarder against misbehaving upstreams: garbage, answers to a different question or id, and
 * SERVFAIL are not accepted; the next resolver is tried; a good answer after junk still counts.
 */
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';
import { afterAll, describe, expect, it } from 'vitest';
import { parseQuery } from '../../src/transport/dns/parse.js';
import { UpstreamForwarder, parseUpstream } from '../../src/transport/dns/upstream.js';
import { startAuthority } from '../../bench/dns-authority.js';

const sockets: dgram.Socket[] = [];
afterAll(async () => {
  await Promise.all(sockets.map((s) => new Promise<void>((r) => s.close(() => r()))));
});

/** A UDP "resolver" that answers each query with whatever `reply` returns (several datagrams allowed). */
async function fakeUpstream(
  reply: (q: dnsPacket.Packet, raw: Buffer) => Buffer[],
): Promise<string> {
  const s = dgram.createSocket('udp4');
  sockets.push(s);
  s.on('message', (m, r) => {
    for (const out of reply(dnsPacket.decode(m), m)) s.send(out, r.port, r.address);
  });
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  return `127.0.0.1:${s.address().port}`;
}

const answerFor = (q: dnsPacket.Packet, name: string, data: string, id = q.id, rcode = 0) =>
  dnsPacket.encode({
    type: 'response',
    id,
    flags: rcode,
    questions: [{ type: 'A', name }],
    answers: rcode === 0 ? [{ type: 'A', name, ttl: 60, data }] : [],
  });

const query = (name: string) => {
  const r = parseQuery(
    dnsPacket.encode({ type: 'query', id: 1, questions: [{ type: 'A', name }] }),
  );
  if (!r.ok) throw new Error(r.error.message);
  return r.query;
};

describe('UpstreamForwarder against hostile upstreams', () => {
  it('ignores garbage, wrong ids and wrong questions, and accepts the real answer that follows', async () => {
    const up = await fakeUpstream((q) => [
      Buffer.from('not dns at all'),
      answerFor(q, 'target.test', '203.0.113.66', (q.id! + 1) & 0xffff), // wrong id
      answerFor(q, 'other.test', '203.0.113.67'), // wrong question
      answerFor(q, 'target.test', '192.0.2.5'),
    ]);
    const f = new UpstreamForwarder([parseUpstream(up)], 1000);
    const r = await f.forward(query('target.test'));
    expect(r.ok && r.response.answers).toEqual(['A 192.0.2.5']);
  });

  it('moves on from a resolver that only sends junk (timeout) or SERVFAIL, to one that answers', async () => {
    const junk = await fakeUpstream(() => [Buffer.from([1, 2, 3])]);
    const servfail = await fakeUpstream((q) => [answerFor(q, 'target.test', '', q.id, 2)]);
    const good = await startAuthority({ 'target.test': [{ type: 'A', data: '192.0.2.8' }] });
    try {
      const f = new UpstreamForwarder([junk, servfail, good.address].map(parseUpstream), 150);
      const r = await f.forward(query('target.test'));
      expect(r.ok && r.upstream).toBe(good.address);
      expect(r.ok && r.response.answers).toEqual(['A 192.0.2.8']);
    } finally {
      await good.close();
    }
  });

  it('reports every failure when no resolver answers usefully', async () => {
    const junk = await fakeUpstream(() => [Buffer.from([1, 2, 3])]);
    const servfail = await fakeUpstream((q) => [answerFor(q, 'target.test', '', q.id, 2)]);
    const f = new UpstreamForwarder([junk, servfail].map(parseUpstream), 150);
    const r = await f.forward(query('target.test'));
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.reason).toContain('timed out');
      expect(r.reason).toContain('answered SERVFAIL');
    }
  });
});
