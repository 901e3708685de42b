/**
 * CIDR parsing for `cidr` predicates and its lowering to an exact anchored regex over the canonical
 * dotted-decimal text of an IPv4 address (which is how hosts appear in events). Lowering to a regex
 * keeps the predicate inside plain CEL (`matches`), so no custom function is needed. IPv6 CIDRs are
 * refused with a clear message until the compiler offers an address type. Pure; no I/O.
 */

export type CidrParse =
  | { ok: true; octets: [number, number, number, number]; prefix: number }
  | { ok: false; message: string };

const OCTET = /^(0|[1-9]\d{0,2})$/;

export function parseCidr(text: string): CidrParse {
  const slash = text.indexOf('/');
  const addr = slash === -1 ? text : text.slice(0, slash);
  const prefixText = slash === -1 ? '32' : text.slice(slash + 1);
  if (addr.includes(':'))
    return { ok: false, message: `IPv6 CIDR "${text}" is not supported (IPv4 only)` };
  const parts = addr.split('.');
  if (parts.length !== 4 || !parts.every((p) => OCTET.test(p) && Number(p) <= 255)) {
    return { ok: false, message: `"${text}" is not an IPv4 CIDR like 10.0.0.0/8` };
  }
  if (!/^\d{1,2}$/.test(prefixText) || Number(prefixText) > 32)
    return { ok: false, message: `"${text}" has a prefix length outside 0..32` };
  const prefix = Number(prefixText);
  const octets = parts.map(Number) as [number, number, number, number];
  // Normalise host bits away, as Sigma and most tools do (10.1.2.3/8 means 10.0.0.0/8).
  for (let i = 0; i < 4; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    octets[i] = octets[i]! & ((0xff << (8 - bits)) & 0xff);
  }
  return { ok: true, octets, prefix };
}

/** Regex for zero-padded numbers of exactly `width` digits in [lo, hi]. */
function fixedWidth(lo: number, hi: number, width: number): string {
  if (width === 1) return lo === hi ? `${lo}` : `[${lo}-${hi}]`;
  const p = 10 ** (width - 1);
  const hl = Math.floor(lo / p);
  const hh = Math.floor(hi / p);
  if (hl === hh) return `${hl}${fixedWidth(lo % p, hi % p, width - 1)}`;
  const alts: string[] = [];
  alts.push(`${hl}${fixedWidth(lo % p, p - 1, width - 1)}`);
  if (hh - hl > 1)
    alts.push(`${hh - hl === 2 ? hl + 1 : `[${hl + 1}-${hh - 1}]`}\\d{${width - 1}}`);
  alts.push(`${hh}${fixedWidth(0, hi % p, width - 1)}`);
  return `(?:${alts.join('|')})`;
}

/** Regex for decimal numbers without leading zeros in [lo, hi] (0 ≤ lo ≤ hi ≤ 255). */
export function decimalRange(lo: number, hi: number): string {
  const alts: string[] = [];
  for (const [a, b, w] of [
    [0, 9, 1],
    [10, 99, 2],
    [100, 999, 3],
  ] as const) {
    const l = Math.max(lo, a);
    const h = Math.min(hi, b);
    if (l <= h) alts.push(fixedWidth(l, h, w));
  }
  return alts.length === 1 ? alts[0]! : `(?:${alts.join('|')})`;
}

/** Anchored regex matching exactly the IPv4 addresses (canonical text) inside the CIDR. */
export function cidrRegex(text: string): string {
  const c = parseCidr(text);
  if (!c.ok) throw new Error(c.message);
  const parts = c.octets.map((o, i) => {
    const bits = Math.max(0, Math.min(8, c.prefix - i * 8));
    const span = (1 << (8 - bits)) - 1;
    return o === 0 && span === 255 ? decimalRange(0, 255) : decimalRange(o, o + span);
  });
  return `^${parts.join('\\.')}$`;
}
