import Database from 'better-sqlite3';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Decision } from '../../src/events/decision.js';
import { LedgerWriter } from '../../src/store/writer.js';
import { blockDecision, httpEvent } from './fixtures/events.js';

describe('detection findings in session.db', () => {
  it('writes every finding of a batch next to its security_events row', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'celgate-findings-')), 'session.db');
    const w = new LedgerWriter(path);
    const events = Array.from({ length: 300 }, (_, i) => httpEvent(i));
    for (const ev of events) {
      const d: Decision = {
        ...blockDecision('block-upload', 2),
        findings: [
          {
            event_id: ev.common.event_id,
            rule_id: 'google-secret',
            pack_id: 'ir',
            severity: 'high',
            confidence: 0.9,
            title: 'Google secret egress',
            tags: ['attack.exfiltration'],
            matched_fields: ['http.request.host'],
          },
        ],
      };
      w.decision(ev, d);
    }
    w.close();
    const db = new Database(path, { readonly: true });
    expect((db.prepare('SELECT COUNT(*) AS n FROM security_events').get() as { n: number }).n).toBe(
      300,
    );
    const rows = db
      .prepare(
        'SELECT f.event_id, f.rule_id, f.severity, e.event_id AS joined FROM detection_findings f JOIN security_events e ON e.seq = f.event_seq',
      )
      .all() as { event_id: string; joined: string }[];
    expect(rows).toHaveLength(300);
    for (const r of rows) expect(r.joined).toBe(r.event_id);
  });

  it('writes every rule match when matches fill a batch before their events do', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'celgate-findings-')), 'session.db');
    const w = new LedgerWriter(path);
    const base = blockDecision('block-upload', 2);
    const three = {
      ...base,
      matches: [...base.matches, { ...base.matches[0]!, rule_id: 'third-match' }],
    };
    expect(three.matches).toHaveLength(3);
    for (let i = 0; i < 101; i++) w.decision(httpEvent(i), three);
    w.close();
    const db = new Database(path, { readonly: true });
    expect((db.prepare('SELECT COUNT(*) AS n FROM security_events').get() as { n: number }).n).toBe(
      101,
    );
    expect((db.prepare('SELECT COUNT(*) AS n FROM rule_matches').get() as { n: number }).n).toBe(
      303,
    );
  });
});
