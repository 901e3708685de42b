/**
 * The gateway's one EventSink: fans every decided event out to the in-memory counters, the
 * session ledger and one structured log line, and protocol rows to the ledger. It tells the
 * enforcement primitive (src/events/enforce.ts) when the ledger cannot record (`unavailable`), and
 * throws from `decision` when the ledger refuses an append, so an allowed event fails closed
 * instead of going upstream unrecorded. A refused protocol row is counted and logged. Makes no
 * decisions.
 */
import type { Decision } from '../events/decision.js';
import type { DnsRow, EventSink, ExecRow, McpCallRow, NetRow } from '../events/sink.js';
import type { SecurityEvent } from '../events/types.js';
import type { DecisionCounters } from '../control/counters.js';
import type { Logger } from './logger.js';

export interface FanoutParts {
  counters: DecisionCounters;
  ledger: EventSink & { unavailableReason?(): string | null };
  /** `ledger.on_failure`: fail_closed (default) refuses while the ledger cannot record; fail_open
   * lets decisions through unrecorded (counted and logged). */
  onFailure?: 'fail_closed' | 'fail_open';
  logger: Logger;
  /** The logger's pre-serialised info line (GatewayLogger.infoLine); without it, logger.info. */
  infoLine?: (fields: string, msg: string) => void;
}

const q = JSON.stringify;
const num = (n: number) => (Number.isFinite(n) ? String(n) : 'null');

/**
 * The decision line's fields as JSON, in the order and with the omissions `logger.info` of the
 * equivalent object produces (an empty process_name and an empty match list are left out).
 */
export function decisionLogFields(event: SecurityEvent, decision: Decision): string {
  const c = event.common;
  let s = `"event_id":${q(c.event_id)},"session_id":${q(c.session_id)},"event_type":${q(c.event_type)}`;
  if (c.process_name !== '') s += `,"process_name":${q(c.process_name)}`;
  s += `,"decision":${q(decision.action)},"rule_id":${decision.rule_id === null ? 'null' : q(decision.rule_id)},"reason":${q(decision.reason)}`;
  s += `,"mode":${q(decision.mode)},"generation":${num(decision.generation)},"eval_us":${num(Math.round(decision.eval_ns / 100) / 10)}`;
  if (decision.matches.length > 0) s += `,"matches":${q(decision.matches.map((m) => m.rule_id))}`;
  return s;
}

export class FanoutSink implements EventSink {
  /** Appends the ledger refused (it was closed or failed); also logged. */
  ledgerErrors = 0;
  /** Events refused because the ledger could not record (fail_closed), or let through unrecorded (fail_open). */
  ledgerRefusals = 0;
  private lastUnavailable: string | null = null;

  constructor(private readonly parts: FanoutParts) {}

  unavailable(): string | null {
    const why = this.parts.ledger.unavailableReason?.() ?? null;
    if (why !== this.lastUnavailable) {
      // One line when the ledger goes down and one when it recovers, not one per request.
      if (why !== null)
        this.parts.logger.error(
          { reason: why, on_failure: this.parts.onFailure ?? 'fail_closed' },
          'ledger unavailable',
        );
      else this.parts.logger.info({}, 'ledger available again');
      this.lastUnavailable = why;
    }
    if (why === null) return null;
    this.ledgerRefusals++;
    return this.parts.onFailure === 'fail_open' ? null : why;
  }

  decision(event: SecurityEvent, decision: Decision): void {
    try {
      this.parts.ledger.decision(event, decision);
    } catch (err) {
      this.ledgerErrors++;
      this.parts.logger.error({ err: (err as Error).message }, 'ledger append failed');
      if (this.parts.onFailure !== 'fail_open') throw err;
    }
    this.parts.counters.record(event, decision);
    if (this.parts.infoLine !== undefined) {
      this.parts.infoLine(decisionLogFields(event, decision), 'decision');
      return;
    }
    const c = event.common;
    this.parts.logger.info(
      {
        event_id: c.event_id,
        session_id: c.session_id,
        event_type: c.event_type,
        process_name: c.process_name === '' ? undefined : c.process_name,
        decision: decision.action,
        rule_id: decision.rule_id,
        reason: decision.reason,
        mode: decision.mode,
        generation: decision.generation,
        eval_us: Math.round(decision.eval_ns / 100) / 10,
        matches: decision.matches.length === 0 ? undefined : decision.matches.map((m) => m.rule_id),
      },
      'decision',
    );
  }
  net(row: NetRow): void {
    this.toLedger(() => this.parts.ledger.net(row));
  }
  dns(row: DnsRow): void {
    this.toLedger(() => this.parts.ledger.dns(row));
  }
  mcp(row: McpCallRow): void {
    this.toLedger(() => this.parts.ledger.mcp(row));
  }
  exec(row: ExecRow): void {
    this.toLedger(() => this.parts.ledger.exec(row));
  }

  private toLedger(append: () => void): void {
    try {
      append();
    } catch (err) {
      this.ledgerErrors++;
      this.parts.logger.error({ err: (err as Error).message }, 'ledger append failed');
    }
  }
}
