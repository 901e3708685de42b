import Database from 'better-sqlite3';
import { execFile } from 'node:child_process';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAIN_JS, startGateway, type RunningTestGateway } from '../support/gateway.js';

const run = promisify(execFile);
const evilEvent = {
  event_type: 'http.request',
  http: { request: { method: 'POST', host: 'evil.example', path: '/upload' } },
};
const blockEvil = {
  description: 'test rule',
  condition: 'http.request.host.contains("evil")',
  action: 'block',
  reason: 'evil hosts are off limits',
};

describe('a running gateway and its control socket', () => {
  let gw: RunningTestGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it('reports health with its listeners, session and live generation', async () => {
    const h = await gw.api('GET', '/v1/health');
    expect(h.status).toBe(200);
    expect(h.json).toMatchObject({
      status: 'ok',
      session_id: gw.sessionId,
      session_db: gw.sessionDb,
    });
    expect(h.json.listeners.control).toBe(gw.controlSocket);
    expect(h.json.rules).toBeGreaterThan(0);
    expect(statSync(gw.controlSocket).mode & 0o777).toBe(0o600);
  });

  it('installs a block rule, evaluates a fixture, moves the counter, records the row and the log line, then allows after delete', async () => {
    const put = await gw.api('PUT', '/v1/rules/test-block-evil', blockEvil);
    expect(put.status).toBe(201);
    const generation = put.json.generation;

    const ev = await gw.api('POST', '/v1/evaluate', { event: evilEvent });
    expect(ev.status).toBe(200);
    expect(ev.json.decision).toMatchObject({
      action: 'block',
      rule_id: 'test-block-evil',
      generation,
    });
    expect(ev.json.decision.reason).toContain('evil hosts are off limits');

    const rule = await gw.api('GET', '/v1/rules/test-block-evil');
    expect(rule.json.counters.matches).toBe(1);
    expect(rule.json.counters.last_event_id).toBe(ev.json.event_id);

    const events = await gw.api('GET', '/v1/events?rule=test-block-evil&limit=5');
    expect(events.json.events.map((e: any) => e.event_id)).toEqual([ev.json.event_id]);
    const db = new Database(gw.sessionDb, { readonly: true });
    expect(
      db
        .prepare('SELECT decision, rule_id, generation FROM security_events WHERE event_id = ?')
        .get(ev.json.event_id),
    ).toEqual({
      decision: 'block',
      rule_id: 'test-block-evil',
      generation,
    });
    db.close();
    await expect
      .poll(() => gw.logs().find((l) => l.msg === 'decision' && l.event_id === ev.json.event_id))
      .toMatchObject({
        decision: 'block',
        rule_id: 'test-block-evil',
        event_type: 'http.request',
        session_id: gw.sessionId,
      });

    const stats = await gw.api('GET', '/v1/stats');
    expect(stats.json.families.http.blocked).toBeGreaterThanOrEqual(1);
    expect(stats.json.rules.find((r: any) => r.id === 'test-block-evil').matches).toBe(1);

    const metrics = await gw.api('GET', '/metrics');
    expect(metrics.text).toMatch(
      /celgate_rule_matches_total\{rule="test-block-evil",pack="runtime"\} 1/,
    );

    expect((await gw.api('DELETE', '/v1/rules/test-block-evil')).status).toBe(200);
    const after = await gw.api('POST', '/v1/evaluate', { event: evilEvent });
    expect(after.json.decision.action).toBe('allow');
    expect(after.json.decision.rule_id).toBeNull();
  });

  it('disables and re-enables a rule with PATCH, keeping its counters', async () => {
    expect((await gw.api('PUT', '/v1/rules/toggle-evil', blockEvil)).status).toBe(201);
    expect((await gw.api('POST', '/v1/evaluate', { event: evilEvent })).json.decision.rule_id).toBe(
      'toggle-evil',
    );
    const off = await gw.api('PATCH', '/v1/rules/toggle-evil', { enabled: false });
    expect(off.json.rule).toMatchObject({ enabled: false, counters: { matches: 1 } });
    expect((await gw.api('POST', '/v1/evaluate', { event: evilEvent })).json.decision.action).toBe(
      'allow',
    );
    expect(
      (await gw.api('PATCH', '/v1/rules/toggle-evil', { enabled: true })).json.rule.enabled,
    ).toBe(true);
    expect((await gw.api('POST', '/v1/evaluate', { event: evilEvent })).json.decision.rule_id).toBe(
      'toggle-evil',
    );
    expect(
      (await gw.api('PATCH', '/v1/rules/toggle-evil', { enabled: 'yes' })).json.error.code,
    ).toBe('E_RULE_INVALID');
    expect((await gw.api('PATCH', '/v1/rules/nope', { enabled: true })).status).toBe(404);
    await gw.api('DELETE', '/v1/rules/toggle-evil');
  });

  it('evaluates against a supplied pack without touching the live plan or the ledger', async () => {
    const pack = {
      id: 'candidate',
      version: '1',
      default_action: 'block',
      rules: [
        { id: 'allow-docs', condition: 'http.request.host == "docs.example"', action: 'allow' },
      ],
    };
    const before = (await gw.api('GET', '/v1/stats')).json.totals.events;
    const res = await gw.api('POST', '/v1/evaluate', { event: evilEvent, pack });
    expect(res.json).toMatchObject({
      recorded: false,
      decision: { action: 'block', rule_id: null, mode: 'default' },
    });
    expect((await gw.api('GET', '/v1/stats')).json.totals.events).toBe(before);
    expect((await gw.api('GET', '/v1/rules/allow-docs')).status).toBe(404);
  });

  it.each([
    ['a malformed JSON body', 'PUT', '/v1/rules/x', '{"condition": ', 400, 'E_PARSE'],
    [
      'an unknown rule field',
      'PUT',
      '/v1/rules/x',
      { condition: 'true', action: 'block', colour: 'red' },
      400,
      'E_RULE_INVALID',
    ],
    [
      'a rule that does not compile',
      'PUT',
      '/v1/rules/x',
      { condition: 'http.request.hots == "a"', action: 'block' },
      400,
      'E_RULE_INVALID',
    ],
    [
      'a body id that differs from the path',
      'PUT',
      '/v1/rules/x',
      { id: 'y', condition: 'true', action: 'block' },
      400,
      'E_RULE_INVALID',
    ],
    [
      'an event of an unknown type',
      'POST',
      '/v1/evaluate',
      { event: { event_type: 'smtp.send' } },
      400,
      'E_PARSE',
    ],
    ['an unknown path', 'GET', '/v1/nope', undefined, 404, 'E_NOT_FOUND'],
    ['a wrong method', 'POST', '/v1/health', undefined, 405, 'E_METHOD'],
    [
      'deleting an unknown rule',
      'DELETE',
      '/v1/rules/never-installed',
      undefined,
      404,
      'E_RULE_NOT_FOUND',
    ],
    ['a bad limit', 'GET', '/v1/events?limit=-3', undefined, 400, 'E_CONFIG'],
  ])(
    'answers %s with a JSON error and changes nothing',
    async (_name, method, path, body, status, code) => {
      const before = await gw.api('GET', '/v1/rules');
      const res = await gw.api(method, path, body);
      expect(res.status).toBe(status);
      expect(res.json.error.code).toBe(code);
      expect(res.json.error.message).toEqual(expect.any(String));
      const after = await gw.api('GET', '/v1/rules');
      expect(after.json.generation).toBe(before.json.generation);
    },
  );

  it('names the unknown field and suggests the right one', async () => {
    const res = await gw.api('PUT', '/v1/rules/x', {
      condition: 'http.request.hots == "a"',
      action: 'block',
    });
    expect(JSON.stringify(res.json.error.issues)).toContain('http.request.host');
  });

  it('validates without installing', async () => {
    const ok = await gw.api('POST', '/v1/rules/validate', {
      id: 'v1',
      condition: 'dns.request.qname == "a.b"',
      action: 'block',
    });
    expect(ok.json).toEqual({ ok: true, rules: 1 });
    const bad = await gw.api('POST', '/v1/rules/validate', [
      { id: 'v1', condition: 'dns.request.qnme == "a"', action: 'block' },
    ]);
    expect(bad.status).toBe(422);
    expect(bad.json.ok).toBe(false);
    expect((await gw.api('GET', '/v1/rules/v1')).status).toBe(404);
  });

  // Six CLI processes; each one loads the whole CLI, which takes seconds on a busy 2-core host.
  it(
    'drives rules install, events and stats from the CLI over the socket',
    { timeout: 120_000 },
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'celgate-cli-'));
      const file = join(dir, 'rule.yaml');
      writeFileSync(
        file,
        'id: cli-block-dns\ncondition: dns.request.qname == "cli.example"\naction: block\nreason: cli test\n',
      );
      const install = await run(process.execPath, [
        MAIN_JS,
        'rules',
        'install',
        file,
        '--socket',
        gw.controlSocket,
      ]);
      expect(install.stdout).toContain('installed cli-block-dns');
      await gw.api('POST', '/v1/evaluate', {
        event: { event_type: 'dns.request', dns: { request: { qname: 'cli.example' } } },
      });
      const events = await run(process.execPath, [
        MAIN_JS,
        'events',
        '--rule',
        'cli-block-dns',
        '--json',
        '--socket',
        gw.controlSocket,
      ]);
      expect(JSON.parse(events.stdout)[0]).toMatchObject({
        rule_id: 'cli-block-dns',
        decision: 'block',
      });
      const stats = await run(process.execPath, [MAIN_JS, 'stats', '--socket', gw.controlSocket]);
      expect(JSON.parse(stats.stdout).families.dns.blocked).toBeGreaterThanOrEqual(1);
      const del = await run(process.execPath, [
        MAIN_JS,
        'rules',
        'delete',
        'cli-block-dns',
        '--socket',
        gw.controlSocket,
      ]);
      expect(del.stdout + del.stderr).toContain('deleted cli-block-dns');
      await expect(
        run(process.execPath, [
          MAIN_JS,
          'rules',
          'delete',
          'cli-block-dns',
          '--socket',
          gw.controlSocket,
        ]),
      ).rejects.toMatchObject({
        stderr: expect.stringContaining('E_RULE_NOT_FOUND'),
      });
    },
  );
});

