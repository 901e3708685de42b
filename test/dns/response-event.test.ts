/**
 * The dns.response event of each allowed question, through the resolver: rcode and the answer
 * records from an upstream, the cache (TTLs aged, `cached`), and static names; none for a question
 * celgate refused; recorded after the answer was handed back; a block rule on dns.response is
 * recorded as a match and never enforced.
 */
import dnsPacket from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SecurityEvent } from '../../src/events/index.js';
import { PolicyEngine } from '../../src/policy/engine.js';
import { RuleRegistry } from '../../src/policy/registry.js';
import {
  AnswerCache,
  DnsResolver,
  UpstreamForwarder,
  parseUpstream,
} from '../../src/transport/dns/index.js';
import { startAuthority, type Authority } from '../../bench/dns-authority.js';
import { blockRule, recordingLog, RecordingSink } from './harness.js';

let upstream: Authority;
let now = 5_000_000;
const registry = new RuleRegistry({ defaultAction: 'allow' });
const sink = new RecordingSink();
let resolver: DnsResolver;

beforeAll(async () => {
  upstream = await startAuthority({
    'www.ok.test': [{ type: 'A', data: '192.0.2.7', ttl: 120 }],
    'txt.ok.test': [{ type: 'TXT', data: 'hello world', ttl: 60 }],
  });
  resolver = new DnsResolver(
    {
      origin: { session_id: 'resp' },
      staticNames: new Map([['db.internal', ['10.0.0.5', 'fd00::5']]]),
      staticTtlS: 45,
      cache: new AnswerCache(100),
      forwarder: new UpstreamForwarder([parseUpstream(upstream.address)], 1000),
      now: () => now,
    },
    { decider: new PolicyEngine(registry), sink, log: recordingLog() },
  );
});
afterAll(async () => upstream?.close());

/** Asks one question; returns the answer's rcode, whether a response event existed when the answer
 * came back, and the response event recorded right after. */
async function ask(name: string, type: dnsPacket.RecordType = 'A') {
  const before = sink.decisions.length;
  const answer = await resolver.handle(
    dnsPacket.encode({ type: 'query', id: 9, questions: [{ type, name }] }),
    { transport: 'udp' },
  );
  const recordedBeforeAnswer = sink.decisions
    .slice(before)
    .some((d) => d.event.common.event_type === 'dns.response');
  await new Promise<void>((r) => setImmediate(r));
  const added = sink.decisions.slice(before);
  const response = added.find((d) => d.event.common.event_type === 'dns.response');
  return {
    rcode: (dnsPacket.decode(answer!) as unknown as { rcode: string }).rcode,
    recordedBeforeAnswer,
    response: response as
      | { event: Extract<SecurityEvent, { common: { event_type: 'dns.response' } }>; decision: any }
      | undefined,
  };
}

describe('dns.response events', () => {
  it('carry the upstream answer records, after the answer was handed back', async () => {
    const r = await ask('www.ok.test');
    expect(r.rcode).toBe('NOERROR');
    expect(r.recordedBeforeAnswer).toBe(false);
    expect(r.response!.event.dns.response).toEqual({
      qname: 'www.ok.test',
      qtype: 'A',
      qclass: 'IN',
      transport: 'udp',
      rcode: 'NOERROR',
      parent_domain: 'ok.test',
      answers: [{ name: 'www.ok.test', type: 'A', data: '192.0.2.7', ttl: 120 }],
      answer_data: ['192.0.2.7'],
      answer_types: ['A'],
      cached: false,
    });
  });

  it('from the cache: cached, TTLs aged by the time in the cache', async () => {
    now += 20_000;
    const r = await ask('www.ok.test');
    expect(r.response!.event.dns.response).toMatchObject({
      cached: true,
      answers: [{ name: 'www.ok.test', type: 'A', data: '192.0.2.7', ttl: 100 }],
    });
  });

  it('TXT data as quoted strings; NXDOMAIN with no answers', async () => {
    expect((await ask('txt.ok.test', 'TXT')).response!.event.dns.response.answer_data).toEqual([
      '"hello world"',
    ]);
    const nx = await ask('nothing.ok.test');
    expect(nx.rcode).toBe('NXDOMAIN');
    expect(nx.response!.event.dns.response).toMatchObject({ rcode: 'NXDOMAIN', answers: [] });
  });

  it('static names answer with the configured TTL', async () => {
    const r = await ask('db.internal');
    expect(r.response!.event.dns.response).toMatchObject({
      cached: false,
      answer_types: ['A', 'AAAA'],
      answer_data: ['10.0.0.5', 'fd00::5'],
      answers: [
        { name: 'db.internal', type: 'A', data: '10.0.0.5', ttl: 45 },
        { name: 'db.internal', type: 'AAAA', data: 'fd00::5', ttl: 45 },
      ],
    });
  });

  it('none for a question a rule refused', async () => {
    expect(
      registry.installRaw(blockRule('no-evil', 'dns.request.qname.endsWith("evil.test")')).ok,
    ).toBe(true);
    const r = await ask('x.evil.test');
    expect(r.rcode).toBe('NXDOMAIN');
    expect(r.response).toBeUndefined();
    registry.delete('no-evil');
  });

  it('a block rule on dns.response is recorded as a match, never enforced', async () => {
    expect(registry.installRaw(blockRule('no-nx', 'dns.response.rcode == "NXDOMAIN"')).ok).toBe(
      true,
    );
    const r = await ask('gone.ok.test');
    expect(r.rcode).toBe('NXDOMAIN'); // the upstream's own answer, unchanged
    expect(r.response!.decision).toMatchObject({ action: 'allow' });
    expect(r.response!.decision.reason).toMatch(/^not enforced/);
    expect(r.response!.decision.matches.map((m: { rule_id: string }) => m.rule_id)).toEqual([
      'no-nx',
    ]);
    const ok = await ask('www.ok.test');
    expect(ok.rcode).toBe('NOERROR');
    registry.delete('no-nx');
  });
});
