/**
 * The `approvals` table (schema v4): a session.db written by the previous version (v3) opens, gains
 * the table, and the writer records an approval with its answer, who gave it and the wait.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { expect, it } from 'vitest';
import { MIGRATIONS, SCHEMA_VERSION } from '../../src/store/schema.js';
import { LedgerWriter } from '../../src/store/writer.js';
import { allowDecision, httpEvent } from '../store/fixtures/events.js';

it('opens a v3 session.db, adds the approvals table and records held answers in it', () => {
  const path = join(mkdtempSync(join(tmpdir(), 'celgate-approvals-')), 'session.db');
  const v3 = new Database(path);
  for (const m of MIGRATIONS.slice(0, 3)) v3.exec(m);
  v3.pragma('user_version = 3');
  v3.close();

  const w = new LedgerWriter(path, undefined, { minFreeBytes: 0 });
  const event = httpEvent(1);
  w.decision(event, {
    ...allowDecision(),
    rule_id: 'ask-api',
    reason: 'Allowed by an approver (control-socket) for rule "ask-api" (api).',
    ask: true,
    approval: {
      id: 'a-1',
      answer: 'allow',
      by: 'control-socket',
      waited_ms: 1234,
      remember: 'session',
      protocol: 'http',
      target: 'GET https://api.test/x',
    },
  });
  w.decision(httpEvent(2), allowDecision());
  w.close();

  const db = new Database(path, { readonly: true });
  try {
    expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    const rows = db.prepare('SELECT * FROM approvals').all();
    expect(rows).toEqual([
      {
        seq: 1,
        event_seq: expect.any(Number),
        event_id: event.common.event_id,
        timestamp_ms: event.common.timestamp_ms,
        approval_id: 'a-1',
        rule_id: 'ask-api',
        protocol: 'http',
        target: 'GET https://api.test/x',
        answer: 'allow',
        answered_by: 'control-socket',
        waited_ms: 1234,
        remember: 'session',
      },
    ]);
    const ev = db
      .prepare('SELECT decision, rule_id FROM security_events WHERE event_id = ?')
      .get(event.common.event_id);
    expect(ev).toEqual({ decision: 'allow', rule_id: 'ask-api' });
  } finally {
    db.close();
  }
});
