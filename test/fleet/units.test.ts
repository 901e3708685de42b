import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { policyFields } from '../../src/events/sink.js';
import { parseFleetConfig } from '../../src/fleet/config.js';
import { eventFilter, eventSubject, messageId, subjectToken } from '../../src/fleet/names.js';
import { FleetPolicy } from '../../src/fleet/policy-sync.js';
import { parseSince } from '../../src/fleet/query.js';
import {
  emptyWatermarks,
  exportBacklog,
  readExportBatch,
  readWatermarks,
} from '../../src/store/export-rows.js';
import { openLedgerReadOnly } from '../../src/store/schema.js';
import { LedgerWriter } from '../../src/store/writer.js';
import { loadConfig } from '../../src/gateway/config.js';
import { allowDecision, blockDecision, dnsEvent, httpEvent } from '../store/fixtures/events.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'celgate-fleet-'));

describe('fleet config', () => {
  it('is off without a fleet section and fills defaults with one', () => {
    expect(parseFleetConfig(undefined)).toBeNull();
    const c = parseFleetConfig({ nats: 'nats://127.0.0.1:4222', gateway_id: 'host-a' })!;
    expect(c).toMatchObject({
      servers: ['nats://127.0.0.1:4222'],
      gateway_id: 'host-a',
      packs_bucket: 'celgate-packs',
      status_bucket: 'celgate-status',
      stream: 'CELGATE_EVENTS',
      replicas: 1,
      policy: true,
      export: true,
      token: null,
      tls: null,
    });
    expect(parseFleetConfig({ nats: 'nats://a:1, nats://b:2' })!.servers).toEqual([
      'nats://a:1',
      'nats://b:2',
    ]);
  });

  it.each([
    [{}, 'fleet.nats: is required'],
    [{ nats: 'http://x:1' }, 'is not a NATS URL'],
    [{ nats: 'nats://x:1', gateway_id: 'a.b' }, 'fleet.gateway_id: must match'],
    [{ nats: 'nats://x:1', token: 't', user: 'u', password: 'p' }, 'use one of token'],
    [{ nats: 'nats://x:1', user: 'u' }, 'user and password go together'],
    [{ nats: 'nats://x:1', tls: { cert: 'c.pem' } }, 'cert and key go together'],
    [{ nats: 'nats://x:1', replicas: 7 }, 'fleet.replicas: must be an integer 1..5'],
    [{ nats: 'nats://x:1', nope: 1 }, 'fleet.nope: unknown key'],
  ])('refuses %j with a message naming the key', (raw, message) => {
    expect(() => parseFleetConfig(raw, 'gw.yaml')).toThrow(message);
  });

  it('resolves credential and TLS files against the config file', () => {
    const dir = tmp();
    const file = join(dir, 'gw.yaml');
    writeFileSync(
      file,
      'fleet:\n  nats: nats://127.0.0.1:4222\n  gateway_id: host-a\n  creds: ./nats/user.creds\n  tls: { ca: ca.pem }\n',
    );
    const c = loadConfig(file).fleet!;
    expect(c.creds).toBe(join(dir, 'nats/user.creds'));
    expect(c.tls?.ca).toBe(join(dir, 'ca.pem'));
  });
});

describe('fleet names', () => {
  it('builds subjects from safe tokens and filters with wildcards', () => {
    expect(eventSubject('host-a', '20261205T101010Z-abcd1234', 'dns')).toBe(
      'celgate.events.host-a.20261205T101010Z-abcd1234.dns',
    );
    expect(subjectToken('my.session')).toBe('my_session');
    expect(subjectToken('a b*>')).toBe('a-b--');
    expect(eventFilter({ gateway: 'host-a' })).toBe('celgate.events.host-a.*.*');
    expect(eventFilter({ family: 'http' })).toBe('celgate.events.*.*.http');
  });

  it('gives every row of one event its own de-duplication id, the decision the event id itself', () => {
    const ids = [
      messageId('decision', 'e1'),
      messageId('net', 'e1'),
      messageId('finding', 'e1', 'r1'),
      messageId('finding', 'e1', 'r2'),
    ];
    expect(ids[0]).toBe('e1');
    expect(new Set(ids).size).toBe(4);
  });

  it('reads --since as a duration or an ISO time, and refuses anything else', () => {
    expect(parseSince('15m', 1_000_000_000)).toBe(1_000_000_000 - 900_000);
    expect(parseSince('2026-12-05T10:00:00Z')).toBe(Date.parse('2026-12-05T10:00:00Z'));
    expect(() => parseSince('yesterday')).toThrow('use a duration');
  });
});

