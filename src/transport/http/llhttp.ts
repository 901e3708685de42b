/**
 * llhttp, the HTTP/1.1 parser inside Node's own `http` module, used directly by the direct path
 * (direct.ts, upstream-pool.ts). It is the same parser with the same strictness as `http.Server`
 * (Content-Length with Transfer-Encoding, bare LF, obs-fold, oversized heads are errors), reached
 * through `_http_common` because Node exposes no public API for it. Also: the head serialisation
 * helpers both sides share.
 *
 * Owns: access to the parser and its callback slots, and wire formatting. Must not: decide, or
 * hold any per-connection state.
 */
import { createRequire } from 'node:module';
import http from 'node:http';

/** The parser's callback slots (numeric keys on the instance) and constants. */
export interface HTTPParserStatic {
  new (): HTTPParser;
  REQUEST: number;
  RESPONSE: number;
  kOnHeaders: number;
  kOnHeadersComplete: number;
  kOnBody: number;
  kOnMessageComplete: number;
  kOnExecute: number;
}

/** An llhttp parser. `execute` returns the bytes parsed, or an Error with `code` (HPE_*) and `bytesParsed`. */
export interface HTTPParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(data: Buffer): number | ParseError;
  finish(): number | ParseError | undefined;
  close(): void;
  [slot: number]: unknown;
}

export type ParseError = Error & { code: string; bytesParsed: number; reason?: string };

/**
 * `kOnHeadersComplete(versionMajor, versionMinor, headers, method, url, statusCode, statusMessage,
 * upgrade, shouldKeepAlive)`: headers and url are null when `kOnHeaders` already delivered them
 * (more than 32 header fields arrive in several calls). Returning 1 tells a response parser the
 * message has no body (the answer to HEAD).
 */
export type OnHeadersComplete = (
  versionMajor: number,
  versionMinor: number,
  headers: string[] | null,
  method: number | null,
  url: string | null,
  statusCode: number | null,
  statusMessage: string | null,
  upgrade: boolean,
  shouldKeepAlive: boolean,
) => number;

const require = createRequire(import.meta.url);
const common = require('_http_common') as { HTTPParser: HTTPParserStatic; methods: string[] };

export const HTTPParser: HTTPParserStatic = common.HTTPParser;
/** Method names by the index llhttp reports. */
export const METHODS: readonly string[] = common.methods;

/** A fresh parser of `type` with Node's strict settings (no leniency). */
export function newParser(type: number, maxHeaderSize: number): HTTPParser {
  const p = new HTTPParser();
  p.initialize(type, {}, maxHeaderSize, 0);
  return p;
}

export function isParseError(r: unknown): r is ParseError {
  return r instanceof Error;
}

/** The reason phrase Node uses for a status. */
export function reasonPhrase(status: number): string {
  return http.STATUS_CODES[status] ?? 'Unknown';
}

let dateSecond = -1;
let dateText = '';
/** The `Date` header value, formatted at most once per second (as Node's server does). */
export function httpDate(): string {
  const now = Date.now();
  const s = Math.floor(now / 1000);
  if (s !== dateSecond) {
    dateSecond = s;
    dateText = new Date(now).toUTCString();
  }
  return dateText;
}

/** `name: value\r\n` for each raw pair. Values come from llhttp, so they hold no CR or LF. */
export function headerLines(raw: readonly string[]): string {
  let s = '';
  for (let i = 0; i + 1 < raw.length; i += 2) s += `${raw[i]}: ${raw[i + 1]}\r\n`;
  return s;
}
