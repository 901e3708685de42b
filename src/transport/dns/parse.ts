/**
 * The sans-io DNS query parser: bytes in, a `DnsQuery` or a typed `DnsParseError` out. It walks the
 * whole message with the bounded reader of wire.ts first (sizes, counts, pointer loops, lengths),
 * then lets dns-packet decode it as a cross-check, inside a try. Nothing here throws, logs, reads a
 * clock or touches a socket; deciding what to do with a query is the caller's job.
 */
import dnsPacket from 'dns-packet';
import { MAX_QUERY_BYTES, MAX_QUERY_RECORDS, MAX_QUESTIONS, RCODE } from './limits.js';
import { className, typeName } from './mnemonic.js';
import {
  FLAG_QR,
  HEADER_BYTES,
  opcodeOf,
  readHeader,
  readQuestion,
  readRecord,
  type DnsProblem,
} from './wire.js';

export interface DnsQuestion {
  /** Lower-case presentation form, no trailing dot ('' for the root). */
  qname: string;
  qtype: string;
  qclass: string;
  typeCode: number;
  classCode: number;
}

export interface EdnsInfo {
  /** The requestor's UDP payload size (RFC 6891 §6.2.3), at least 512. */
  udpSize: number;
  version: number;
  /** The DNSSEC OK bit. */
  dnssecOk: boolean;
}

export interface DnsQuery {
  id: number;
  flags: number;
  questions: DnsQuestion[];
  /** The question section exactly as sent (offset 12 onwards), echoed in synthetic answers. */
  questionBytes: Buffer;
  edns: EdnsInfo | null;
  /** The whole message as received. */
  raw: Buffer;
}

export interface DnsParseError {
  problem: DnsProblem;
  /** One sentence for the log. */
  message: string;
  /** The query id when the header was readable, so an error answer can be matched by the client. */
  id: number | null;
  flags: number;
  /** What to answer: FORMERR / NOTIMP / BADVERS, or null to drop the message silently. */
  rcode: number | null;
  /** Set for BADVERS, which is answered with an OPT record. */
  edns?: EdnsInfo;
}

export type QueryParse = { ok: true; query: DnsQuery } | { ok: false; error: DnsParseError };

const MESSAGES: Record<DnsProblem, string> = {
  empty: 'zero-length message',
  truncated_header: 'message shorter than the 12-byte header',
  too_large: `message larger than ${MAX_QUERY_BYTES} bytes`,
  not_a_query: 'message has the QR (response) bit set',
  unsupported_opcode: 'opcode other than QUERY',
  no_question: 'query carries no question',
  too_many_questions: `more than ${MAX_QUESTIONS} questions`,
  too_many_records: `more than ${MAX_QUERY_RECORDS} records outside the question section`,
  truncated_name: 'a name runs past the end of the message',
  label_too_long: 'a label is longer than 63 bytes',
  name_too_long: 'a name is longer than 255 bytes',
  pointer_loop: 'a compression pointer points at or after itself (loop)',
  pointer_into_header: 'a compression pointer points into the header',
  pointer_hops: 'too many compression pointers in one name',
  reserved_label_type: 'a label uses a reserved type (0x40 / 0x80)',
  truncated_record: 'a record runs past the end of the message',
  lying_counts: 'the header counts more records than the message holds',
  trailing_bytes: 'bytes follow the last record the header counts',
  duplicate_opt: 'more than one OPT record',
  bad_opt: 'an OPT record that is not in the additional section or not at the root',
  bad_edns_version: 'EDNS version other than 0',
  undecodable: 'dns-packet could not decode the message',
};

function fail(
  problem: DnsProblem,
  id: number | null,
  flags: number,
  rcode: number | null,
  at?: number,
): QueryParse {
  const where = at === undefined ? '' : ` (offset ${at})`;
  return { ok: false, error: { problem, message: MESSAGES[problem] + where, id, flags, rcode } };
}

export function parseQuery(bytes: Uint8Array): QueryParse {
  if (bytes.length === 0) return fail('empty', null, 0, null);
  const header = readHeader(bytes);
  if (header === null) return fail('truncated_header', null, 0, null);
  const { id, flags } = header;
  // Never answer a response: that is how reflection loops start.
  if ((flags & FLAG_QR) !== 0) return fail('not_a_query', id, flags, null);
  if (bytes.length > MAX_QUERY_BYTES) return fail('too_large', id, flags, RCODE.FORMERR);
  if (opcodeOf(flags) !== 0) return fail('unsupported_opcode', id, flags, RCODE.NOTIMP);
  if (header.qdcount === 0) return fail('no_question', id, flags, RCODE.FORMERR);
  if (header.qdcount > MAX_QUESTIONS) return fail('too_many_questions', id, flags, RCODE.FORMERR);
  const records = header.ancount + header.nscount + header.arcount;
  if (records > MAX_QUERY_RECORDS) return fail('too_many_records', id, flags, RCODE.FORMERR);

  const questions: DnsQuestion[] = [];
  let pos = HEADER_BYTES;
  for (let i = 0; i < header.qdcount; i++) {
    if (pos >= bytes.length) return fail('lying_counts', id, flags, RCODE.FORMERR, pos);
    const q = readQuestion(bytes, pos);
    if (!q.ok) return fail(q.problem, id, flags, RCODE.FORMERR, q.at);
    const { name, type, klass } = q.value;
    questions.push({
      qname: name,
      qtype: typeName(type),
      qclass: className(klass),
      typeCode: type,
      classCode: klass,
    });
    pos = q.end;
  }
  const questionEnd = pos;

  let edns: EdnsInfo | null = null;
  for (let i = 0; i < records; i++) {
    if (pos >= bytes.length) return fail('lying_counts', id, flags, RCODE.FORMERR, pos);
    const r = readRecord(bytes, pos);
    if (!r.ok) return fail(r.problem, id, flags, RCODE.FORMERR, r.at);
    if (r.value.type === 41) {
      const inAdditional = i >= header.ancount + header.nscount;
      if (!inAdditional || r.value.name !== '')
        return fail('bad_opt', id, flags, RCODE.FORMERR, pos);
      if (edns !== null) return fail('duplicate_opt', id, flags, RCODE.FORMERR, pos);
      edns = {
        udpSize: Math.max(512, r.value.klass),
        version: (r.value.ttl >>> 16) & 0xff,
        dnssecOk: (r.value.ttl & 0x8000) !== 0,
      };
    }
    pos = r.end;
  }
  if (pos !== bytes.length) return fail('trailing_bytes', id, flags, RCODE.FORMERR, pos);
  if (edns !== null && edns.version > 0) {
    const f = fail('bad_edns_version', id, flags, RCODE.BADVERS);
    if (!f.ok) f.error.edns = edns;
    return f;
  }

  // Cross-check with dns-packet: whatever passed the structural walk must also decode.
  try {
    dnsPacket.decode(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length));
  } catch {
    return fail('undecodable', id, flags, RCODE.FORMERR);
  }

  const raw = Buffer.from(bytes);
  return {
    ok: true,
    query: {
      id,
      flags,
      questions,
      questionBytes: raw.subarray(HEADER_BYTES, questionEnd),
      edns,
      raw,
    },
  };
}