describe('export rows and watermarks in session.db', () => {
  it('reads every decision (with its matches and event), finding and protocol row after the watermarks, in order', () => {
    const path = join(tmp(), 'session.db');
    const w = new LedgerWriter(path, {
      session_id: 'store-test',
      profile: 'balanced',
      celgate_version: 't',
      config: {},
    });
    const h = httpEvent(1);
    const block = blockDecision('block-upload', 5);
    block.findings = [
      {
        event_id: h.common.event_id,
        rule_id: 'det-1',
        pack_id: 'p',
        severity: 'high',
        confidence: 0.9,
        title: 'upload',
        tags: ['t'],
        matched_fields: ['http.request.path'],
      },
    ];
    w.decision(h, block);
    w.net({
      ...policyFields(h, block),
      scheme: 'https',
      method: 'POST',
      host: 'api.example.com',
      port: 443,
      path: '/x',
      query: '',
      sni: 'api.example.com',
      host_header_mismatch: '',
      status: 403,
      bytes_in: 1,
      bytes_out: 2,
      duration_ms: 1,
      error: null,
    });
    const d = dnsEvent('a.test');
    w.decision(d, allowDecision());
    w.dns({
      ...policyFields(d, allowDecision()),
      qname: 'a.test',
      qtype: 'A',
      transport: 'udp',
      rcode: 'NOERROR',
      answers: ['1.2.3.4'],
      upstream_ms: 1,
      cached: false,
    });
    w.flush();
    const db = openLedgerReadOnly(path);
    const rows = readExportBatch(db, emptyWatermarks(), 100);
    expect(rows.map((r) => `${r.kind}/${r.family}`).sort()).toEqual(
      ['decision/dns', 'decision/http', 'dns/dns', 'finding/http', 'net/http'].sort(),
    );
    const decision = rows.find((r) => r.kind === 'decision' && r.family === 'http')!;
    expect(decision.event_id).toBe(h.common.event_id);
    const body = JSON.parse(decision.body);
    expect(body).toMatchObject({
      decision: 'block',
      rule_id: 'block-upload',
      generation: 5,
      session_id: 'store-test',
      errors: [],
    });
    expect(body.matches.map((m: any) => [m.rule_id, m.decisive])).toEqual([
      ['shadow-watch', false],
      ['block-upload', true],
    ]);
    // The event comes back whole: identity facts from the columns, the rest from event_json.
    expect(body.event.common).toMatchObject({
      event_id: h.common.event_id,
      event_type: 'http.request',
      family: 'http',
      session_id: 'store-test',
      process_name: 'python3',
    });
    expect(body.event.http.request.path).toBe('/v1/upload/1');
    // The stored event is redacted as in the ledger: the secret in the fixture is not exported.
    expect(decision.body).not.toContain('SUPERSECRET');
    expect(JSON.parse(rows.find((r) => r.kind === 'dns')!.body).answers).toEqual(['1.2.3.4']);
    expect(JSON.parse(rows.find((r) => r.kind === 'finding')!.body)).toMatchObject({
      rule_id: 'det-1',
      tags: ['t'],
      matched_fields: ['http.request.path'],
    });
    expect(rows.find((r) => r.kind === 'finding')!.rule_id).toBe('det-1');
    expect(exportBacklog(db, emptyWatermarks())).toBe(5);

    // The writer stores the watermarks; a batch after them reads only newer rows.
    const marks = {
      ...emptyWatermarks(),
      event_rows: 2,
      detection_findings: 1,
      net_events: 1,
      dns_events: 1,
    };
    w.setWatermarks(marks);
    w.decision(dnsEvent('b.test'), allowDecision());
    w.flush();
    expect(readWatermarks(db)).toEqual(marks);
    const next = readExportBatch(db, readWatermarks(db), 100);
    expect(next.map((r) => r.kind)).toEqual(['decision']);
    expect(exportBacklog(db, readWatermarks(db))).toBe(1);
    db.close();
    w.close();
  });
});

describe('fleet policy', () => {
  const pack = (id: string) => ({
    key: id,
    revision: 1,
    text: `id: ${id}\nversion: "1"\ndefault_action: allow\nrules: []\n`,
  });

  it('keeps the running set when a revision is refused and caches only accepted sets', () => {
    const dir = tmp();
    const cache = join(dir, 'fleet', 'packs-gw.json');
    const p = new FleetPolicy('celgate-packs', cache);
    let accept = true;
    const reload = () =>
      accept
        ? { ok: true as const, value: { generation: 2 } }
        : {
            ok: false as const,
            issues: [
              { file: 'nats:celgate-packs/b@2', line: 3, column: 1, path: 'rules', message: 'bad' },
            ],
          };

    const seen: string[][] = [];
    const tracking = () => {
      seen.push(p.packTexts().map((t) => t.file));
      return reload();
    };
    expect(p.apply([pack('a')], 1, tracking).ok).toBe(true);
    expect(p.status()).toMatchObject({ state: 'applied', revision: 1, packs: { a: 1 } });
    expect(statSync(cache).mode & 0o777).toBe(0o600);

    accept = false;
    expect(p.apply([pack('a'), { ...pack('b'), revision: 2 }], 2, tracking).ok).toBe(false);
    // The candidate was offered to the reload, and afterwards the accepted set is what reloads see.
    expect(seen[1]).toEqual(['nats:celgate-packs/a@1', 'nats:celgate-packs/b@2']);
    expect(p.packTexts().map((t) => t.file)).toEqual(['nats:celgate-packs/a@1']);
    expect(p.status()).toMatchObject({
      state: 'refused',
      revision: 1,
      seen_revision: 2,
      last_error_revision: 2,
    });
    expect(p.status().last_error).toContain('nats:celgate-packs/b@2:3:1 rules: bad');

    const again = new FleetPolicy('celgate-packs', cache);
    expect(again.loadCache()).toBe(1);
    expect(again.status()).toMatchObject({ state: 'cached', revision: 1 });
    expect(JSON.parse(readFileSync(cache, 'utf8')).packs[0].key).toBe('a');
  });
});
