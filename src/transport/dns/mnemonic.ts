/**
 * DNS type and class mnemonics as rules see them (`dns.request.qtype == "AAAA"`). Unknown codes use
 * the RFC 3597 spelling `TYPE65534` / `CLASS42`. Pure; no I/O.
 */

const TYPES: Record<number, string> = {
  1: 'A',
  2: 'NS',
  5: 'CNAME',
  6: 'SOA',
  12: 'PTR',
  13: 'HINFO',
  15: 'MX',
  16: 'TXT',
  17: 'RP',
  18: 'AFSDB',
  24: 'SIG',
  25: 'KEY',
  28: 'AAAA',
  29: 'LOC',
  33: 'SRV',
  35: 'NAPTR',
  36: 'KX',
  37: 'CERT',
  39: 'DNAME',
  41: 'OPT',
  42: 'APL',
  43: 'DS',
  44: 'SSHFP',
  45: 'IPSECKEY',
  46: 'RRSIG',
  47: 'NSEC',
  48: 'DNSKEY',
  49: 'DHCID',
  50: 'NSEC3',
  51: 'NSEC3PARAM',
  52: 'TLSA',
  53: 'SMIMEA',
  55: 'HIP',
  59: 'CDS',
  60: 'CDNSKEY',
  61: 'OPENPGPKEY',
  62: 'CSYNC',
  63: 'ZONEMD',
  64: 'SVCB',
  65: 'HTTPS',
  99: 'SPF',
  249: 'TKEY',
  250: 'TSIG',
  251: 'IXFR',
  252: 'AXFR',
  255: 'ANY',
  256: 'URI',
  257: 'CAA',
  32768: 'TA',
  32769: 'DLV',
};

const CLASSES: Record<number, string> = { 1: 'IN', 3: 'CH', 4: 'HS', 254: 'NONE', 255: 'ANY' };

const TYPE_CODES = new Map(Object.entries(TYPES).map(([code, name]) => [name, Number(code)]));

export function typeName(code: number): string {
  return TYPES[code] ?? `TYPE${code}`;
}

export function className(code: number): string {
  return CLASSES[code] ?? `CLASS${code}`;
}

/** The numeric code of a type mnemonic (`"AAAA"` → 28, `"TYPE65"` → 65), or null. */
export function typeCode(name: string): number | null {
  const upper = name.toUpperCase();
  const known = TYPE_CODES.get(upper);
  if (known !== undefined) return known;
  const m = /^TYPE([0-9]{1,5})$/.exec(upper);
  if (m === null) return null;
  const n = Number(m[1]);
  return n <= 0xffff ? n : null;
}
