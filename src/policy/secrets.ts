/**
 * The secret guard: placeholder credentials (`celgate-secret-<id>`) may only travel to the hosts
 * their secret belongs to. It wraps the engine's decision for `http.request` events: when the rules
 * allow a request that carries a placeholder of an unknown secret, or of a secret that does not
 * belong to the destination (or would go out without TLS), the decision becomes a block by
 * `celgate.secret-exfiltration` with a high-severity finding. It sees ids, hosts and schemes only —
 * never a secret's value (the transport substitutes values after the decision). Pure.
 */
import {
  builtinBlockMatch,
  type BodyAwareDecider,
  type Decision,
  type Finding,
  type Holding,
} from '../events/decision.js';
import type { HttpRequestEvent, SecurityEvent } from '../events/types.js';

export const SECRET_GUARD_RULE = 'celgate.secret-exfiltration';
export const SECRET_PLACEHOLDER_PREFIX = 'celgate-secret-';
export const SECRET_ID_PATTERN = /^[A-Za-z0-9_]{1,64}$/;

/** What the guard knows of a secret: where it may be sent. */
export interface SecretPolicy {
  id: string;
  /** Exact host names, or `*.suffix` for any subdomain of `suffix` (not `suffix` itself). */
  hosts: readonly string[];
  /** Substituted in request bodies too. */
  in_body: boolean;
  /** May be sent over plain HTTP (default false: only over TLS). */
  allow_plain_http: boolean;
}

/** Whether `host` (canonical: lower case, no trailing dot) matches one of a secret's host patterns. */
export function secretHostMatches(host: string, patterns: readonly string[]): boolean {
  for (const p of patterns) {
    if (p.startsWith('*.')) {
      if (host.endsWith(p.slice(1)) && host.length > p.length - 1) return true;
    } else if (host === p) return true;
  }
  return false;
}

/** Why the secrets an event carries may not go where it goes, or null when they may. */
export function secretRefusal(
  event: HttpRequestEvent,
  catalog: ReadonlyMap<string, SecretPolicy>,
): { reason: string; ids: string[] } | null {
  const r = event.http.request;
  const ids = r.secrets;
  if (ids.length === 0) return null;
  const unknown = ids.filter((id) => !catalog.has(id));
  if (unknown.length > 0) {
    return {
      reason: `the request carries the placeholder of an unknown secret "${unknown[0]}"; known secrets are configured under secrets:`,
      ids: unknown,
    };
  }
  for (const id of ids) {
    const s = catalog.get(id)!;
    if (!secretHostMatches(r.host, s.hosts)) {
      return {
        reason: `secret "${id}" may not be sent to ${r.host}; it belongs to ${s.hosts.join(', ')}`,
        ids: [id],
      };
    }
    if (r.scheme !== 'https' && !s.allow_plain_http) {
      return {
        reason: `secret "${id}" would be sent to ${r.host} without TLS (plain http); it is only sent over https`,
        ids: [id],
      };
    }
  }
  return null;
}

function refusal(
  event: HttpRequestEvent,
  inner: Decision,
  why: { reason: string; ids: string[] },
): Decision {
  const finding: Finding = {
    event_id: event.common.event_id,
    rule_id: SECRET_GUARD_RULE,
    pack_id: 'celgate',
    severity: 'high',
    confidence: 1,
    title: `secret placeholder headed for a host it does not belong to (${why.ids.join(', ')})`,
    tags: ['attack.exfiltration', 'attack.credential-access'],
    matched_fields: ['http.request.secrets', 'http.request.host'],
  };
  return {
    action: 'block',
    rule_id: SECRET_GUARD_RULE,
    reason: why.reason,
    mode: 'enforce',
    matches: [
      builtinBlockMatch(SECRET_GUARD_RULE),
      ...inner.matches.map((m) => (m.decisive ? { ...m, decisive: false } : m)),
    ],
    findings: [finding, ...inner.findings],
    errors: inner.errors,
    generation: inner.generation,
    eval_ns: inner.eval_ns,
  };
}

export type BodyAware = BodyAwareDecider & { generation?: () => number } & Holding;

/**
 * The decider transports use when secrets are configured: the engine first, then the guard on what
 * the engine allowed. `needsBody` also asks for request bodies when a secret is substituted in them.
 */
export function withSecretGuard(
  inner: BodyAware,
  catalog: () => ReadonlyMap<string, SecretPolicy>,
): BodyAware {
  const anyInBody = () => [...catalog().values()].some((s) => s.in_body);
  const guard = (event: SecurityEvent, d: Decision): Decision => {
    if (d.action !== 'allow' || event.common.event_type !== 'http.request') return d;
    const why = secretRefusal(event as HttpRequestEvent, catalog());
    return why === null ? d : refusal(event as HttpRequestEvent, d, why);
  };
  const hold = inner.hold;
  return {
    ...(inner.generation === undefined ? {} : { generation: inner.generation }),
    // An approver's allow passes the same guard as a rule's.
    ...(hold === undefined
      ? {}
      : {
          hold: (event: SecurityEvent, d: Decision) => {
            const h = hold(event, d);
            if (h === undefined) return undefined;
            return h instanceof Promise ? h.then((x) => guard(event, x)) : guard(event, h);
          },
        }),
    ...(inner.mayAsk === undefined ? {} : { mayAsk: inner.mayAsk }),
    decide(event: SecurityEvent): Decision {
      return guard(event, inner.decide(event));
    },
    needsBody: (type) =>
      (inner.needsBody?.(type) ?? false) || (type === 'http.request' && anyInBody()),
  };
}
