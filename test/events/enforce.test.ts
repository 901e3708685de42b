/**
 * The one enforcement primitive (src/events/enforce.ts): refuse while the sink cannot record,
 * fail closed on an engine throw, turn an allow the ledger refuses into an error, and carry the
 * plan generation on every fail-closed decision.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Decision } from '../../src/events/decision.js';
import {
  decideAndRecord,
  decideSafely,
  E_LEDGER,
  failClosed,
  isLedgerRefusal,
  recordSafely,
} from '../../src/events/enforce.js';
import type { EventSink } from '../../src/events/sink.js';
import { LedgerWriter } from '../../src/store/writer.js';
import { allowDecision, blockDecision, dnsEvent } from '../store/fixtures/events.js';

function sink(over: Partial<EventSink> = {}): EventSink & { recorded: Decision[] } {
  const recorded: Decision[] = [];
  return {
    recorded,
    decision: (_e, d) => void recorded.push(d),
    net() {},
    dns() {},
    mcp() {},
    exec() {},
    ...over,
  };
}

describe('the enforcement primitive', () => {
  it('decides and records when the sink can record', () => {
    const s = sink();
    const d = decideAndRecord(
      { decider: { decide: () => blockDecision('r') }, sink: s },
      dnsEvent(),
    );
    expect(d.action).toBe('block');
    expect(s.recorded).toEqual([d]);
  });

  it('refuses without deciding while the sink cannot record (E_LEDGER, the generation kept)', () => {
    let decided = 0;
    const s = sink({ unavailable: () => 'disk full' });
    const d = decideAndRecord(
      { decider: { decide: () => (decided++, allowDecision()), generation: () => 7 }, sink: s },
      dnsEvent(),
    );
    expect(decided).toBe(0);
    expect(d).toMatchObject({
      action: 'error',
      mode: 'fail_closed',
      generation: 7,
      errors: [{ code: E_LEDGER, message: 'disk full' }],
    });
    expect(isLedgerRefusal(d)).toBe(true);
    expect(s.recorded).toEqual([d]);
  });

  it('fails closed when the engine throws, with the engine error code', () => {
    const err = Object.assign(new Error('boom'), { code: 'E_CEL' });
    const d = decideSafely(
      {
        decider: {
          decide: () => {
            throw err;
          },
          generation: () => 3,
        },
        sink: sink(),
      },
      dnsEvent(),
    );
    expect(d).toMatchObject({
      action: 'error',
      mode: 'fail_closed',
      generation: 3,
      errors: [{ code: 'E_CEL', message: 'boom' }],
    });
    expect(d.reason).toContain('policy engine failed (boom)');
    expect(isLedgerRefusal(d)).toBe(false);
    expect(failClosed('engine', 'x', -1).generation).toBe(-1);
  });

  it('turns an allow the ledger refuses into a fail-closed error, and keeps a refusal what it was', () => {
    const throwing = sink({
      decision: () => {
        throw new Error('the session ledger is closed');
      },
    });
    expect(recordSafely({ sink: throwing }, dnsEvent(), allowDecision(4))).toMatchObject({
      action: 'error',
      generation: 4,
      errors: [{ code: E_LEDGER }],
    });
    expect(recordSafely({ sink: throwing }, dnsEvent(), blockDecision('r')).action).toBe('block');
  });

  it('a ledger below its free-space reserve says so (and one with no reserve does not)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'celgate-enforce-'));
    const tight = new LedgerWriter(join(dir, 'a.db'), undefined, {
      minFreeBytes: Number.MAX_SAFE_INTEGER,
    });
    expect(tight.unavailableReason()).toMatch(/below ledger\.min_free_bytes/);
    tight.close();
    const none = new LedgerWriter(join(dir, 'b.db'), undefined, { minFreeBytes: 0 });
    expect(none.unavailableReason()).toBeNull();
    none.close();
    expect(none.unavailableReason()).toBe('the session ledger is closed');
  });
});
