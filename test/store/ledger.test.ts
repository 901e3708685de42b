import Database from 'better-sqlite3';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { policyFields } from '../../src/events/sink.js';
import {
  countRows,
  eventsByRule,
  readEvents,
  recentEvents,
  ruleSummaries,
} from '../../src/store/readers.js';
import {
  MIGRATIONS,
  openLedger,
  openLedgerReadOnly,
  SCHEMA_VERSION,
} from '../../src/store/schema.js';
import { LedgerWriter } from '../../src/store/writer.js';
import { MAX_INTERNED } from '../../src/store/batch.js';
import { redactHeaders, redactQuery, scrubSecrets, shortHash } from '../../src/store/redact.js';
import {
  allowDecision,
  blockDecision,
  dnsEvent,
  execEvent,
  execWithSecret,
  httpEvent,
  mcpEvent,
  mcpResponseWithSecret,
  SECRET,
} from './fixtures/events.js';

const tempDb = () =>
  join(mkdtempSync(join(tmpdir(), 'celgate-ledger-')), 'sessions', 's1', 'session.db');

describe('session.db ledger', () => {
  it('records the enforced decision, every match and the redacted event of a blocked request', () => {
    const path = tempDb();
    const w = new LedgerWriter(path, {
      session_id: 's1',
      profile: 'balanced',
      celgate_version: 't',
      config: {},
    });
    const ev = httpEvent(1);
    w.decision(ev, blockDecision('block-upload', 7));
    w.close();
    const db = new Database(path, { readonly: true });
    const row = db.prepare('SELECT * FROM security_events').get() as any;
    expect(row).toMatchObject({
      event_id: ev.common.event_id,
      decision: 'block',
      rule_id: 'block-upload',
      mode: 'enforce',
      generation: 7,
      event_type: 'http.request',
      family: 'http',
      match_count: 2,
    });
    const matches = db
      .prepare('SELECT rule_id, decisive, mode FROM rule_matches ORDER BY event_seq, idx')
      .all();
    expect(matches).toEqual([
      { rule_id: 'shadow-watch', decisive: 0, mode: 'shadow' },
      { rule_id: 'block-upload', decisive: 1, mode: 'enforce' },
    ]);
    expect((db.prepare('SELECT ended_ms FROM sessions').get() as any).ended_ms).toBeGreaterThan(0);
  });

  it('puts the policy fields on every protocol row', () => {
    const path = tempDb();
    const w = new LedgerWriter(path);
    const d = blockDecision('r1', 4);
    const h = httpEvent();
    w.net({
      ...policyFields(h, d),
      scheme: 'https',
      method: 'POST',
      host: 'api.example.com',
      port: 443,
      path: '/x',
      query: `token=${SECRET}`,
      sni: 'api.example.com',
      host_header_mismatch: '',
      status: 403,
      bytes_in: 10,
      bytes_out: 20,
      duration_ms: 1.5,
      error: null,
    });
    w.dns({
      ...policyFields(dnsEvent(), d),
      qname: 'example.com',
      qtype: 'A',
      transport: 'udp',
      rcode: 'NXDOMAIN',
      answers: [],
      upstream_ms: null,
      cached: false,
    });
    w.mcp({
      ...policyFields(mcpEvent(), d),
      direction: 'request',
      server_id: 'fs',
      method: 'tools/call',
      tool_name: 'read_file',
      request_id: '7',
      args_digest: 'abcd',
      args_preview: '{}',
      is_error: false,
      duration_ms: 0,
    });
    w.exec({
      ...policyFields(execEvent(), d),
      executable: '/bin/sh',
      argv: ['sh', '-c', 'ls'],
      command: 'sh -c ls',
      cwd: '/',
      command_class: 'shell',
      exit_code: null,
      duration_ms: 0,
    });
    w.close();
    const db = new Database(path, { readonly: true });
    for (const table of ['net_events', 'dns_events', 'mcp_calls', 'exec_events']) {
      expect(
        db.prepare(`SELECT decision, rule_id, generation, reason FROM ${table}`).all(),
        table,
      ).toEqual([{ decision: 'block', rule_id: 'r1', generation: 4, reason: 'Blocked by r1.' }]);
    }
    expect((db.prepare('SELECT query FROM net_events').get() as any).query).toBe(
      'token=[redacted]',
    );
  });

  it('never writes credentials to the file and hashes headers outside the allowlist', () => {
    const path = tempDb();
    const w = new LedgerWriter(path);
    for (let i = 0; i < 50; i++) w.decision(httpEvent(i), allowDecision());
    w.decision(mcpEvent(), allowDecision());
    w.decision(execWithSecret(), allowDecision());
    w.decision(mcpResponseWithSecret(), allowDecision());
    const d = blockDecision();
    w.exec({
      ...policyFields(execWithSecret(), d),
      executable: '/usr/bin/curl',
      argv: ['curl', `--token=${SECRET}`],
      command: `curl --token=${SECRET}`,
      cwd: '/',
      command_class: 'binary',
      exit_code: null,
      duration_ms: 0,
    });
    w.mcp({
      ...policyFields(mcpEvent(), d),
      direction: 'request',
      server_id: 'fs',
      method: 'tools/call',
      tool_name: 't',
      request_id: '1',
      args_digest: 'x',
      args_preview: `{"api_key":"${SECRET}"}`,
      is_error: false,
      duration_ms: 0,
    });
    w.close();
    const dir = join(path, '..');
    for (const f of readdirSync(dir))
      expect(readFileSync(join(dir, f)).includes(SECRET), f).toBe(false);
    const db = new Database(path, { readonly: true });
    const stored = JSON.parse(
      (db.prepare('SELECT event_json FROM security_events LIMIT 1').get() as any).event_json,
    );
    const headers = stored.http.request.headers;
    expect(headers.authorization).toBe('[redacted]');
    expect(headers.cookie).toBe('[redacted]');
    expect(headers['x-api-key']).toBe('[redacted]');
    expect(headers['content-type']).toBe('application/json');
    expect(headers['x-request-id']).toMatch(/^sha256:[0-9a-f]{12}$/);
    expect(stored.http.request.body.text.length).toBeLessThanOrEqual(2048);
    expect(stored.http.request.body.truncated).toBe(true);
    expect(stored.http.request.query).toBe('api_key=[redacted]&page=2');
    expect(stored.http.request.url).toBe(
      'https://api.example.com/v1/upload/0?api_key=[redacted]&page=2',
    );
    expect(stored.http.request.body.text).toContain('"api_key":"[redacted]"');
    expect(stored.http.request.body.text).toContain('Bearer [redacted]');
  });

  it('keeps exactly 100,000 rows for 100,000 appended events after a clean shutdown', () => {
    const path = tempDb();
    const w = new LedgerWriter(path);
    const d = allowDecision();
    for (let i = 0; i < 100_000; i++) w.decision(dnsEvent(`h${i}.example.com`), d);
    w.close();
    const db = openLedgerReadOnly(path);
    expect(countRows(db, 'security_events')).toBe(100_000);
    expect(
      (db.prepare('SELECT COUNT(DISTINCT event_id) AS n FROM security_events').get() as any).n,
    ).toBe(100_000);
  });

  it('flushes queued rows on its own timer without a shutdown', async () => {
    const path = tempDb();
    const w = new LedgerWriter(path);
    w.decision(dnsEvent(), allowDecision());
    expect(w.stats().queued).toBe(1);
    const db = openLedgerReadOnly(path);
    await expect.poll(() => countRows(db, 'security_events'), { timeout: 5000 }).toBe(1);
    expect(w.stats()).toMatchObject({ queued: 0, written: 1, batches: 1 });
    w.close();
  });

  it('continues a session file after a restart without reusing sequence numbers', () => {
    const path = tempDb();
    const session = { session_id: 's1', profile: 'balanced', celgate_version: 't', config: {} };
    const first = new LedgerWriter(path, session);
    first.decision(dnsEvent('one.example'), blockDecision('r1'));
    first.close();
    const second = new LedgerWriter(path, session);
    second.decision(dnsEvent('two.example'), blockDecision('r1'));
    second.close();
    const db = openLedgerReadOnly(path);
    expect(db.prepare('SELECT seq FROM security_events ORDER BY seq').all()).toEqual([
      { seq: 1 },
      { seq: 2 },
    ]);
    expect(
      db
        .prepare(
          'SELECT event_seq, rule_id FROM rule_matches WHERE decisive = 1 ORDER BY event_seq',
        )
        .all(),
    ).toEqual([
      { event_seq: 1, rule_id: 'r1' },
      { event_seq: 2, rule_id: 'r1' },
    ]);
    expect(countRows(db, 'sessions')).toBe(1);
  });

  it('drops only a malformed row, not the batch it arrived in, and stays available', () => {
    const path = tempDb();
    const w = new LedgerWriter(path);
    const d = blockDecision('r1');
    w.decision(dnsEvent('before.example'), d);
    // A transport bug: a NOT NULL column left undefined.
    w.net({
      ...policyFields(httpEvent(), d),
      scheme: 'https',
      method: 'GET',
      host: 'h',
      port: 443,
      path: '/',
      query: '',
      sni: 'h',
      host_header_mismatch: '',
      status: null,
      bytes_in: undefined as unknown as number,
      bytes_out: 0,
      duration_ms: 0,
      error: null,
    });
    w.decision(dnsEvent('after.example'), d);
    w.flush();
    expect(w.stats()).toMatchObject({ written: 2, rejected_rows: 1, failed_batches: 0 });
    expect(w.stats().last_error).toMatch(/NOT NULL/);
    expect(w.available()).toBe(true);
    w.close();
    const db = openLedgerReadOnly(path);
    expect(countRows(db, 'security_events')).toBe(2);
    expect(countRows(db, 'rule_matches')).toBe(4);
    expect(countRows(db, 'net_events')).toBe(0);
  });

  it('writes events with several matches each in one batch (match rows never precede their event)', () => {
    const path = tempDb();
    const w = new LedgerWriter(path);
    const three = blockDecision('r-three');
    const d = { ...three, matches: [...three.matches, { ...three.matches[0]!, rule_id: 'third' }] };
    for (let i = 0; i < 100; i++) w.decision(dnsEvent(`m${i}.example`), d);
    w.flush();
    expect(w.stats()).toMatchObject({
      written: 100,
      rejected_rows: 0,
      failed_batches: 0,
      batches: 1,
    });
    w.close();
    const db = openLedgerReadOnly(path);
    expect(countRows(db, 'rule_matches')).toBe(300);
    expect(db.pragma('foreign_key_check')).toEqual([]);
  });

  it('keeps the right context for every event when more distinct contexts arrive than it remembers', () => {
    const path = tempDb();
    const w = new LedgerWriter(path);
    const n = MAX_INTERNED + 500;
    const d = (i: number) => ({ ...allowDecision(), reason: `reason ${i}` });
    for (let i = 0; i < n; i++) w.decision(dnsEvent(`c${i}.example`), d(i));
    for (let i = 0; i < 10; i++) w.decision(dnsEvent(`again${i}.example`), d(i));
    w.close();
    const db = openLedgerReadOnly(path);
    const rows = db.prepare('SELECT event_id, reason FROM security_events ORDER BY seq').all() as {
      reason: string;
    }[];
    expect(rows).toHaveLength(n + 10);
    expect(rows.map((r) => r.reason)).toEqual([
      ...Array.from({ length: n }, (_, i) => `reason ${i}`),
      ...Array.from({ length: 10 }, (_, i) => `reason ${i}`),
    ]);
    expect(db.pragma('foreign_key_check')).toEqual([]);
  });

  it('drops a decision whose context SQLite refuses and still writes the same context for the next event', () => {
    const path = tempDb();
    const w = new LedgerWriter(path);
    const good = blockDecision('r-new');
    w.decision(dnsEvent('bad.example'), { ...good, generation: undefined as unknown as number });
    w.decision(dnsEvent('good.example'), good);
    w.flush();
    w.decision(dnsEvent('later.example'), good);
    w.close();
    expect(w.stats()).toMatchObject({ written: 2, rejected_rows: 1 });
    const db = openLedgerReadOnly(path);
    expect(
      db.prepare('SELECT rule_id, generation FROM security_events ORDER BY seq').all(),
    ).toEqual([
      { rule_id: 'r-new', generation: 3 },
      { rule_id: 'r-new', generation: 3 },
    ]);
    expect(countRows(db, 'rule_matches')).toBe(4);
    expect(db.pragma('foreign_key_check')).toEqual([]);
  });

  it('refuses appends after close with E_LEDGER', () => {
    const w = new LedgerWriter(tempDb());
    w.close();
    expect(() => w.decision(dnsEvent(), allowDecision())).toThrow(
      expect.objectContaining({ code: 'E_LEDGER' }),
    );
  });
});

