/**
 * Bounded, structural reading of DNS wire format: names (with compression pointers), questions and
 * resource-record framing. This is the layer that makes hostile bytes safe before anything richer
 * (dns-packet) looks at them: every read is bounds-checked, pointers must point strictly backwards
 * (so they cannot loop), hops, label and name lengths are capped. Pure; no I/O, never throws.
 */
import { MAX_LABEL_BYTES, MAX_NAME_BYTES, MAX_POINTER_HOPS } from './limits.js';

/** Why a message was rejected. Stable strings: they are logged and counted. */
export type DnsProblem =
  | 'empty'
  | 'truncated_header'
  | 'too_large'
  | 'not_a_query'
  | 'unsupported_opcode'
  | 'no_question'
  | 'too_many_questions'
  | 'too_many_records'
  | 'truncated_name'
  | 'label_too_long'
  | 'name_too_long'
  | 'pointer_loop'
  | 'pointer_into_header'
  | 'pointer_hops'
  | 'reserved_label_type'
  | 'truncated_record'
  | 'lying_counts'
  | 'trailing_bytes'
  | 'duplicate_opt'
  | 'bad_opt'
  | 'bad_edns_version'
  | 'undecodable';

export type WireResult<T> =
  { ok: true; value: T; end: number } | { ok: false; problem: DnsProblem; at: number };

const HEADER_BYTES = 12;

/**
 * Reads the name at `offset`. Returns the labels in presentation form (lower-cased ASCII, with `.`,
 * `\` and non-printable bytes escaped as RFC 4343 / RFC 1035 §5.1 do) and the offset just past the
 * name's in-place bytes.
 */
export function readName(buf: Uint8Array, offset: number): WireResult<string> {
  let pos = offset;
  let end = -1; // offset after the in-place part, fixed at the first pointer
  let segmentStart = offset; // a pointer must land strictly before the segment it was read in
  let wireLength = 1; // the terminating root label
  let hops = 0;
  const labels: string[] = [];
  for (;;) {
    if (pos >= buf.length) return { ok: false, problem: 'truncated_name', at: pos };
    const len = buf[pos]!;
    const kind = len & 0xc0;
    if (kind === 0xc0) {
      if (pos + 1 >= buf.length) return { ok: false, problem: 'truncated_name', at: pos };
      const target = ((len & 0x3f) << 8) | buf[pos + 1]!;
      if (end < 0) end = pos + 2;
      if (target < HEADER_BYTES) return { ok: false, problem: 'pointer_into_header', at: pos };
      if (target >= segmentStart) return { ok: false, problem: 'pointer_loop', at: pos };
      if (++hops > MAX_POINTER_HOPS) return { ok: false, problem: 'pointer_hops', at: pos };
      pos = target;
      segmentStart = target;
      continue;
    }
    if (kind !== 0) return { ok: false, problem: 'reserved_label_type', at: pos };
    if (len === 0) {
      if (end < 0) end = pos + 1;
      return { ok: true, value: labels.join('.'), end };
    }
    if (len > MAX_LABEL_BYTES) return { ok: false, problem: 'label_too_long', at: pos };
    wireLength += len + 1;
    if (wireLength > MAX_NAME_BYTES) return { ok: false, problem: 'name_too_long', at: pos };
    if (pos + 1 + len > buf.length) return { ok: false, problem: 'truncated_name', at: pos };
    labels.push(labelText(buf, pos + 1, len));
    pos += 1 + len;
  }
}

/** One label in presentation form, lower-cased (ASCII only, DNS is case-insensitive for ASCII). */
function labelText(buf: Uint8Array, start: number, len: number): string {
  let out = '';
  for (let i = start; i < start + len; i++) {
    let c = buf[i]!;
    if (c >= 0x41 && c <= 0x5a) c += 0x20;
    if (c === 0x2e || c === 0x5c) out += `\\${String.fromCharCode(c)}`;
    else if (c <= 0x20 || c >= 0x7f) out += `\\${c.toString().padStart(3, '0')}`;
    else out += String.fromCharCode(c);
  }
  return out;
}

export interface WireQuestion {
  name: string;
  type: number;
  klass: number;
}

export function readQuestion(buf: Uint8Array, offset: number): WireResult<WireQuestion> {
  const n = readName(buf, offset);
  if (!n.ok) return n;
  if (n.end + 4 > buf.length) return { ok: false, problem: 'truncated_record', at: n.end };
  const type = (buf[n.end]! << 8) | buf[n.end + 1]!;
  const klass = (buf[n.end + 2]! << 8) | buf[n.end + 3]!;
  return { ok: true, value: { name: n.value, type, klass }, end: n.end + 4 };
}

export interface WireRecord {
  name: string;
  type: number;
  klass: number;
  ttl: number;
  /** Offset of the 32-bit TTL field, so a cached copy can be patched in place. */
  ttlOffset: number;
  rdataOffset: number;
  rdataLength: number;
}

export function readRecord(buf: Uint8Array, offset: number): WireResult<WireRecord> {
  const n = readName(buf, offset);
  if (!n.ok) return n;
  const p = n.end;
  if (p + 10 > buf.length) return { ok: false, problem: 'truncated_record', at: p };
  const type = (buf[p]! << 8) | buf[p + 1]!;
  const klass = (buf[p + 2]! << 8) | buf[p + 3]!;
  const ttl = ((buf[p + 4]! << 24) | (buf[p + 5]! << 16) | (buf[p + 6]! << 8) | buf[p + 7]!) >>> 0;
  const rdataLength = (buf[p + 8]! << 8) | buf[p + 9]!;
  const rdataOffset = p + 10;
  if (rdataOffset + rdataLength > buf.length)
    return { ok: false, problem: 'truncated_record', at: p };
  return {
    ok: true,
    value: { name: n.value, type, klass, ttl, ttlOffset: p + 4, rdataOffset, rdataLength },
    end: rdataOffset + rdataLength,
  };
}

export interface WireHeader {
  id: number;
  /** The 16-bit flags word as sent (QR, opcode, AA, TC, RD, RA, Z, AD, CD, rcode). */
  flags: number;
  qdcount: number;
  ancount: number;
  nscount: number;
  arcount: number;
}

export function readHeader(buf: Uint8Array): WireHeader | null {
  if (buf.length < HEADER_BYTES) return null;
  const u16 = (i: number) => (buf[i]! << 8) | buf[i + 1]!;
  return {
    id: u16(0),
    flags: u16(2),
    qdcount: u16(4),
    ancount: u16(6),
    nscount: u16(8),
    arcount: u16(10),
  };
}

export const FLAG_QR = 0x8000;
export const FLAG_AA = 0x0400;
export const FLAG_TC = 0x0200;
export const FLAG_RD = 0x0100;
export const FLAG_RA = 0x0080;
export const FLAG_CD = 0x0010;
export const opcodeOf = (flags: number): number => (flags >> 11) & 0xf;
export const rcodeOf = (flags: number): number => flags & 0xf;
export { HEADER_BYTES };
