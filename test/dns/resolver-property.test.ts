/**
 * The whole request path (not just the parser) on random and mutated messages: `handle` never
 * rejects, answers only with a response for the same id, and records exactly one decision per
 * question it answered.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PolicyEngine } from '../../src/policy/engine.js';
import { RuleRegistry } from '../../src/policy/registry.js';
import { AnswerCache } from '../../src/transport/dns/cache.js';
import { DnsResolver } from '../../src/transport/dns/resolver.js';
import { UpstreamForwarder } from '../../src/transport/dns/upstream.js';
import { RecordingSink, blockRule, recordingLog } from './harness.js';

const dir = new URL('../fixtures/dns/', import.meta.url);
const seeds = (
  JSON.parse(readFileSync(new URL('cases.json', dir), 'utf8')) as { file: string }[]
).map((c) => readFileSync(new URL(c.file, dir)));

function resolver() {
  const registry = new RuleRegistry();
  expect(registry.installRaw(blockRule('block-b', 'dns.request.qname.contains("b")')).ok).toBe(
    true,
  );
  const sink = new RecordingSink();
  const r = new DnsResolver(
    // No upstreams: allowed questions fail over to SERVFAIL at once, without network.
    {
      origin: { session_id: 'prop' },
      staticNames: new Map([['example.com', ['192.0.2.1']]]),
      staticTtlS: 5,
      cache: new AnswerCache(16),
      forwarder: new UpstreamForwarder([], 50),
    },
    { decider: new PolicyEngine(registry), sink, log: recordingLog() },
  );
  return { r, sink };
}

describe('DnsResolver.handle on hostile input (property)', () => {
  it('never rejects; answers carry the query id and QR; one decision per answered question', async () => {
    const { r, sink } = resolver();
    const input = fc.oneof(
      fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
      fc
        .record({
          seed: fc.integer({ min: 0, max: seeds.length - 1 }),
          flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
          cut: fc.nat(),
        })
        .map(({ seed, flips, cut }) => {
          const b = Buffer.from(seeds[seed]!);
          for (const [at, v] of flips) if (b.length > 0) b[at % b.length] = v;
          return b.subarray(0, b.length === 0 ? 0 : Math.max(1, cut % (b.length + 1)));
        }),
    );
    await fc.assert(
      fc.asyncProperty(input, async (bytes) => {
        const before = sink.decisions.length;
        const answer = await r.handle(bytes, { transport: 'udp' });
        await new Promise<void>((res) => setImmediate(res));
        if (answer === null) {
          expect(sink.decisions.length).toBe(before);
          return;
        }
        expect(answer.length).toBeGreaterThanOrEqual(12);
        expect(answer.readUInt16BE(0)).toBe(bytes.readUInt16BE(0));
        expect(answer[2]! & 0x80).toBe(0x80);
        const rcode = answer[3]! & 0xf;
        const questions = answer.readUInt16BE(4);
        if (rcode === 1 || rcode === 4)
          expect(sink.decisions.length).toBe(before); // FORMERR / NOTIMP: nothing decided
        else {
          // One dns.request decision per question, plus one dns.response per question when all
          // were allowed (a query with a refused question is answered by celgate, not upstream).
          const added = sink.decisions.slice(before);
          const requests = added.filter((d) => d.event.common.event_type === 'dns.request');
          expect(requests.length).toBe(questions);
          const allAllowed = requests.every((d) => d.decision.action === 'allow');
          expect(added.length - requests.length).toBe(allAllowed ? questions : 0);
        }
      }),
      { numRuns: 1500 },
    );
  });
});
