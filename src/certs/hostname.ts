/**
 * Turns the server name a guest asked for (SNI, CONNECT target) into the subject of a leaf
 * certificate: a lower-case DNS name or a canonical IP literal. Pure; no I/O.
 *
 * The name is guest-controlled, so it is bounded and restricted to the characters a DNS name or an
 * IP literal can contain; anything else is refused with a typed error before any minting happens.
 */
import { isIP } from 'node:net';
import { CelgateError } from '../errors.js';

/** RFC 1035: 253 characters for a presentation-format name without the trailing dot. */
export const MAX_HOSTNAME_LENGTH = 253;
/** RFC 1035: 63 octets per label. */
export const MAX_LABEL_LENGTH = 63;
/** X.520 ub-common-name: a CN longer than this is omitted (the SAN still carries the name). */
export const MAX_COMMON_NAME_LENGTH = 64;

export type LeafSubject =
  { kind: 'dns'; name: string } | { kind: 'ip'; name: string; version: 4 | 6 };

const LABEL = /^(?:\*|[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)$/;

/**
 * Normalises a requested host to the name a leaf certificate is minted for. Accepts DNS names
 * (case-folded, one trailing dot dropped), IPv4 and IPv6 literals (brackets allowed). Throws
 * `E_PARSE` for anything else and `E_LIMIT` for over-long names.
 */
export function leafSubject(requested: string): LeafSubject {
  if (typeof requested !== 'string' || requested.length === 0) {
    throw new CelgateError('E_PARSE', 'a certificate needs a host name, got an empty one');
  }
  if (requested.length > MAX_HOSTNAME_LENGTH + 2) {
    throw new CelgateError('E_LIMIT', `host name longer than ${MAX_HOSTNAME_LENGTH} characters`, {
      details: { length: requested.length },
    });
  }
  let host = requested;
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  const ipVersion = isIP(host);
  if (ipVersion === 4 || ipVersion === 6) {
    // Round-trip through URL to get the canonical text (lower-case, compressed IPv6).
    const canonical = ipVersion === 6 ? new URL(`http://[${host}]/`).hostname.slice(1, -1) : host;
    return { kind: 'ip', name: canonical, version: ipVersion };
  }
  host = host.toLowerCase();
  if (host.endsWith('.')) host = host.slice(0, -1);
  if (host.length === 0 || host.length > MAX_HOSTNAME_LENGTH) {
    throw new CelgateError('E_LIMIT', `host name must be 1..${MAX_HOSTNAME_LENGTH} characters`, {
      details: { length: host.length },
    });
  }
  const labels = host.split('.');
  for (const [index, label] of labels.entries()) {
    if (label.length === 0 || label.length > MAX_LABEL_LENGTH || !LABEL.test(label)) {
      throw new CelgateError(
        'E_PARSE',
        `not a valid host name: ${JSON.stringify(requested.slice(0, 80))}`,
      );
    }
    if (label === '*' && index !== 0) {
      throw new CelgateError('E_PARSE', 'a wildcard is only allowed as the first label');
    }
  }
  return { kind: 'dns', name: host };
}
