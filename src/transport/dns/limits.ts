/**
 * Named bounds on everything a guest controls in DNS traffic, and the rcodes celgate answers with.
 * Constants only; no I/O. Every limit here is enforced by a parser or a listener and reported with a
 * typed reason (see `DnsProblem` in wire.ts) or an `E_LIMIT` CelgateError.
 */

/** Largest DNS message accepted from a guest (a query); real queries are well under 512 bytes. */
export const MAX_QUERY_BYTES = 4096;
/** Largest message accepted from an upstream resolver (the RFC 7766 frame limit). */
export const MAX_RESPONSE_BYTES = 65535;
/** Questions per query. Real resolvers send exactly one; a few are allowed, each decided. */
export const MAX_QUESTIONS = 4;
/** Resource records in the answer/authority/additional sections of a query (OPT, TSIG, cookies). */
export const MAX_QUERY_RECORDS = 8;
/** Resource records in an upstream response. */
export const MAX_RESPONSE_RECORDS = 1024;
/** RFC 1035 §2.3.4: a name is at most 255 octets on the wire, a label at most 63. */
export const MAX_NAME_BYTES = 255;
export const MAX_LABEL_BYTES = 63;
/** Compression pointers followed while reading one name. Loops are also rejected structurally. */
export const MAX_POINTER_HOPS = 32;
/** Classic UDP payload limit for clients without EDNS (RFC 1035 §4.2.1). */
export const CLASSIC_UDP_BYTES = 512;
/** The UDP payload size celgate advertises and honours at most (the DNS Flag Day 2020 value). */
export const MAX_UDP_PAYLOAD = 1232;
/** Queries decided or in flight upstream at once, across all listeners. */
export const MAX_INFLIGHT = 1024;
/** Concurrent TCP / vsock connections per listener. */
export const MAX_STREAM_CONNECTIONS = 256;
/** Queries pipelined on one stream connection whose answers are still pending (RFC 7766 §6.2.1.1). */
export const MAX_PIPELINED = 32;
/** A stream connection with nothing in flight is closed after this long (RFC 7766 §6.2.3). */
export const STREAM_IDLE_MS = 10_000;
/** A frame that has started on a stream must be complete within this long (slow-drip guard). */
export const FRAME_DEADLINE_MS = 10_000;
/** A TTL larger than this is capped before caching (RFC 8767 suggests a week; a day is plenty here). */
export const MAX_CACHE_TTL_S = 86_400;

export const RCODE = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
  /** Extended (EDNS) rcode: the upper 8 bits travel in the OPT record (RFC 6891 §6.1.3). */
  BADVERS: 16,
} as const;
export type RcodeName = keyof typeof RCODE;

export function rcodeName(code: number): string {
  for (const [name, value] of Object.entries(RCODE)) if (value === code) return name;
  return `RCODE${code}`;
}
