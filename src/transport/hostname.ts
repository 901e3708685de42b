/**
 * The one canonical form of a host name, used for every place a guest names a host — TLS SNI, the
 * Host header, absolute-form request targets, CONNECT targets — so rules and the ledger always see
 * the same string for the same host: lower case, no trailing dot, no empty labels. A name that
 * cannot be put in that form is refused, never passed on as it came (`blocked.test..` would match
 * neither `== "blocked.test"` nor `endsWith(".blocked.test")`). DNS qnames are built in this form
 * by the wire parser (src/transport/dns/wire.ts). Pure.
 */

export const MAX_HOST_LENGTH = 253;
export const MAX_LABEL_LENGTH = 63;

export type CanonicalHost = { ok: true; host: string } | { ok: false; reason: string };

/** Canonicalises a DNS name or IP literal as a guest wrote it (without brackets or port). */
export function canonicalHost(raw: string): CanonicalHost {
  let host = raw.toLowerCase();
  if (host.endsWith('.')) host = host.slice(0, -1);
  if (host === '') return { ok: false, reason: 'the host name is empty' };
  if (host.includes(':')) return { ok: true, host }; // an IPv6 literal: no labels
  if (host.startsWith('.') || host.endsWith('.') || host.includes('..'))
    return { ok: false, reason: `the host name "${raw}" has an empty label` };
  if (host.length > MAX_HOST_LENGTH)
    return { ok: false, reason: `the host name is longer than ${MAX_HOST_LENGTH} characters` };
  for (const label of host.split('.')) {
    if (label.length > MAX_LABEL_LENGTH)
      return {
        ok: false,
        reason: `a label of the host name is longer than ${MAX_LABEL_LENGTH} characters`,
      };
  }
  return { ok: true, host };
}
