import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { FanoutSink } from '../../src/gateway/sink.js';
import { decideAndRecord } from '../../src/events/enforce.js';
import { DecisionCounters, LATENCY_WINDOW } from '../../src/control/counters.js';
import { LedgerWriter } from '../../src/store/writer.js';
import {
  allowDecision,
  blockDecision,
  dnsEvent,
  execEvent,
  httpEvent,
} from '../store/fixtures/events.js';

describe('decision counters', () => {
  it('counts events, allowed, blocked and errors per family', () => {
    const c = new DecisionCounters();
    c.record(httpEvent(), allowDecision());
    c.record(httpEvent(), blockDecision());
    c.record(dnsEvent(), { ...allowDecision(), action: 'error' });
    const s = c.snapshot();
    expect(s.http).toMatchObject({ events: 2, allowed: 1, blocked: 1, errors: 0 });
    expect(s.dns).toMatchObject({ events: 1, errors: 1 });
    expect(s.process.events).toBe(0);
    expect(c.totals()).toEqual({ events: 3, allowed: 1, blocked: 1, errors: 1 });
  });

  it('reports decide-time percentiles over the recent window and the all-time max', () => {
    const c = new DecisionCounters();
    for (let i = 1; i <= 100; i++) c.record(execEvent(), { ...allowDecision(), eval_ns: i * 1000 });
    const l = c.snapshot().process.latency;
    expect(l).toEqual({
      samples: 100,
      p50_ns: 50_000,
      p95_ns: 95_000,
      p99_ns: 99_000,
      max_ns: 100_000,
    });
    for (let i = 0; i < LATENCY_WINDOW; i++)
      c.record(execEvent(), { ...allowDecision(), eval_ns: 1 });
    const after = c.snapshot().process.latency;
    expect(after).toMatchObject({ samples: LATENCY_WINDOW, p99_ns: 1, max_ns: 100_000 });
  });
});

describe('the gateway sink', () => {
  it('fans a decision out to counters, the ledger and one log line naming event, session, type, decision, rule and reason', () => {
    const lines: any[] = [];
    const out = new Writable({
      write: (chunk, _e, cb) => (lines.push(JSON.parse(String(chunk))), cb()),
    });
    const ledger = new LedgerWriter(
      join(mkdtempSync(join(tmpdir(), 'celgate-sink-')), 'session.db'),
    );
    const counters = new DecisionCounters();
    const sink = new FanoutSink({ counters, ledger, logger: pino(out) });
    const e = httpEvent();
    sink.decision(e, blockDecision('r-x'));
    expect(counters.totals().blocked).toBe(1);
    expect(ledger.stats().queued).toBe(1);
    expect(lines[0]).toMatchObject({
      msg: 'decision',
      event_id: e.common.event_id,
      session_id: 'store-test',
      event_type: 'http.request',
      decision: 'block',
      rule_id: 'r-x',
      reason: 'Blocked by r-x.',
    });
    ledger.close();
    // A refused append is thrown to the enforcement primitive (an allow must not go through unrecorded).
    expect(() => sink.decision(httpEvent(), allowDecision())).toThrow(/closed/);
    expect(sink.ledgerErrors).toBe(1);
    expect(lines.at(-1)).toMatchObject({ msg: 'ledger append failed' });
  });

  it('fails closed while the ledger cannot record, and lets through with on_failure: fail_open', () => {
    const quiet = pino({ level: 'silent' });
    for (const onFailure of ['fail_closed', 'fail_open'] as const) {
      const ledger = new LedgerWriter(
        join(mkdtempSync(join(tmpdir(), 'celgate-sink-')), 'session.db'),
      );
      const sink = new FanoutSink({
        counters: new DecisionCounters(),
        ledger,
        logger: quiet,
        onFailure,
      });
      const e = { decider: { decide: () => allowDecision(9), generation: () => 9 }, sink };
      expect(decideAndRecord(e, dnsEvent()).action).toBe('allow');
      ledger.close();
      const d = decideAndRecord(e, dnsEvent());
      if (onFailure === 'fail_closed') {
        expect(d).toMatchObject({
          action: 'error',
          mode: 'fail_closed',
          generation: 9,
          errors: [{ code: 'E_LEDGER' }],
        });
        expect(d.reason).toMatch(/ledger is closed/);
      } else {
        expect(d.action).toBe('allow');
      }
      expect(sink.ledgerRefusals).toBe(1);
    }
  });
});
