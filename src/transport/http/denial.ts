/**
 * The protocol-native HTTP denials of DESIGN §7: 403 for a policy block or a destination the
 * destination guard refuses (destination.ts), 502 for an engine error or an unreachable upstream,
 * 4xx for malformed requests. Bodies are readable by a model: they name the
 * rule and reason and say whether retrying can help. Pure; no I/O.
 */
import type { Decision } from '../../events/index.js';
import { isLedgerRefusal } from '../../events/enforce.js';

export interface Denial {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

export type DenialKind =
  | 'blocked'
  | 'policy_error'
  | 'upstream_error'
  | 'upstream_untrusted'
  | 'bad_request'
  | 'destination_blocked'
  | 'ledger_unavailable';

export interface DenialInput {
  kind: DenialKind;
  status: number;
  rule_id: string | null;
  reason: string;
  event_id: string;
  /** The Accept header of the request ('' when absent). */
  accept: string;
}

const RETRY_HINT: Record<DenialKind, string> = {
  blocked:
    'Retrying will not help: this request is denied by policy. Do not retry it or work around it.',
  policy_error: 'Retrying will not help: the policy engine failed closed for this request.',
  upstream_error:
    'The upstream could not be reached; the request was not delivered. It may work later.',
  upstream_untrusted:
    "Retrying will not help: the upstream's TLS certificate could not be verified for this host, so nothing was sent. Its operator must fix the certificate, or the gateway's operator must trust its CA (http.extra_ca).",
  bad_request:
    'The request is malformed and was not forwarded. Retrying the same request will not help.',
  destination_blocked:
    'Retrying will not help: celgate does not connect requests to loopback, private, link-local or other special-purpose addresses, whatever name leads there.',
  ledger_unavailable:
    'celgate cannot record decisions right now and refuses every request until it can; retry later.',
};

const TITLE: Record<DenialKind, string> = {
  blocked: 'Blocked by celgate policy',
  policy_error: 'celgate policy error',
  upstream_error: 'celgate could not reach the upstream',
  upstream_untrusted: "celgate could not verify the upstream's certificate",
  bad_request: 'Request refused by celgate',
  destination_blocked: 'Destination refused by celgate',
  ledger_unavailable: 'celgate is refusing requests',
};

export function wantsJson(accept: string): boolean {
  return /\bjson\b/i.test(accept);
}

/** The 4xx for input celgate refuses before any rule is asked (no rule, no event). */
export function badRequest(status: number, reason: string, accept = ''): Denial {
  return renderDenial({ kind: 'bad_request', status, rule_id: null, reason, event_id: '', accept });
}

export function renderDenial(d: DenialInput): Denial {
  // The engine's reasons start by naming the rule ("Blocked by rule "x": …"); the title already does.
  const reason =
    d.rule_id === null
      ? d.reason
      : d.reason.replace(
          new RegExp(
            `^(Blocked by|Allowed by) rule "${d.rule_id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}": `,
          ),
          '',
        );
  const message = `${TITLE[d.kind]}${d.rule_id === null ? '' : ` (rule ${d.rule_id})`}: ${reason}`;
  let body: string;
  let type: string;
  if (wantsJson(d.accept)) {
    type = 'application/json; charset=utf-8';
    body = JSON.stringify({
      error: d.kind,
      blocked: d.kind === 'blocked',
      rule_id: d.rule_id,
      reason: d.reason,
      message,
      retry: RETRY_HINT[d.kind],
      event_id: d.event_id,
    });
  } else {
    type = 'text/plain; charset=utf-8';
    body = `${message}\n${RETRY_HINT[d.kind]}\nevent: ${d.event_id}\n`;
  }
  const buf = Buffer.from(body, 'utf8');
  return {
    status: d.status,
    headers: {
      'content-type': type,
      'content-length': String(buf.length),
      'cache-control': 'no-store',
      'x-celgate-decision': d.kind,
      ...(d.rule_id === null ? {} : { 'x-celgate-rule': d.rule_id }),
    },
    body: buf,
  };
}

/** The denial for a non-allow decision: block → 403, error → 502. */
/** TLS verification failures of the upstream: not a transient outage. */
const UNTRUSTED_CODES =
  /^(CERT_|UNABLE_TO_(VERIFY|GET_ISSUER)|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|ERR_TLS_CERT_ALTNAME_INVALID|HOSTNAME_MISMATCH)/;

/** The 502 for an upstream that failed: unreachable (may work later) or untrusted (will not). */
export function upstreamDenial(
  err: Error,
  host: string,
  port: number,
  eventId: string,
  accept: string,
): Denial {
  const code = String(
    (err as { code?: unknown }).code ?? (err as { cause?: { code?: unknown } }).cause?.code ?? '',
  );
  const untrusted =
    UNTRUSTED_CODES.test(code) || /certificate|self[- ]signed|altname/i.test(err.message);
  return renderDenial({
    kind: untrusted ? 'upstream_untrusted' : 'upstream_error',
    status: 502,
    rule_id: null,
    reason: `upstream ${host}:${port} failed: ${err.message}`,
    event_id: eventId,
    accept,
  });
}

/** The rule id of decisions made by the destination guard (docs/http.md, "Destinations"). */
export const DESTINATION_GUARD_RULE = 'celgate.destination-guard';

export function decisionDenial(decision: Decision, eventId: string, accept: string): Denial {
  if (decision.rule_id === DESTINATION_GUARD_RULE)
    return renderDenial({
      kind: 'destination_blocked',
      status: 403,
      rule_id: DESTINATION_GUARD_RULE,
      reason: decision.reason,
      event_id: eventId,
      accept,
    });
  if (isLedgerRefusal(decision))
    return renderDenial({
      kind: 'ledger_unavailable',
      status: 503,
      rule_id: null,
      reason: decision.reason,
      event_id: eventId,
      accept,
    });
  return decision.action === 'block'
    ? renderDenial({
        kind: 'blocked',
        status: 403,
        rule_id: decision.rule_id,
        reason: decision.reason,
        event_id: eventId,
        accept,
      })
    : renderDenial({
        kind: 'policy_error',
        status: 502,
        rule_id: decision.rule_id,
        reason: decision.reason,
        event_id: eventId,
        accept,
      });
}

/** The 403 for a destination the guard refused (an E_DESTINATION error: its message names host, address and range). */
export function destinationDenial(err: Error, eventId: string, accept: string): Denial {
  return renderDenial({
    kind: 'destination_blocked',
    status: 403,
    rule_id: DESTINATION_GUARD_RULE,
    reason: err.message,
    event_id: eventId,
    accept,
  });
}

/**
 * A denial's status line and header block, ending with the blank line; `connection` holds the
 * connection-level lines (each ending in CRLF) and replaces any `connection` field of the denial.
 */
export function denialHead(d: Denial, reasonPhrase: string, connection: string): string {
  let s = `HTTP/1.1 ${d.status} ${reasonPhrase}\r\n`;
  for (const k in d.headers) if (k !== 'connection') s += `${k}: ${d.headers[k]}\r\n`;
  return `${s}${connection}\r\n`;
}

/** Serialises a denial as a raw HTTP/1.1 response that closes the connection (for sockets with no ServerResponse). */
export function rawResponse(d: Denial, reasonPhrase: string): Buffer {
  return Buffer.concat([
    Buffer.from(denialHead(d, reasonPhrase, 'connection: close\r\n'), 'latin1'),
    d.body,
  ]);
}
