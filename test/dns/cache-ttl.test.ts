/**
 * The resolver honours upstream TTLs: a cached answer is served with its TTL aged by the time spent
 * in the cache, and once the smallest TTL has run out the next query goes upstream again. NXDOMAIN
 * from upstream is cached for the SOA minimum. The clock is injected; no waiting.
 */
import dnsPacket from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NULL_SINK } from '../../src/events/sink.js';
import { PolicyEngine } from '../../src/policy/engine.js';
import { RuleRegistry } from '../../src/policy/registry.js';
import { AnswerCache } from '../../src/transport/dns/cache.js';
import { DnsResolver } from '../../src/transport/dns/resolver.js';
import { UpstreamForwarder, parseUpstream } from '../../src/transport/dns/upstream.js';
import { startAuthority, type Authority } from '../../bench/dns-authority.js';
import { recordingLog } from './harness.js';

let upstream: Authority;
let now = 1_000_000;
let resolver: DnsResolver;

beforeAll(async () => {
  upstream = await startAuthority({
    'short.test': [
      { type: 'A', data: '192.0.2.1', ttl: 30 },
      { type: 'A', data: '192.0.2.2', ttl: 90 },
    ],
  });
  resolver = new DnsResolver(
    {
      origin: { session_id: 'ttl' },
      staticNames: new Map(),
      staticTtlS: 60,
      cache: new AnswerCache(100),
      forwarder: new UpstreamForwarder([parseUpstream(upstream.address)], 1000),
      now: () => now,
    },
    { decider: new PolicyEngine(new RuleRegistry()), sink: NULL_SINK, log: recordingLog() },
  );
});
afterAll(async () => upstream?.close());

const ask = async (name: string) => {
  const answer = await resolver.handle(
    dnsPacket.encode({ type: 'query', id: 3, questions: [{ type: 'A', name }] }),
    { transport: 'udp' },
  );
  return dnsPacket.decode(answer!) as unknown as { rcode: string; answers: { ttl: number }[] };
};

describe('TTL-honouring cache', () => {
  it('ages cached TTLs and goes upstream again when the smallest TTL has run out', async () => {
    expect((await ask('short.test')).answers.map((a) => a.ttl)).toEqual([30, 90]);
    expect(upstream.queries.udp).toBe(1);
    now += 12_500;
    expect((await ask('short.test')).answers.map((a) => a.ttl)).toEqual([18, 78]);
    expect(upstream.queries.udp).toBe(1);
    now += 17_500; // 30 s after storing: expired
    expect((await ask('short.test')).answers.map((a) => a.ttl)).toEqual([30, 90]);
    expect(upstream.queries.udp).toBe(2);
  });

  it('caches NXDOMAIN for the SOA minimum (5 s here)', async () => {
    const before = upstream.queries.udp;
    expect((await ask('missing.test')).rcode).toBe('NXDOMAIN');
    now += 4_000;
    expect((await ask('missing.test')).rcode).toBe('NXDOMAIN');
    expect(upstream.queries.udp).toBe(before + 1);
    now += 1_000;
    await ask('missing.test');
    expect(upstream.queries.udp).toBe(before + 2);
    expect(resolver.stats.cache_hits).toBe(2);
  });
});

describe('load shedding', () => {
  it('answers SERVFAIL at once beyond MAX_INFLIGHT queries in flight, and serves the rest', async () => {
    const { MAX_INFLIGHT } = await import('../../src/transport/dns/limits.js');
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    let forwarded = 0;
    // A forwarder that holds every query until released (structurally an UpstreamForwarder).
    const held = {
      forward: async () => {
        forwarded++;
        await gate;
        return { ok: false as const, reason: 'released', ms: 0 };
      },
    };
    const r = new DnsResolver(
      {
        origin: { session_id: 'shed' },
        staticNames: new Map(),
        staticTtlS: 60,
        cache: new AnswerCache(0),
        forwarder: held as unknown as UpstreamForwarder,
      },
      { decider: new PolicyEngine(new RuleRegistry()), sink: NULL_SINK, log: recordingLog() },
    );
    const extra = 6;
    const pending = Array.from({ length: MAX_INFLIGHT + extra }, (_, i) =>
      r.handle(
        dnsPacket.encode({
          type: 'query',
          id: i & 0xffff,
          questions: [{ type: 'A', name: `n${i}.test` }],
        }),
        { transport: 'udp' },
      ),
    );
    const shed = await Promise.all(pending.slice(MAX_INFLIGHT));
    expect(shed.map((b) => b![3]! & 0xf)).toEqual(new Array(extra).fill(2));
    expect(r.stats.shed).toBe(extra);
    expect(forwarded).toBe(MAX_INFLIGHT);
    release();
    const rest = await Promise.all(pending.slice(0, MAX_INFLIGHT));
    expect(rest.every((b) => b !== null && (b[3]! & 0xf) === 2)).toBe(true);
  });
});
