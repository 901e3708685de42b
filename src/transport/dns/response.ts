/**
 * Reads an upstream resolver's response with the same bounded walker as queries: rcode, truncation,
 * the question it answers, a short text summary of the answers (for the ledger), the TTL to cache it
 * for, and where each TTL sits so a cached copy can be aged in place. Pure; no I/O, never throws.
 */
import { MAX_RESPONSE_BYTES, MAX_RESPONSE_RECORDS, RCODE } from './limits.js';
import { typeName } from './mnemonic.js';
import {
  FLAG_QR,
  FLAG_TC,
  HEADER_BYTES,
  rcodeOf,
  readHeader,
  readName,
  readQuestion,
  readRecord,
  type DnsProblem,
} from './wire.js';

/** Answers summarised for the ledger: at most this many, each at most this long. */
export const MAX_SUMMARY_ANSWERS = 16;
export const MAX_SUMMARY_CHARS = 200;

export interface UpstreamResponse {
  id: number;
  flags: number;
  rcode: number;
  truncated: boolean;
  /** Lower-case question names and types, to check the response answers what was asked. */
  questions: { qname: string; typeCode: number; classCode: number }[];
  questionEnd: number;
  /** e.g. ["A 93.184.216.34", "CNAME edge.example.net"]. */
  answers: string[];
  /** The same records, structured (owner name, type, data text, TTL as received). */
  records: AnswerRecord[];
  /** Seconds this response may be cached (RFC 2181 §8 minimum over the answer RRs, RFC 2308 for
   * negative answers), or null when it must not be cached. */
  cacheTtl: number | null;
  /** Offsets of every TTL field except OPT's, for ageing a cached copy. */
  ttlOffsets: number[];
}

export interface AnswerRecord {
  name: string;
  type: string;
  data: string;
  ttl: number;
}

export type ResponseParse =
  { ok: true; response: UpstreamResponse } | { ok: false; problem: DnsProblem };

export function parseResponse(bytes: Uint8Array): ResponseParse {
  if (bytes.length > MAX_RESPONSE_BYTES) return { ok: false, problem: 'too_large' };
  const header = readHeader(bytes);
  if (header === null) return { ok: false, problem: 'truncated_header' };
  if ((header.flags & FLAG_QR) === 0) return { ok: false, problem: 'not_a_query' };
  const records = header.ancount + header.nscount + header.arcount;
  if (records > MAX_RESPONSE_RECORDS || header.qdcount > 16)
    return { ok: false, problem: 'too_many_records' };
  const truncated = (header.flags & FLAG_TC) !== 0;
  let pos = HEADER_BYTES;
  const questions: UpstreamResponse['questions'] = [];
  for (let i = 0; i < header.qdcount; i++) {
    const q = readQuestion(bytes, pos);
    if (!q.ok) return { ok: false, problem: q.problem };
    questions.push({ qname: q.value.name, typeCode: q.value.type, classCode: q.value.klass });
    pos = q.end;
  }
  const questionEnd = pos;
  const answers: string[] = [];
  const records_: AnswerRecord[] = [];
  const ttlOffsets: number[] = [];
  let minAnswerTtl = Infinity;
  let negativeTtl = Infinity;
  for (let i = 0; i < records; i++) {
    if (pos >= bytes.length) {
      // A truncated response may legitimately stop early; anything else is lying about its counts.
      if (truncated) break;
      return { ok: false, problem: 'lying_counts' };
    }
    const r = readRecord(bytes, pos);
    if (!r.ok) {
      if (truncated) break;
      return { ok: false, problem: r.problem };
    }
    const rec = r.value;
    if (rec.type !== 41) ttlOffsets.push(rec.ttlOffset);
    if (i < header.ancount) {
      minAnswerTtl = Math.min(minAnswerTtl, rec.ttl);
      if (answers.length < MAX_SUMMARY_ANSWERS) {
        const type = typeName(rec.type);
        const data = rdataText(bytes, rec.type, rec.rdataOffset, rec.rdataLength);
        answers.push(bound(`${type} ${data}`));
        records_.push({ name: rec.name, type, data: bound(data), ttl: rec.ttl });
      }
    } else if (i < header.ancount + header.nscount && rec.type === 6 && rec.rdataLength >= 20) {
      const o = rec.rdataOffset + rec.rdataLength - 4;
      const minimum =
        ((bytes[o]! << 24) | (bytes[o + 1]! << 16) | (bytes[o + 2]! << 8) | bytes[o + 3]!) >>> 0;
      negativeTtl = Math.min(negativeTtl, rec.ttl, minimum);
    }
    pos = r.end;
  }
  const rcode = rcodeOf(header.flags);
  let cacheTtl: number | null = null;
  if (!truncated && rcode === RCODE.NOERROR && header.ancount > 0) cacheTtl = minAnswerTtl;
  else if (
    !truncated &&
    (rcode === RCODE.NXDOMAIN || (rcode === RCODE.NOERROR && header.ancount === 0))
  ) {
    cacheTtl = Number.isFinite(negativeTtl) ? negativeTtl : null;
  }
  return {
    ok: true,
    response: {
      id: header.id,
      flags: header.flags,
      rcode,
      truncated,
      questions,
      questionEnd,
      answers,
      records: records_,
      cacheTtl,
      ttlOffsets,
    },
  };
}

const bound = (text: string) =>
  text.length > MAX_SUMMARY_CHARS ? `${text.slice(0, MAX_SUMMARY_CHARS - 1)}…` : text;

function rdataText(buf: Uint8Array, type: number, at: number, len: number): string {
  let text: string;
  if (type === 1 && len === 4) text = `${buf[at]}.${buf[at + 1]}.${buf[at + 2]}.${buf[at + 3]}`;
  else if (type === 28 && len === 16) text = ipv6Text(buf, at);
  else if (type === 5 || type === 2 || type === 12 || type === 39) {
    const n = readName(buf, at);
    text = n.ok ? n.value : '?';
  } else if (type === 16) {
    const parts: string[] = [];
    for (let p = at; p < at + len;) {
      const l = buf[p]!;
      parts.push(
        JSON.stringify(
          Buffer.from(buf.subarray(p + 1, Math.min(p + 1 + l, at + len))).toString('latin1'),
        ),
      );
      p += 1 + l;
    }
    text = parts.join(' ');
  } else text = `(${len} bytes)`;
  return text;
}

function ipv6Text(buf: Uint8Array, at: number): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push((buf[at + 2 * i]! << 8) | buf[at + 2 * i + 1]!);
  // Compress the longest run of zero groups (RFC 5952).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}
