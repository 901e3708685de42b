/**
 * The ledger side of an HTTP exchange: one `net_events` row per request (`NetRecord`, written
 * once), the verdict of connection-level rows no request was judged on, and the destination
 * guard's block recorded as a decision.
 *
 * Owns: building and writing net rows. Must not: decide, or write a row twice.
 */
import {
  builtinBlockMatch,
  policyFields,
  type Decision,
  type EventOrigin,
  type EventSink,
  type NetRow,
  type SecurityEvent,
} from '../../events/index.js';
import { recordSafely } from '../../events/enforce.js';
import { DESTINATION_GUARD_RULE as GUARD_RULE } from './denial.js';
import type { ExchangeContext, RequestTarget } from './target.js';

/** Tracks one request's ledger row; `finish` writes it once. */
export class NetRecord {
  bytesIn = 0;
  bytesOut = 0;
  error: string | null = null;
  event: SecurityEvent | null = null;
  decision: Decision | null = null;
  private written = false;
  private readonly start = performance.now();
  constructor(
    private readonly sink: EventSink,
    private readonly ctx: ExchangeContext,
    private readonly method: string,
    private target: RequestTarget | null,
    private readonly origin: EventOrigin,
  ) {}
  setTarget(t: RequestTarget): void {
    this.target = t;
  }
  finish(status: number | null): void {
    if (this.written) return;
    this.written = true;
    writeNetRow(this.sink, {
      ctx: this.ctx,
      method: this.method,
      target: this.target,
      event: this.event,
      decision: this.decision,
      status,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      durationMs: performance.now() - this.start,
      error: this.error,
      sessionOrigin: this.origin,
    });
  }
}

export interface NetRowInput {
  ctx: ExchangeContext;
  method: string;
  target: RequestTarget | null;
  event: SecurityEvent | null;
  decision: Decision | null;
  status: number | null;
  bytesIn: number;
  bytesOut: number;
  durationMs: number;
  error: string | null;
  sessionOrigin?: EventOrigin;
}

/**
 * What a connection-level row (no request was judged) records: celgate's own refusals are blocks
 * with a reason; a failure on the client's side — it rejected the certificate or dropped the
 * handshake — is an `error` that says no policy decided.
 */
function connectionVerdict(error: string | null): {
  decision: 'block' | 'error';
  rule_id: null;
  reason: string;
} {
  if (
    error === 'tls_handshake' ||
    error === 'client_aborted' ||
    error === 'tls_handshake_timeout'
  ) {
    return {
      decision: 'error',
      rule_id: null,
      reason:
        error === 'tls_handshake'
          ? 'the client ended the TLS handshake (it may not trust the celgate CA); no policy decided'
          : error === 'tls_handshake_timeout'
            ? 'the client did not finish the TLS handshake in time; no policy decided'
            : 'the client went away before its request was judged; no policy decided',
    };
  }
  return {
    decision: 'block',
    rule_id: null,
    reason: `refused before a decision: ${error ?? 'unknown'}`,
  };
}

/**
 * The decision for a request the destination guard refused (`err` names host, address and range):
 * a block by `celgate.destination-guard`, counted like any rule's.
 */
export function destinationDecision(err: Error, generation: number): Decision {
  return {
    action: 'block',
    rule_id: GUARD_RULE,
    reason: err.message,
    mode: 'enforce',
    matches: [builtinBlockMatch(GUARD_RULE)],
    findings: [],
    errors: [],
    generation,
    eval_ns: 0,
  };
}

/**
 * Records a destination refusal found after the rules allowed the request (a name that resolved
 * to a refused address at connect time): the guard's block is recorded for the event and becomes
 * the row's decision.
 */
export function recordDestinationRefusal(
  deps: { sink: EventSink },
  rec: NetRecord,
  event: SecurityEvent,
  err: Error,
): void {
  const d = destinationDecision(err, rec.decision?.generation ?? -1);
  rec.decision = recordSafely(deps, event, d);
  rec.error = 'destination_blocked';
}

export function writeNetRow(sink: EventSink, r: NetRowInput): void {
  const t = r.target;
  const policy =
    r.event !== null && r.decision !== null
      ? policyFields(r.event, r.decision)
      : {
          event_id: crypto.randomUUID(),
          session_id: r.sessionOrigin?.session_id ?? '',
          timestamp_ms: Date.now(),
          ...connectionVerdict(r.error),
          generation: 0,
          process_name: r.ctx.meta.process_name ?? '',
        };
  // Fields are copied by name, not spread: on the per-request path an object spread followed by
  // fourteen more properties cost ~25 µs per row in the profile (slow map transitions).
  const row: NetRow = {
    event_id: policy.event_id,
    session_id: policy.session_id,
    timestamp_ms: policy.timestamp_ms,
    decision: policy.decision,
    rule_id: policy.rule_id,
    reason: policy.reason,
    generation: policy.generation,
    process_name: policy.process_name,
    scheme: t?.scheme ?? r.ctx.scheme,
    method: r.method,
    host: t?.host ?? r.ctx.sniHost,
    port: t?.port ?? r.ctx.port,
    path: t?.path ?? '',
    query: t?.query ?? '',
    sni: r.ctx.sniHost,
    host_header_mismatch: t?.hostHeaderMismatch ?? '',
    status: r.status,
    bytes_in: r.bytesIn,
    bytes_out: r.bytesOut,
    duration_ms: Math.round(r.durationMs * 1000) / 1000,
    error: r.error,
  };
  try {
    sink.net(row);
  } catch {
    // The ledger failing after the response was decided cannot un-send it; the decision row carried it.
  }
}
