/**
 * The names a fleet shares on NATS: the KV buckets, the event stream, its subjects and message ids.
 * Pure: no I/O. Subject tokens may not contain `.`, `*`, `>` or whitespace, so ids are made safe
 * here once, and every publisher and reader builds subjects through these functions.
 */
import type { ExportKind } from '../store/export-rows.js';

export const DEFAULT_PACKS_BUCKET = 'celgate-packs';
export const DEFAULT_STATUS_BUCKET = 'celgate-status';
export const DEFAULT_STREAM = 'CELGATE_EVENTS';
export const SUBJECT_ROOT = 'celgate.events';

/** Gateway ids are chosen by the operator and appear in subjects and status keys. */
export const GATEWAY_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
/** Pack ids become KV keys (DESIGN §5's rule-id alphabet fits NATS's key alphabet). */
export const PACK_KEY_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/** A subject token for an id that may contain `.` (session ids may): `.` → `_`, anything else unsafe → `-`. */
export function subjectToken(id: string): string {
  const t = id.replace(/\./g, '_').replace(/[^A-Za-z0-9_-]/g, '-');
  return t === '' ? '_' : t;
}

/** `celgate.events.<gateway>.<session>.<family>` */
export function eventSubject(gatewayId: string, sessionId: string, family: string): string {
  return `${SUBJECT_ROOT}.${subjectToken(gatewayId)}.${subjectToken(sessionId)}.${subjectToken(family)}`;
}

/** A filter over the stream; omitted parts match any token. */
export function eventFilter(f: {
  gateway?: string | undefined;
  session?: string | undefined;
  family?: string | undefined;
}): string {
  const part = (v: string | undefined) => (v === undefined || v === '' ? '*' : subjectToken(v));
  return `${SUBJECT_ROOT}.${part(f.gateway)}.${part(f.session)}.${part(f.family)}`;
}

/**
 * The JetStream de-duplication id of one ledger row: the event id for the decision, and the event
 * id qualified by the row's kind for the rows that share it (one protocol row per event, one
 * finding per rule).
 */
export function messageId(kind: ExportKind, eventId: string, ruleId?: string | null): string {
  if (kind === 'decision') return eventId;
  if (kind === 'finding') return `${eventId}:finding:${ruleId ?? ''}`;
  return `${eventId}:${kind}`;
}
