/**
 * The destination guard. Rules judge the name the guest asked for (SNI, Host), before any
 * connection exists; but a name can resolve anywhere — `metadata.attacker.example` →
 * 169.254.169.254, `x.nip.io` → 127.0.0.1, or an answer that changes between two lookups (DNS
 * rebinding) — which would take a guest around `balanced`'s "no metadata, link-local or private
 * destinations". So the ADDRESS is checked where it is used: in the lookup of the very connection
 * that is made (no gap between check and use), and for IP literals before connecting. A
 * special-purpose address (loopback, private, link-local, CGNAT, multicast, reserved, …) is
 * refused unless the operator allowed its range (`http.allow_private_destinations`). Destinations
 * from the operator's upstream map are the operator's choice and are not checked.
 *
 * Owns: address classification and the guarded lookup. Must not: judge names or requests (that is
 * policy) — this is a connect-time limit, like the connection caps.
 */
import dns from 'node:dns';
import net from 'node:net';
import { CelgateError, type Issue, type Validated } from '../../errors.js';

export interface SpecialRange {
  cidr: string;
  label: string;
}

/** IANA special-purpose ranges a guest's request is never connected to by default. IPv4-mapped
 * IPv6 addresses (`::ffff:127.0.0.1`) match the IPv4 ranges. */
export const SPECIAL_RANGES: readonly SpecialRange[] = [
  { cidr: '0.0.0.0/8', label: '"this network"' },
  { cidr: '10.0.0.0/8', label: 'private (RFC 1918)' },
  { cidr: '100.64.0.0/10', label: 'shared address space / CGNAT (RFC 6598)' },
  { cidr: '127.0.0.0/8', label: 'loopback' },
  { cidr: '169.254.0.0/16', label: 'link-local, where cloud metadata services live' },
  { cidr: '172.16.0.0/12', label: 'private (RFC 1918)' },
  { cidr: '192.0.0.0/24', label: 'IETF protocol assignments' },
  { cidr: '192.168.0.0/16', label: 'private (RFC 1918)' },
  { cidr: '198.18.0.0/15', label: 'benchmarking (RFC 2544)' },
  { cidr: '224.0.0.0/4', label: 'multicast' },
  { cidr: '240.0.0.0/4', label: 'reserved / broadcast' },
  { cidr: '::/128', label: 'unspecified' },
  { cidr: '::1/128', label: 'loopback' },
  { cidr: '64:ff9b:1::/48', label: 'local-use NAT64' },
  { cidr: '100::/64', label: 'discard-only' },
  { cidr: 'fc00::/7', label: 'unique-local (private)' },
  { cidr: 'fe80::/10', label: 'link-local' },
  { cidr: 'ff00::/8', label: 'multicast' },
];

type Family = 'ipv4' | 'ipv6';

interface Cidr {
  address: string;
  prefix: number;
  family: Family;
}

/** `a.b.c.d/n`, `x::y/n`, or a bare address (one host). */
export function parseCidr(text: string): Cidr | null {
  const slash = text.indexOf('/');
  const address = (slash < 0 ? text : text.slice(0, slash)).trim();
  const v = net.isIP(address);
  if (v === 0) return null;
  const family: Family = v === 4 ? 'ipv4' : 'ipv6';
  const max = v === 4 ? 32 : 128;
  const p = slash < 0 ? String(max) : text.slice(slash + 1).trim();
  if (!/^\d{1,3}$/.test(p) || Number(p) > max) return null;
  return { address, prefix: Number(p), family };
}

/** Parses the operator's allowed ranges; each bad entry is an issue naming it. */
export function parseAllowedRanges(entries: readonly string[]): Validated<Cidr[]> {
  const issues: Issue[] = [];
  const out: Cidr[] = [];
  entries.forEach((e, i) => {
    const c = parseCidr(e);
    if (c === null)
      issues.push({
        path: `[${i}]`,
        message: `"${e}" is not an IP range (a.b.c.d/n, x::y/n, or one address)`,
      });
    else out.push(c);
  });
  return issues.length > 0 ? { ok: false, issues } : { ok: true, value: out };
}

export type Verdict = { ok: true } | { ok: false; range: SpecialRange };

function familyOf(address: string): Family | null {
  const v = net.isIP(address);
  return v === 4 ? 'ipv4' : v === 6 ? 'ipv6' : null;
}

export class DestinationGuard {
  private readonly allowed = new net.BlockList();
  /** One list per range, so a refusal can name its range (checked on new connections only). */
  private readonly ranges: { range: SpecialRange; list: net.BlockList }[] = [];

  constructor(allow: readonly Cidr[] = []) {
    for (const r of SPECIAL_RANGES) {
      const c = parseCidr(r.cidr)!;
      const list = new net.BlockList();
      list.addSubnet(c.address, c.prefix, c.family);
      this.ranges.push({ range: r, list });
    }
    for (const c of allow) this.allowed.addSubnet(c.address, c.prefix, c.family);
  }

  /** Whether a guest's request may be connected to `address` (an IP literal). */
  check(address: string): Verdict {
    const family = familyOf(address);
    if (family === null || this.allowed.check(address, family)) return { ok: true };
    const hit = this.ranges.find((r) => r.list.check(address, family));
    return hit === undefined ? { ok: true } : { ok: false, range: hit.range };
  }

  /** The error a refused destination fails its connection with. */
  refusal(host: string, address: string, range: SpecialRange): CelgateError {
    const what = host === address ? address : `${host} resolves to ${address}`;
    return new CelgateError(
      'E_DESTINATION',
      `${what} (${range.label}, ${range.cidr}): celgate does not connect a guest's request to loopback, private, link-local or other special-purpose addresses`,
      { details: { host, address, range: range.cidr } },
    );
  }

  /**
   * A `lookup` for net/tls connect options: resolves like dns.lookup, keeps only the addresses the
   * guard allows, and fails with E_DESTINATION when none is left.
   */
  readonly lookup = (
    hostname: string,
    options: dns.LookupOptions,
    callback: (...args: any[]) => void,
  ): void => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) {
        callback(err);
        return;
      }
      const ok = addresses.filter((a) => this.check(a.address).ok);
      if (ok.length === 0) {
        const first = addresses[0];
        const v = first === undefined ? null : this.check(first.address);
        callback(
          first !== undefined && v !== null && !v.ok
            ? this.refusal(hostname, first.address, v.range)
            : new CelgateError('E_DESTINATION', `${hostname} resolved to no address`),
        );
        return;
      }
      if (options.all === true) callback(null, ok);
      else callback(null, ok[0]!.address, ok[0]!.family);
    });
  };
}

/** The guard for a list of allowed ranges; a bad range is an E_CONFIG naming it. */
export function destinationGuard(
  allow: readonly string[],
  key = 'http.allow_private_destinations',
): DestinationGuard {
  const parsed = parseAllowedRanges(allow);
  if (!parsed.ok)
    throw new CelgateError(
      'E_CONFIG',
      `${key}: ${parsed.issues.map((i) => `${i.path} ${i.message}`).join('; ')}`,
    );
  return new DestinationGuard(parsed.value);
}
