import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { startGateway } from '../support/gateway.js';

const CHILD = fileURLToPath(new URL('./fixtures/append-forever.mjs', import.meta.url));

describe('ledger durability', () => {
  it('leaves a file that passes integrity_check after kill -9 in the middle of appending', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'celgate-crash-')), 'session.db');
    const child = spawn(process.execPath, [CHILD, path], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += c));
    await new Promise<void>((resolve, reject) => {
      let seen = 0;
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        for (const line of chunk.split('\n')) if (Number(line) > 0) seen++;
        if (seen >= 3) resolve();
      });
      child.once('exit', (code) => reject(new Error(`appender exited ${code}: ${stderr}`)));
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const db = new Database(path);
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    const events = (db.prepare('SELECT COUNT(*) AS n FROM security_events').get() as { n: number })
      .n;
    const matches = (db.prepare('SELECT COUNT(*) AS n FROM rule_matches').get() as { n: number }).n;
    expect(events).toBeGreaterThan(0);
    expect(matches).toBe(events); // batches are all-or-nothing: every event row has its match row
    db.close();
  });

  it('writes every acknowledged decision before a clean SIGTERM shutdown and logs a summary', async () => {
    const gw = await startGateway();
    const N = 300;
    const ids: string[] = [];
    for (let i = 0; i < N; i++) {
      const r = await gw.api('POST', '/v1/evaluate', {
        event: { event_type: 'dns.request', dns: { request: { qname: `n${i}.example` } } },
      });
      ids.push(r.json.event_id);
    }
    expect(await gw.stop()).toBe(0);
    const db = new Database(gw.sessionDb, { readonly: true });
    expect((db.prepare('SELECT COUNT(*) AS n FROM security_events').get() as { n: number }).n).toBe(
      N,
    );
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    expect(
      (db.prepare('SELECT ended_ms FROM sessions').get() as { ended_ms: number }).ended_ms,
    ).toBeGreaterThan(0);
    db.close();
    const summary = gw.logs().find((l) => l.msg === 'summary');
    expect(summary).toMatchObject({
      totals: { events: N },
      ledger_rows: N,
      ledger_failed_batches: 0,
    });
  });
});