describe('scrubbing free text', () => {
  it.each([
    ['api_key=abcdef123456&x=1', 'api_key=[redacted]&x=1'],
    ['{"access_token": "abc.def.ghi"}', '{"access_token": "[redacted]"}'],
    ['Authorization: Bearer abcdefghijkl', 'Authorization: Bearer [redacted]'],
    ['export GITHUB_TOKEN=ghp_0123456789abcdefghijABCDEFGHIJ', 'export GITHUB_TOKEN=[redacted]'],
    ['key AKIAABCDEFGHIJKLMNOP here', 'key [redacted] here'],
    ['--password=hunter22', '--password=[redacted]'],
    ['plain text stays as it is', 'plain text stays as it is'],
  ])('%s → %s', (input, expected) => {
    expect(scrubSecrets(input)).toBe(expected);
  });
});

describe('masking query parameters and headers', () => {
  it.each([
    ['source=bench&page=2', 'source=bench&page=2'],
    ['api_key=abc&x=1', 'api_key=[redacted]&x=1'],
    ['%74oken=abc', '%74oken=[redacted]'],
    ['Signature=abc&SESSION_ID=1', 'Signature=[redacted]&SESSION_ID=[redacted]'],
    ['x=1&access-token=abc', 'x=1&access-token=[redacted]'],
  ])('query %s → %s', (input, expected) => {
    expect(redactQuery(input)).toBe(expected);
  });

  it('treats a header name the same in every spelling and on every request', () => {
    for (let i = 0; i < 3; i++) {
      expect(
        redactHeaders({
          'X-Api-Key': 'k1',
          'x-api-key': 'k2',
          Accept: 'text/html',
          'X-Trace': 'abc',
        }),
      ).toEqual({
        'x-api-key': '[redacted]',
        accept: 'text/html',
        'x-trace': shortHash('abc'),
      });
    }
  });
});

