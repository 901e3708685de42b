/**
 * The one enforcement primitive every transport uses (HTTP, DNS, MCP, exec): decide safely → fail
 * closed → record. A decision fails closed — `error`, mode `fail_closed` — when
 *
 * - the sink says it cannot record right now (the ledger is down or below its free-space reserve):
 *   nothing is decided, so nothing can reach upstream unrecorded (DESIGN §1); errors carry code
 *   `E_LEDGER`, which HTTP answers with 503 `ledger_unavailable`;
 * - the decider throws (an engine bug): code `E_EVAL` or the error's own code;
 * - recording an allowed decision throws (the ledger closed under it).
 *
 * A decision whose deciding rule says `ask` blocks, unless the decider can hold it for a human
 * approver (`Holding.hold`, docs/approvals.md): then `decideHeld` returns a promise of the decision
 * the approver's answer (or its absence) makes. Everything else stays synchronous.
 *
 * Pure: no I/O beyond the sink it is handed.
 */
import type { BodyAwareDecider, Decider, Decision, Holding } from './decision.js';
import type { EventSink } from './sink.js';
import type { SecurityEvent } from './types.js';

/** The error code of a decision refused because the ledger cannot record. */
export const E_LEDGER = 'E_LEDGER';

/** A decider that may know its plan generation (the gateway's does); failures carry it. */
export type GenerationAware = Decider & { generation?: () => number };

/** What every enforcement point holds: who decides, and where decisions are recorded. */
export interface Enforcement {
  decider: BodyAwareDecider & { generation?: () => number } & Holding;
  sink: EventSink;
}

function generationOf(decider: GenerationAware): number {
  try {
    return decider.generation?.() ?? -1;
  } catch {
    return -1;
  }
}

/** A fail-closed decision: the request is refused because `cause` could not do its part. */
export function failClosed(cause: 'engine' | 'ledger', err: unknown, generation: number): Decision {
  const message = err instanceof Error ? err.message : String(err);
  const code =
    cause === 'ledger'
      ? E_LEDGER
      : (((err as { code?: unknown } | null)?.code as string | undefined) ?? 'E_EVAL');
  return {
    action: 'error',
    rule_id: null,
    reason:
      cause === 'ledger'
        ? `The session ledger cannot record decisions right now (${message}), so celgate refuses this (fail closed).`
        : `The policy engine failed (${message}), so celgate refuses this (fail closed).`,
    mode: 'fail_closed',
    matches: [],
    findings: [],
    errors: [{ rule_id: '', code, message }],
    generation,
    eval_ns: 0,
  };
}

/** Whether a decision was refused because the ledger could not record. */
export function isLedgerRefusal(decision: Decision): boolean {
  return (
    decision.mode === 'fail_closed' &&
    decision.errors.length > 0 &&
    decision.errors[0]!.code === E_LEDGER
  );
}

/** Decides `event`: refused while the sink cannot record; an engine throw fails closed. */
export function decideSafely(e: Enforcement, event: SecurityEvent): Decision {
  const why = e.sink.unavailable?.() ?? null;
  if (why !== null) return failClosed('ledger', why, generationOf(e.decider));
  try {
    return e.decider.decide(event);
  } catch (err) {
    return failClosed('engine', err, generationOf(e.decider));
  }
}

/**
 * Records `decision`; when recording throws, an `allow` becomes a fail-closed `error` (nothing may
 * go upstream unrecorded) and a refusal stays what it was (it is enforced either way).
 */
export function recordSafely(
  e: Pick<Enforcement, 'sink'> & { decider?: GenerationAware },
  event: SecurityEvent,
  decision: Decision,
): Decision {
  try {
    e.sink.decision(event, decision);
    return decision;
  } catch (err) {
    if (decision.action !== 'allow') return decision;
    const refused = failClosed('ledger', err, decision.generation);
    try {
      e.sink.decision(event, refused);
    } catch {
      // The ledger is gone; the refusal is enforced and counted by the sink.
    }
    return refused;
  }
}

/** decideSafely + recordSafely: the decision to enforce, already recorded. */
export function decideAndRecord(e: Enforcement, event: SecurityEvent): Decision {
  return recordSafely(e, event, decideSafely(e, event));
}

/**
 * decideSafely, then — when the deciding rule says `ask` and the decider can hold it — the
 * approver's answer: a Decision now, or a promise of one while the request is held. Never rejects:
 * a holding failure is a fail-closed `error`.
 */
export function decideHeld(e: Enforcement, event: SecurityEvent): Decision | Promise<Decision> {
  const decision = decideSafely(e, event);
  if (decision.ask !== true || e.decider.hold === undefined) return decision;
  let held: Promise<Decision> | Decision | undefined;
  try {
    held = e.decider.hold(event, decision);
  } catch (err) {
    return failClosed('engine', err, decision.generation);
  }
  if (held === undefined) return decision;
  if (!(held instanceof Promise)) return held;
  return held.catch((err: unknown) => failClosed('engine', err, decision.generation));
}

/** decideHeld + recordSafely: the decision to enforce, recorded once it is known. */
export function decideAndRecordHeld(
  e: Enforcement,
  event: SecurityEvent,
): Decision | Promise<Decision> {
  const d = decideHeld(e, event);
  return d instanceof Promise
    ? d.then((x) => recordSafely(e, event, x))
    : recordSafely(e, event, d);
}

/** decideHeld, always as a promise (for callers that await anyway). */
export function decideWithApproval(e: Enforcement, event: SecurityEvent): Promise<Decision> {
  return Promise.resolve(decideHeld(e, event));
}
