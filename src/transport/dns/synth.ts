/**
 * Builds the messages celgate itself answers with: denials (NXDOMAIN, SERVFAIL, FORMERR, NOTIMP)
 * with the question echoed byte for byte, static A/AAAA answers, truncation (TC) replies, and the
 * in-place rewrite of an upstream or cached response for the client that asked (id, flags, question
 * case, aged TTLs). Pure; no I/O, no clock (elapsed time is an argument).
 */
import { isIPv4, isIPv6 } from 'node:net';
import { MAX_UDP_PAYLOAD } from './limits.js';
import type { DnsQuery, EdnsInfo } from './parse.js';
import { FLAG_CD, FLAG_QR, FLAG_RA, FLAG_RD, FLAG_TC, HEADER_BYTES } from './wire.js';

const OPT_BYTES = 11;

function responseFlags(queryFlags: number, rcode: number, extra = 0): number {
  // Keep the opcode, RD and CD from the query; we offer recursion.
  return FLAG_QR | (queryFlags & (0x7800 | FLAG_RD | FLAG_CD)) | FLAG_RA | extra | (rcode & 0xf);
}

function writeOpt(buf: Buffer, at: number, edns: EdnsInfo, rcode = 0): void {
  buf[at] = 0; // root name
  buf.writeUInt16BE(41, at + 1);
  buf.writeUInt16BE(MAX_UDP_PAYLOAD, at + 3);
  // Upper 8 bits of the extended rcode, version 0, DO echoed.
  buf.writeUInt32BE(((((rcode >> 4) & 0xff) << 24) | (edns.dnssecOk ? 0x8000 : 0)) >>> 0, at + 5);
  buf.writeUInt16BE(0, at + 9);
}

/** A header-only (or header + question) answer with `rcode`, e.g. FORMERR for a malformed query.
 * An extended rcode (> 15, e.g. BADVERS) needs `edns`: its upper bits go in the OPT record. */
export function errorResponse(
  id: number,
  queryFlags: number,
  rcode: number,
  question: { bytes: Buffer; count: number } | null = null,
  edns: EdnsInfo | null = null,
  extraFlags = 0,
): Buffer {
  const qlen = question === null ? 0 : question.bytes.length;
  const buf = Buffer.allocUnsafe(HEADER_BYTES + qlen + (edns === null ? 0 : OPT_BYTES));
  buf.writeUInt16BE(id, 0);
  buf.writeUInt16BE(responseFlags(queryFlags, rcode, extraFlags), 2);
  buf.writeUInt16BE(question === null ? 0 : question.count, 4);
  buf.writeUInt32BE(0, 6); // ancount, nscount
  buf.writeUInt16BE(edns === null ? 0 : 1, 10);
  if (question !== null) question.bytes.copy(buf, HEADER_BYTES);
  if (edns !== null) writeOpt(buf, HEADER_BYTES + qlen, edns, rcode);
  return buf;
}

/** NXDOMAIN / SERVFAIL / REFUSED for a parsed query, question echoed. */
export function denialResponse(query: DnsQuery, rcode: number): Buffer {
  return errorResponse(
    query.id,
    query.flags,
    rcode,
    { bytes: query.questionBytes, count: query.questions.length },
    query.edns,
  );
}

/** An empty NOERROR with TC set: the client should retry over TCP (RFC 7766 §5). */
export function truncatedResponse(query: DnsQuery): Buffer {
  return errorResponse(
    query.id,
    query.flags,
    0,
    { bytes: query.questionBytes, count: query.questions.length },
    query.edns,
    FLAG_TC,
  );
}

/**
 * A NOERROR answer from configured static addresses: the A or AAAA records matching the question's
 * type (none — NODATA — for other types). Only for single-question queries.
 */
export function staticResponse(query: DnsQuery, addresses: readonly string[], ttl: number): Buffer {
  const q = query.questions[0]!;
  const wanted = q.classCode === 1 || q.classCode === 255 ? q.typeCode : -1;
  const rdatas: { type: number; data: Buffer }[] = [];
  for (const a of addresses) {
    if ((wanted === 1 || wanted === 255) && isIPv4(a))
      rdatas.push({ type: 1, data: Buffer.from(a.split('.').map(Number)) });
    else if ((wanted === 28 || wanted === 255) && isIPv6(a))
      rdatas.push({ type: 28, data: ipv6Bytes(a) });
  }
  const size = rdatas.reduce((n, r) => n + 12 + r.data.length, 0);
  const head = errorResponse(
    query.id,
    query.flags,
    0,
    { bytes: query.questionBytes, count: 1 },
    null,
  );
  const opt = query.edns === null ? 0 : OPT_BYTES;
  const buf = Buffer.allocUnsafe(head.length + size + opt);
  head.copy(buf, 0);
  buf.writeUInt16BE(rdatas.length, 6);
  buf.writeUInt16BE(opt === 0 ? 0 : 1, 10);
  let at = head.length;
  for (const r of rdatas) {
    buf.writeUInt16BE(0xc000 | HEADER_BYTES, at); // pointer to the question name
    buf.writeUInt16BE(r.type, at + 2);
    buf.writeUInt16BE(1, at + 4);
    buf.writeUInt32BE(ttl >>> 0, at + 6);
    buf.writeUInt16BE(r.data.length, at + 10);
    r.data.copy(buf, at + 12);
    at += 12 + r.data.length;
  }
  if (query.edns !== null) writeOpt(buf, at, query.edns);
  return buf;
}

function ipv6Bytes(text: string): Buffer {
  const out = Buffer.alloc(16);
  let s = text;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4 !== null) {
    const o = v4[1]!.split('.').map(Number);
    s = `${s.slice(0, v4.index)}${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`;
  }
  const [left, right] = s.includes('::') ? s.split('::') : [s, undefined];
  const l = left === '' || left === undefined ? [] : left.split(':');
  const r = right === undefined || right === '' ? [] : right.split(':');
  const groups =
    right === undefined ? l : [...l, ...new Array<string>(8 - l.length - r.length).fill('0'), ...r];
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), 2 * i));
  return out;
}

/**
 * Rewrites an upstream (or cached) response for the client that asked: its id, its RD/CD bits, its
 * question bytes (same length, so 0x20 case randomisation survives and pointers stay valid), and every
 * TTL aged by `elapsedS`. Returns a new buffer; `stored` is not modified.
 */
export function rewriteResponse(
  stored: Buffer,
  query: DnsQuery,
  questionEnd: number,
  ttlOffsets: readonly number[],
  elapsedS: number,
): Buffer {
  const out = Buffer.from(stored);
  out.writeUInt16BE(query.id, 0);
  const flags = out.readUInt16BE(2);
  out.writeUInt16BE((flags & ~(FLAG_RD | FLAG_CD)) | (query.flags & (FLAG_RD | FLAG_CD)), 2);
  if (questionEnd - HEADER_BYTES === query.questionBytes.length)
    query.questionBytes.copy(out, HEADER_BYTES);
  if (elapsedS > 0) {
    for (const at of ttlOffsets)
      out.writeUInt32BE(Math.max(0, out.readUInt32BE(at) - elapsedS), at);
  }
  return out;
}

/** The largest UDP answer this client accepts. */
export function udpLimit(query: DnsQuery): number {
  return query.edns === null ? 512 : Math.min(query.edns.udpSize, 65_535);
}