describe('session.db schema', () => {
  it('migrates a new file to the current version and reopens idempotently', () => {
    const path = tempDb();
    openLedger(path).close();
    const db = openLedger(path);
    expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    // security_events and rule_matches are views over the narrow append tables since v2.
    const tables = (
      db
        .prepare("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') ORDER BY name")
        .all() as any[]
    ).map((r) => r.name);
    expect(tables).toEqual(
      expect.arrayContaining([
        'sessions',
        'security_events',
        'rule_matches',
        'detection_findings',
        'net_events',
        'dns_events',
        'mcp_calls',
        'exec_events',
      ]),
    );
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    db.close();
  });

  it('migrates a version 1 file to the current version keeping every event, match and finding', () => {
    const path = tempDb();
    mkdirSync(dirname(path), { recursive: true });
    const v1 = new Database(path);
    v1.exec(MIGRATIONS[0]!);
    v1.pragma('user_version = 1');
    const ev = v1.prepare(
      `INSERT INTO security_events (seq, event_id, session_id, timestamp_ms, event_type, family, process_name, decision, rule_id, reason, mode,
       generation, eval_ns, match_count, errors_json, event_json) VALUES (?, ?, 's1', ?, 'dns.request', 'dns', 'curl', ?, ?, ?, ?, 3, 10, ?, '[]', '{}')`,
    );
    ev.run(1, 'e1', 100, 'block', 'r-a', 'Blocked by r-a.', 'enforce', 1);
    ev.run(2, 'e2', 200, 'allow', null, 'default allow', 'default', 0);
    ev.run(3, 'e3', 300, 'block', 'r-a', 'Blocked by r-a.', 'enforce', 2);
    const m = v1.prepare(
      "INSERT INTO rule_matches (event_seq, idx, rule_id, pack_id, kind, action, mode, severity, decisive) VALUES (?, ?, ?, 'p', 'enforcement', 'block', 'enforce', ?, ?)",
    );
    m.run(1, 0, 'r-a', 'high', 1);
    m.run(3, 0, 'r-shadow', null, 0);
    m.run(3, 1, 'r-a', 'high', 1);
    v1.prepare(
      "INSERT INTO detection_findings (event_seq, event_id, timestamp_ms, rule_id, pack_id, severity, confidence, title, tags_json, matched_fields_json) VALUES (3, 'e3', 300, 'd-1', 'p', 'low', 0.5, 't', '[]', '[]')",
    ).run();
    v1.close();

    const db = openLedger(path);
    expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    expect(
      db
        .prepare(
          'SELECT seq, event_id, decision, rule_id, reason, mode, generation, match_count FROM security_events ORDER BY seq',
        )
        .all(),
    ).toEqual([
      {
        seq: 1,
        event_id: 'e1',
        decision: 'block',
        rule_id: 'r-a',
        reason: 'Blocked by r-a.',
        mode: 'enforce',
        generation: 3,
        match_count: 1,
      },
      {
        seq: 2,
        event_id: 'e2',
        decision: 'allow',
        rule_id: null,
        reason: 'default allow',
        mode: 'default',
        generation: 3,
        match_count: 0,
      },
      {
        seq: 3,
        event_id: 'e3',
        decision: 'block',
        rule_id: 'r-a',
        reason: 'Blocked by r-a.',
        mode: 'enforce',
        generation: 3,
        match_count: 2,
      },
    ]);
    expect(
      db
        .prepare(
          'SELECT event_seq, idx, rule_id, severity, decisive FROM rule_matches ORDER BY event_seq, idx',
        )
        .all(),
    ).toEqual([
      { event_seq: 1, idx: 0, rule_id: 'r-a', severity: 'high', decisive: 1 },
      { event_seq: 3, idx: 0, rule_id: 'r-shadow', severity: null, decisive: 0 },
      { event_seq: 3, idx: 1, rule_id: 'r-a', severity: 'high', decisive: 1 },
    ]);
    expect(eventsByRule(db, 'r-a').map((e) => e.event_id)).toEqual(['e3', 'e1']);
    expect(
      db
        .prepare(
          'SELECT f.rule_id, e.event_id FROM detection_findings f JOIN security_events e ON e.seq = f.event_seq',
        )
        .all(),
    ).toEqual([{ rule_id: 'd-1', event_id: 'e3' }]);
    expect(db.pragma('foreign_key_check')).toEqual([]);
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    db.close();
    // The writer continues the migrated file after its last event.
    const w = new LedgerWriter(path);
    w.decision(dnsEvent('d.com'), blockDecision('r-a'));
    w.close();
    const after = openLedgerReadOnly(path);
    expect(after.prepare('SELECT seq FROM security_events ORDER BY seq').all()).toEqual([
      { seq: 1 },
      { seq: 2 },
      { seq: 3 },
      { seq: 4 },
    ]);
    expect(eventsByRule(after, 'r-a').map((e) => e.seq)).toEqual([4, 3, 1]);
    after.close();
  });

  it('stores a repeated decision context once and a new one as its own row', () => {
    const path = tempDb();
    const w = new LedgerWriter(path);
    for (let i = 0; i < 100; i++) w.decision(dnsEvent(`h${i}.com`), blockDecision('r-a'));
    w.decision(dnsEvent('x.com'), blockDecision('r-b'));
    w.decision(dnsEvent('y.com'), allowDecision());
    w.close();
    const db = openLedgerReadOnly(path);
    expect(countRows(db, 'security_events')).toBe(102);
    expect(countRows(db, 'event_contexts')).toBe(3);
    expect(
      db
        .prepare(
          'SELECT rule_id, COUNT(*) AS n FROM security_events GROUP BY rule_id ORDER BY rule_id',
        )
        .all(),
    ).toEqual([
      { rule_id: null, n: 1 },
      { rule_id: 'r-a', n: 100 },
      { rule_id: 'r-b', n: 1 },
    ]);
    db.close();
  });

  it('refuses a file written by a newer schema', () => {
    const path = tempDb();
    const db = openLedger(path);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    expect(() => openLedger(path)).toThrow(/newer than this celgate/);
  });
});

