/**
 * End to end through the built binary: `celgate ir …` commands, and POST /v1/ir/backtest and
 * POST /v1/ir/hunt on a running gateway (hunt over the gateway's own session.db).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAIN_JS, startGateway, type RunningTestGateway } from '../support/gateway.js';
import { ROOT, readRepo } from './helpers.js';

const PACK = join(ROOT, 'detection-ir/google-secret-egress.yaml');
const CORPUS = join(ROOT, 'test/fixtures/detection/backtest-corpus.jsonl');
const HUNT_PACK = join(ROOT, 'test/fixtures/detection/hunt-pack.yaml');
const reference = JSON.parse(readRepo('test/fixtures/events/reference-http.json'));

function celgate(...args: string[]) {
  const r = spawnSync(process.execPath, [MAIN_JS, 'ir', ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

// Each CLI call starts a fresh node process that loads the whole gateway; on a loaded 2-core machine
// that takes seconds, so these tests get a longer (non-timing) budget.
describe('celgate ir (CLI)', { timeout: 180_000 }, () => {
  const tmp = mkdtempSync(join(tmpdir(), 'celgate-ir-'));

  it('validate accepts the reference pack and rejects a bad one with file, line and path', () => {
    expect(celgate('validate', PACK)).toMatchObject({
      code: 0,
      stdout: expect.stringContaining('google-secret-egress@1.0.0, 1 rule'),
    });
    const bad = join(tmp, 'bad.yaml');
    writeFileSync(
      bad,
      readFileSync(PACK, 'utf8').replace(
        'field: http.request.body.text',
        'field: http.request.body.txt',
      ),
    );
    const r = celgate('validate', bad);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /bad\.yaml:\d+: rules\[0\]\.match\.all\[1\]\.field: unknown field "http\.request\.body\.txt".*did you mean "http\.request\.body\.text"/,
    );
  });

  it('lower prints the CEL; --json gives rule, condition and matched fields', () => {
    const text = celgate('lower', PACK);
    expect(text.stdout, text.stderr).toContain('http.request.body.text.contains("token=secret")');
    const json = celgate('lower', PACK, '--json');
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual([
      expect.objectContaining({
        rule_id: 'google-secret-egress',
        matched_fields: ['http.request.body.text', 'http.request.host'],
      }),
    ]);
  });

  it("test runs the pack's own cases", () => {
    expect(celgate('test', PACK)).toMatchObject({
      code: 0,
      stdout: expect.stringContaining('4 passed, 0 failed'),
    });
  });

  it('backtest reports 2 matches / 1 unique evidence over the corpus', () => {
    const r = celgate('backtest', PACK, '--events', CORPUS, '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      events_scanned: 6,
      total_matches: 2,
      unique_evidence: 1,
      truncated: false,
      ok: true,
      expectations: { failed: 0 },
    });
    expect(celgate('backtest', PACK, '--events', CORPUS).stdout).toMatch(
      /matches: 2 {3}unique evidence: 1/,
    );
  });

  it('backtest fails (exit 1) on corpus problems and names the line', () => {
    const r = celgate(
      'backtest',
      PACK,
      '--events',
      join(ROOT, 'test/fixtures/detection/bad-corpus.jsonl'),
    );
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/bad-corpus\.jsonl:2: not JSON/);
  });

  it('import-sigma converts supported rules and refuses the rest by name, with a non-zero exit', () => {
    const out = join(tmp, 'imported.yaml');
    const mapping = [
      '--mapping',
      join(ROOT, 'detection-ir/mappings/sigma-web-proxy.yaml'),
      join(ROOT, 'detection-ir/mappings/sigma-dns.yaml'),
    ];
    const ok = celgate(
      'import-sigma',
      join(ROOT, 'test/fixtures/sigma/dns-query.yml'),
      ...mapping,
      '-o',
      out,
      '--pack-id',
      'dns-fixture',
    );
    expect(ok.code).toBe(0);
    expect(celgate('validate', out).code).toBe(0);
    const refused = celgate(
      'import-sigma',
      join(ROOT, 'test/fixtures/sigma/refused/aggregation.yml'),
      ...mapping,
    );
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/E_SIGMA_UNSUPPORTED: unsupported Sigma construct: aggregation/);
  });

  it('import-sigma refuses a regex RE2 does not have, naming it, and --partial still emits the rest', () => {
    const mapping = ['--mapping', join(ROOT, 'detection-ir/mappings/sigma-web-proxy.yaml')];
    const r = celgate(
      'import-sigma',
      join(ROOT, 'test/fixtures/sigma/refused/regex-lookahead.yml'),
      join(ROOT, 'test/fixtures/sigma/cidr.yml'),
      ...mapping,
      '--partial',
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/regex-lookahead\.yml.*E_SIGMA_UNSUPPORTED: .*look-ahead assertions/);
    expect(r.stderr).toMatch(/1 converted, 1 refused/);
    expect(r.stdout).toContain('sigma-0f2c1a7e-0007-4000-8000-000000000007');
  });

  it('accepts a directory of packs', () => {
    expect(celgate('validate', join(ROOT, 'detection-ir'))).toMatchObject({
      code: 0,
      stdout: expect.stringContaining('google-secret-egress'),
    });
  });

  it('reports a missing file instead of crashing', () => {
    const r = celgate('lower', join(tmp, 'nope.yaml'));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot read .*nope\.yaml: ENOENT/);
  });
});

describe('detection packs configured on the gateway run inline', () => {
  let gw: RunningTestGateway;
  beforeAll(async () => {
    gw = await startGateway({ config: { detection: [PACK] } });
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it('a matching event gets a finding on its decision and counts on its rule, without being blocked', async () => {
    const res = await gw.api('POST', '/v1/evaluate', {
      event: { ...reference, common: { ...reference.common, event_id: 'inline-1' } },
    });
    expect(res.status).toBe(200);
    expect(res.json.decision.findings).toEqual([
      expect.objectContaining({
        rule_id: 'google-secret-egress',
        pack_id: 'google-secret-egress',
        severity: 'high',
        event_id: 'inline-1',
      }),
    ]);
    expect(res.json.decision.rule_id).not.toBe('google-secret-egress');
    const rules = await gw.api('GET', '/v1/rules');
    expect(
      rules.json.rules.find((r: { id: string }) => r.id === 'google-secret-egress'),
    ).toMatchObject({ kind: 'detection', counters: { matches: 1 } });
  });

  it('the finding is recorded in detection_findings of session.db', async () => {
    await gw.api('POST', '/v1/evaluate', {
      event: { ...reference, common: { ...reference.common, event_id: 'inline-2' } },
    });
    await gw.api('GET', '/v1/events'); // flushes the ledger
    const Database = (await import('better-sqlite3')).default;
    const db = new Database(gw.sessionDb, { readonly: true });
    try {
      const rows = db
        .prepare('SELECT rule_id, pack_id, severity FROM detection_findings WHERE event_id = ?')
        .all('inline-2');
      expect(
        rows,
        `ledger errors: ${JSON.stringify(gw.logs().filter((l) => /ledger/.test(l.msg ?? '')))}`,
      ).toEqual([
        { rule_id: 'google-secret-egress', pack_id: 'google-secret-egress', severity: 'high' },
      ]);
    } finally {
      db.close();
    }
  });
});

describe('IR backtest and hunt through the control API', { timeout: 180_000 }, () => {
  let gw: RunningTestGateway;
  const pack = readRepo('detection-ir/google-secret-egress.yaml');

  beforeAll(async () => {
    gw = await startGateway({
      config: { profile: join(ROOT, 'test/fixtures/detection/quiet-profile.yaml') },
    });
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it('POST /v1/ir/backtest returns the dedupe report', async () => {
    const other = {
      ...reference,
      common: { ...reference.common, event_id: 'x2', timestamp_ms: 5 },
    };
    const res = await gw.api('POST', '/v1/ir/backtest', {
      pack,
      events: [reference, other, { common: { event_type: 'dns.request' } }],
    });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({
      kind: 'backtest',
      events_scanned: 3,
      total_matches: 2,
      unique_evidence: 1,
    });
  });

  it('POST /v1/ir/backtest answers 400 with issues for a bad pack', async () => {
    const res = await gw.api('POST', '/v1/ir/backtest', {
      pack: pack.replace('severity: high', 'severity: huge'),
      events: [],
    });
    expect(res.status).toBe(400);
    expect(res.json.issues[0]).toMatchObject({ path: 'rules[0].severity' });
  });

  it('POST /v1/ir/hunt answers 404 for an unknown session id', async () => {
    // Runs before the slow CLI hunt: the helper's keep-alive socket may be closed by the server after a long pause.
    const res = await gw.api('POST', '/v1/ir/hunt', { pack, session: 'no-such-session' });
    expect(res.status, res.text).toBe(404);
  });

  it('POST /v1/ir/hunt runs a pack over the recorded session, and the CLI hunt agrees', async () => {
    for (const id of ['h1', 'h2']) {
      const ev = { ...reference, common: { ...reference.common, event_id: id } };
      expect((await gw.api('POST', '/v1/evaluate', { event: ev })).status).toBe(200);
    }
    await gw.api('GET', '/v1/events'); // flushes the ledger
    const res = await gw.api('POST', '/v1/ir/hunt', { pack: readFileSync(HUNT_PACK, 'utf8') });
    expect(res.status).toBe(200);
    expect(
      res.json,
      JSON.stringify({
        scanned: res.json.events_scanned,
        ledger: gw.logs().filter((l) => /ledger/.test(l.msg ?? '')),
      }),
    ).toMatchObject({
      kind: 'hunt',
      events_scanned: 2,
      total_matches: 2,
      unique_evidence: 1,
    });
    // The reference pack's body token never reaches the ledger (scrubbed), so hunting it finds nothing.
    expect((await gw.api('POST', '/v1/ir/hunt', { pack })).json).toMatchObject({
      events_scanned: 2,
      total_matches: 0,
    });
    const cli = celgate('hunt', HUNT_PACK, '--session', gw.sessionDb, '--json');
    expect(cli.code, cli.stderr + cli.stdout.slice(0, 2000)).toBe(0);
    expect(JSON.parse(cli.stdout)).toMatchObject({ total_matches: 2, unique_evidence: 1 });
    const byId = celgate(
      'hunt',
      HUNT_PACK,
      '--session',
      gw.sessionId,
      '--data-dir',
      gw.dataDir,
      '--json',
    );
    expect(JSON.parse(byId.stdout)).toMatchObject({ total_matches: 2 });
  });
});