describe('the loopback TCP control listener', () => {
  it('refuses a request without the bearer token with a JSON error and changes nothing', async () => {
    const token = 'gateway-test-token-0123456789';
    const gw = await startGateway({ config: { control: { tcp: '127.0.0.1:0', token } } });
    try {
      const addr = gw.listeners.control_tcp!;
      expect(addr).toMatch(/^127\.0\.0\.1:\d+$/);
      const call = async (headers: Record<string, string>) => {
        const res = await fetch(`http://${addr}/v1/rules/tcp-rule`, {
          method: 'PUT',
          headers: { 'content-type': 'application/json', ...headers },
          body: JSON.stringify({ condition: 'dns.request.qname == "t.example"', action: 'block' }),
        });
        return { status: res.status, json: (await res.json()) as any };
      };
      const before = (await gw.api('GET', '/v1/rules')).json.generation;
      const refused = await call({});
      expect(refused.status).toBe(401);
      expect(refused.json.error.code).toBe('E_UNAUTHORIZED');
      expect((await call({ authorization: 'Bearer not-the-token-at-all-000' })).status).toBe(401);
      expect((await gw.api('GET', '/v1/rules')).json.generation).toBe(before);
      expect((await gw.api('GET', '/v1/rules/tcp-rule')).status).toBe(404);
      expect((await call({ authorization: `Bearer ${token}` })).status).toBe(201);
    } finally {
      await gw.stop();
    }
  });

  it('refuses to start with a non-loopback control address', async () => {
    await expect(
      startGateway({
        config: { control: { tcp: '0.0.0.0:0', token: 'gateway-test-token-0123456789' } },
      }),
    ).rejects.toThrow(/not a loopback address/);
  });
});
