/**
 * dns.response events and the shipped DNS tunnelling pack through the real gateway (`celgate start`
 * with `detection: [detection-ir/dns-tunnel-nxdomain.yaml]`) and a local authoritative upstream that
 * answers NXDOMAIN for names it does not hold: 25 lookups of distinct names under one domain
 * produce one correlation finding naming 21 of them; 10 under another domain produce none.
 */
import dgram from 'node:dgram';
import Database from 'better-sqlite3';
import dnsPacket from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningTestGateway } from '../support/gateway.js';
import { startAuthority, type Authority } from '../../bench/dns-authority.js';

const PACK = new URL('../../detection-ir/dns-tunnel-nxdomain.yaml', import.meta.url).pathname;

let upstream: Authority;
let gw: RunningTestGateway;

const hostPort = (a: string) => {
  const i = a.lastIndexOf(':');
  return { host: a.slice(0, i), port: Number(a.slice(i + 1)) };
};

function lookup(name: string, id: number): Promise<dnsPacket.Packet & { rcode?: string }> {
  const { host, port } = hostPort(gw.listeners.dns_udp!);
  const msg = dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: 'A', name }],
  });
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    const t = setTimeout(() => {
      s.close();
      reject(new Error(`no answer for ${name}`));
    }, 5_000);
    s.on('message', (m) => {
      clearTimeout(t);
      s.close();
      resolve(dnsPacket.decode(m));
    });
    s.send(msg, port, host);
  });
}

beforeAll(async () => {
  upstream = await startAuthority({ 'www.ok.test': [{ type: 'A', data: '192.0.2.7', ttl: 120 }] });
  gw = await startGateway({
    config: { dns: { upstreams: [upstream.address], timeout_ms: 1000 }, detection: [PACK] },
    args: ['--dns-listen', '127.0.0.1:0'],
  });
});

afterAll(async () => {
  await gw?.stop();
  await upstream?.close();
});

describe('the DNS tunnelling pack on live lookups', () => {
  it('25 NXDOMAIN lookups under one domain make one finding; 10 under another make none', async () => {
    const ok = await lookup('www.ok.test', 1);
    expect(ok.rcode).toBe('NOERROR');
    for (let i = 0; i < 25; i++) {
      const a = await lookup(`d${i}k2.t.tunnel.test`, 100 + i);
      expect(a.rcode).toBe('NXDOMAIN');
    }
    for (let i = 0; i < 10; i++) {
      const a = await lookup(`q${i}.few.test`, 200 + i);
      expect(a.rcode).toBe('NXDOMAIN');
    }
    // The live correlation counters (GET /v1/health): one correlation loaded, one finding.
    const health = await gw.api('GET', '/v1/health');
    expect(health.json.correlations).toMatchObject({ correlations: 1, fired: 1, evictions: 0 });
    expect(await gw.stop()).toBe(0);

    const db = new Database(gw.sessionDb, { readonly: true });
    try {
      const responses = db
        .prepare(
          "SELECT event_id, decision, event_json FROM security_events WHERE event_type = 'dns.response' ORDER BY seq",
        )
        .all() as { event_id: string; decision: string; event_json: string }[];
      // One dns.response per allowed lookup, carrying rcode, parent domain and the answers.
      expect(responses).toHaveLength(36);
      const first = JSON.parse(responses[0]!.event_json).dns.response;
      expect(first).toMatchObject({
        rcode: 'NOERROR',
        parent_domain: 'ok.test',
        answers: [{ name: 'www.ok.test', type: 'A', data: '192.0.2.7', ttl: 120 }],
        answer_data: ['192.0.2.7'],
        answer_types: ['A'],
      });

      const findings = db
        .prepare(
          'SELECT rule_id, pack_id, event_id, severity, correlation_json FROM detection_findings WHERE correlation_json IS NOT NULL',
        )
        .all() as { rule_id: string; event_id: string; correlation_json: string }[];
      expect(findings).toHaveLength(1);
      const f = findings[0]!;
      expect(f).toMatchObject({
        rule_id: 'dns-tunnel-nxdomain-burst',
        pack_id: 'dns-tunnel-nxdomain',
        severity: 'high',
      });
      const c = JSON.parse(f.correlation_json);
      expect(c).toMatchObject({
        type: 'value_count',
        group: { 'dns.response.parent_domain': 't.tunnel.test' },
        count: 21,
        timespan_ms: 60_000,
      });
      // The contributing events are the first 21 tunnel answers, and the finding's event the 21st.
      const tunnel = responses
        .filter((r) => JSON.parse(r.event_json).dns.response.parent_domain === 't.tunnel.test')
        .map((r) => r.event_id);
      expect(c.event_ids).toEqual(tunnel.slice(0, 21));
      expect(f.event_id).toBe(tunnel[20]);
      // The base rule (generate: false) matched every NXDOMAIN answer but records no findings.
      const base = db
        .prepare(
          "SELECT (SELECT count(*) FROM rule_matches WHERE rule_id = 'dns-nxdomain-answer') AS matched, (SELECT count(*) FROM detection_findings WHERE rule_id = 'dns-nxdomain-answer') AS found",
        )
        .get() as { matched: number; found: number };
      expect(base).toEqual({ matched: 35, found: 0 });
    } finally {
      db.close();
    }
  });
});
