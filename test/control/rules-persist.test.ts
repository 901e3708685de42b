/**
 * Rule changes that behave: `celgate rules install` is all-or-nothing per file (a bad rule in the
 * middle installs nothing, and the problem carries file:line:column), and rules installed,
 * disabled or deleted at runtime survive a restart; `rules list` and `rules export` show them.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parsePack } from '../../src/policy/packs.js';
import { MAIN_JS, startGateway } from '../support/gateway.js';

const run = promisify(execFile);
const cli = (args: string[]) =>
  run(process.execPath, [MAIN_JS, ...args]).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({
      code: e.code,
      stdout: e.stdout,
      stderr: e.stderr,
    }),
  );

const GOOD = `id: team
version: "1"
default_action: allow
rules:
  - id: team-first
    condition: http.request.host == "first.example"
    action: block
  - id: team-second
    condition: http.request.host == "second.example"
    action: block
`;
const BAD_IN_MIDDLE = `id: team
version: "1"
default_action: allow
rules:
  - id: team-a
    condition: http.request.host == "a.example"
    action: block
  - id: team-b
    condition: http.request.hots == "b.example"
    action: block
  - id: team-c
    condition: http.request.host == "c.example"
    action: block
`;

describe('runtime rule changes', () => {
  it('installs a file all-or-nothing, persists installs, disables and deletes across a restart, and lists and exports them', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'celgate-persist-'));
    const dir = mkdtempSync(join(tmpdir(), 'celgate-persist-files-'));
    writeFileSync(join(dir, 'bad.yaml'), BAD_IN_MIDDLE);
    writeFileSync(join(dir, 'good.yaml'), GOOD);
    let gw = await startGateway({ dataDir });
    const socket = ['--socket', gw.controlSocket];
    const ids = async () =>
      ((await gw.api('GET', '/v1/rules')).json.rules as { id: string }[]).map((r) => r.id);
    try {
      const bad = await cli(['rules', 'install', join(dir, 'bad.yaml'), ...socket]);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toMatch(
        new RegExp(
          `${join(dir, 'bad.yaml').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:9:16: rules\\[1\\]\\.condition: .*http\\.request\\.hots`,
        ),
      );
      expect(bad.stderr).toMatch(/nothing was installed/);
      expect(await ids()).not.toContain('team-a');

      const good = await cli(['rules', 'install', join(dir, 'good.yaml'), ...socket]);
      expect(good.code, good.stderr).toBe(0);
      expect(good.stdout).toMatch(/2 rules installed/);
      expect((await gw.api('PATCH', '/v1/rules/block-link-local', { enabled: false })).status).toBe(
        200,
      );
      expect((await gw.api('DELETE', '/v1/rules/block-private-ipv4')).status).toBe(200);
    } finally {
      await gw.stop();
    }

    gw = await startGateway({ dataDir });
    try {
      const rules = (await gw.api('GET', '/v1/rules')).json.rules as {
        id: string;
        enabled: boolean;
        pack_id: string;
      }[];
      const byId = new Map(rules.map((r) => [r.id, r]));
      expect(byId.get('team-first')).toMatchObject({ pack_id: 'runtime', enabled: true });
      expect(byId.has('team-second')).toBe(true);
      expect(byId.get('block-link-local')?.enabled).toBe(false);
      expect(byId.has('block-private-ipv4')).toBe(false);
      // A reload re-reads the packs and keeps the runtime changes.
      expect((await gw.api('POST', '/v1/reload')).status).toBe(200);
      expect(
        ((await gw.api('GET', '/v1/rules')).json.rules as { id: string }[]).some(
          (r) => r.id === 'block-private-ipv4',
        ),
      ).toBe(false);

      const list = await cli(['rules', 'list', '--socket', gw.controlSocket]);
      expect(list.code, list.stderr).toBe(0);
      expect(list.stdout).toMatch(/^ID\s+PACK\s+SOURCE\s+ENABLED\s+MODE\s+ACTION\s+MATCHES$/m);
      expect(list.stdout).toMatch(
        /^team-first\s+runtime\s+runtime \(API\)\s+yes\s+enforce\s+block\s+0$/m,
      );
      expect(list.stdout).toMatch(/^block-link-local\s+balanced\s+pack\s+no\s/m);

      const exported = await cli([
        'rules',
        'export',
        '--socket',
        gw.controlSocket,
        '--id',
        'snapshot',
      ]);
      expect(exported.code, exported.stderr).toBe(0);
      const pack = parsePack(exported.stdout, 'export.yaml');
      expect(pack.ok, JSON.stringify(pack.ok ? null : pack.issues)).toBe(true);
      if (pack.ok) {
        expect(pack.value.pack.id).toBe('snapshot');
        expect(pack.value.pack.rules.map((r) => r.id)).toEqual(
          expect.arrayContaining(['team-first', 'team-second', 'block-link-local']),
        );
      }
    } finally {
      await gw.stop();
    }
  });
});