describe('ledger readers', () => {
  it('lists recent events newest first, filters by rule and summarises per rule', () => {
    const path = tempDb();
    const w = new LedgerWriter(path);
    const events = [dnsEvent('a.com'), dnsEvent('b.com'), dnsEvent('c.com')];
    w.decision(events[0]!, blockDecision('r-a'));
    w.decision(events[1]!, allowDecision());
    w.decision(events[2]!, blockDecision('r-a'));
    w.close();
    const db = openLedgerReadOnly(path);
    const recent = recentEvents(db, { limit: 2 });
    expect(recent.map((e) => e.event_id)).toEqual([
      events[2]!.common.event_id,
      events[1]!.common.event_id,
    ]);
    expect(eventsByRule(db, 'r-a').map((e) => e.event_id)).toEqual([
      events[2]!.common.event_id,
      events[0]!.common.event_id,
    ]);
    expect(eventsByRule(db, 'shadow-watch')).toHaveLength(2);
    expect(recentEvents(db, { rule: 'r-a' })[0]!.matched_rules).toEqual(['shadow-watch', 'r-a']);
    const summary = ruleSummaries(db).find((s) => s.rule_id === 'r-a');
    expect(summary).toMatchObject({
      matches: 2,
      decisive: 2,
      last_event_id: events[2]!.common.event_id,
    });
    expect(recentEvents(db, { decision: 'allow' }).map((e) => e.event_id)).toEqual([
      events[1]!.common.event_id,
    ]);
    expect(recentEvents(db, { event_type: 'dns.request', decision: 'block' })).toHaveLength(2);
    expect(recentEvents(db, { event_type: 'http.request' })).toHaveLength(0);
    expect(() => recentEvents(db, { limit: 0 })).toThrow(/positive integer/);
  });

  it('replays stored events for hunts, with credentials still redacted', () => {
    const path = tempDb();
    const w = new LedgerWriter(path);
    const all = [httpEvent(1), dnsEvent(), mcpEvent(), execEvent()];
    for (const e of all) w.decision(e, allowDecision());
    w.close();
    const replay = [...readEvents(path)];
    expect(replay.map((e) => e.common.event_id)).toEqual(all.map((e) => e.common.event_id));
    expect(replay.map((e) => e.common.event_type)).toEqual([
      'http.request',
      'dns.request',
      'mcp.request',
      'process.exec',
    ]);
    expect(replay.map((e) => e.common)).toEqual(all.map((e) => e.common));
    const http = replay[0] as Extract<
      (typeof replay)[number],
      { common: { event_type: 'http.request' } }
    >;
    expect(http.http.request.host).toBe('api.example.com');
    expect(http.http.request.headers.authorization).toBe('[redacted]');
    const mcp = replay[2] as Extract<
      (typeof replay)[number],
      { common: { event_type: 'mcp.request' } }
    >;
    expect(mcp.mcp.request.arguments).toEqual({ path: '/etc/passwd', api_key: '[redacted]' });
  });
});
