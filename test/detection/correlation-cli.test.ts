/**
 * Correlations through the `celgate ir` CLI: import-sigma turns a multi-document Sigma file into a
 * pack with its correlation, `ir lower` names it, and `ir backtest` over JSONL reports the
 * correlation finding with its contributing events (text and JSON).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MAIN_JS } from '../support/gateway.js';
import { ROOT } from './helpers.js';

function celgate(...args: string[]) {
  const r = spawnSync(process.execPath, [MAIN_JS, 'ir', ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const tmp = mkdtempSync(join(tmpdir(), 'celgate-corr-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('celgate ir with correlations', { timeout: 180_000 }, () => {
  const pack = join(tmp, 'pack.yaml');
  const events = join(tmp, 'events.jsonl');
  const lines = Array.from({ length: 25 }, (_, i) =>
    JSON.stringify({
      common: { event_type: 'dns.response', event_id: `e${i}`, timestamp_ms: 1_000 + i * 100 },
      dns: { request: { qname: `k${i}.t.tunnel.test` }, response: { rcode: 'NXDOMAIN' } },
    }),
  );

  it('imports a Sigma correlation file, lowers it and backtests it', () => {
    const imp = celgate(
      'import-sigma',
      'test/fixtures/detection/sigma-correlation/mr_dns_tunnel_nxdomain.yml',
      '--mapping',
      'detection-ir/mappings/sigma-dns.yaml',
      '--pack-id',
      'sigma-tunnel',
      '-o',
      pack,
    );
    expect(imp.code, imp.stderr).toBe(0);
    const lower = celgate('lower', pack);
    expect(lower.code, lower.stderr).toBe(0);
    expect(lower.stdout).toMatch(
      /# correlation sigma-6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b \(high\): value_count of dns.request.qname gt 20 within 60s/,
    );
    writeFileSync(events, `${lines.join('\n')}\n`);
    const text = celgate('backtest', pack, '--events', events, '--no-progress');
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/correlations: 1 fired/);
    const json = celgate('backtest', pack, '--events', events, '--json', '--no-progress');
    expect(json.code, json.stderr).toBe(0);
    const report = JSON.parse(json.stdout);
    expect(report.correlations.findings).toEqual([
      expect.objectContaining({
        rule_id: 'sigma-6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b',
        event_id: 'e20',
        group: { 'dns.response.parent_domain': 't.tunnel.test' },
        count: 21,
        event_ids: Array.from({ length: 21 }, (_, i) => `e${i}`),
      }),
    ]);
  });
});
