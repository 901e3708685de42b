/**
 * The gateway's one EventSink: fans every decided event out to the in-memory counters, the
 * session ledger and one structured log line, and protocol rows to the ledger. A ledger failure is
 * counted and logged, never thrown into transport. Makes no decisions.
 */
import type { Decider, Decision } from '../events/decision.js';
import type { DnsRow, EventSink, ExecRow, McpCallRow, NetRow } from '../events/sink.js';
import type { SecurityEvent } from '../events/types.js';
import type { DecisionCounters } from '../control/counters.js';
import type { Logger } from './logger.js';

export interface FanoutParts {
  counters: DecisionCounters;
  ledger: EventSink;
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

  constructor(private readonly parts: FanoutParts) {}

  decision(event: SecurityEvent, decision: Decision): void {
    this.parts.counters.record(event, decision);
    this.toLedger(() => this.parts.ledger.decision(event, decision));
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

/**
 * Fails closed when the ledger cannot record: while `available()` is false every decision is an
 * `error` (transport answers 502 / SERVFAIL / JSON-RPC error / refused exec), so nothing reaches
 * upstream unrecorded (DESIGN §1). Otherwise the engine decides.
 */
export function ledgerGuard(decider: Decider, ledger: { available(): boolean }, generation: () => number): Decider {
  return {
    decide(event: SecurityEvent): Decision {
      if (ledger.available()) return decider.decide(event);
      return {
        action: 'error',
        rule_id: null,
        reason: 'The session ledger cannot record decisions right now, so celgate refuses this request (fail closed).',
        mode: 'fail_closed',
        matches: [],
        findings: [],
        errors: [{ rule_id: '', code: 'E_LEDGER', message: 'session ledger unavailable' }],
        generation: generation(),
        eval_ns: 0,
      };
    },
  };
}
