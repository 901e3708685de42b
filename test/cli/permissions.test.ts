/**
 * The data directory stays owner-only: a gateway whose log file lies inside it leaves the
 * directory 0700 (tightened if it was not) and every file it creates there (log, session.db and its WAL, the control socket)
 * 0600, whatever the caller's umask.
 */
import { mkdirSync, mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { startGateway } from '../support/gateway.js';

it('keeps the data directory 0700 and the files in it 0600 when the log file lives there', async () => {
  const dataDir = join(mkdtempSync(join(tmpdir(), 'celgate-perm-')), 'data');
  mkdirSync(dataDir, { mode: 0o755 });
  const gw = await startGateway({
    dataDir,
    config: { log: { file: join(dataDir, 'logs', 'gateway.jsonl') } },
  });
  try {
    const mode = (p: string) => (statSync(p).mode & 0o777).toString(8);
    expect(mode(dataDir)).toBe('700');
    expect(mode(join(dataDir, 'logs'))).toBe('700');
    expect(mode(join(dataDir, 'logs', 'gateway.jsonl'))).toBe('600');
    for (const f of readdirSync(gw.sessionDir))
      expect(`${f} ${mode(join(gw.sessionDir, f))}`).toBe(`${f} 600`);
    expect(mode(gw.controlSocket)).toBe('600');
  } finally {
    await gw.stop();
  }
});
