/**
 * llhttp, the HTTP/1.1 parser inside Node's own `http` module, used directly by the direct path
 * (direct.ts, upstream-pool.ts). It is the same parser with the same strictness as `http.Server`
 * (Content-Length with Transfer-Encoding, bare LF, obs-fold, oversized heads are errors), reached
 * through `_http_common` because Node exposes no public API for it (DEP0199). This is the only
 * module that touches it: at load a self-test checks the parser's shape, and when the module is
 * missing or changed, `LLHTTP.ok` is false and the services fall back to Node's http.Server
 * for requests, and the upstream pool to response-parser.ts for answers.
 * Also: the head serialisation helpers both sides share.
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

/** Set to `1` to run without llhttp, as on a Node whose `_http_common` is gone (tests). */
export const NO_LLHTTP_ENV = 'CELGATE_HTTP_NO_LLHTTP';

/**
 * Loads `_http_common` and checks, once, that its parser still has the shape this module uses: a
 * request head and a chunked response parsed through the callback slots give the expected values.
 */
function load():
  { ok: true; HTTPParser: HTTPParserStatic; methods: string[] } | { ok: false; reason: string } {
  if (process.env[NO_LLHTTP_ENV] === '1') return { ok: false, reason: `${NO_LLHTTP_ENV}=1` };
  try {
    const common = require('_http_common') as { HTTPParser?: HTTPParserStatic; methods?: string[] };
    const P = common.HTTPParser;
    if (typeof P !== 'function' || !Array.isArray(common.methods))
      return { ok: false, reason: '_http_common has no HTTPParser' };
    const seen: string[] = [];
    const req = new P();
    req.initialize(P.REQUEST, {}, 8192, 0);
    req[P.kOnHeadersComplete] = ((major, minor, headers, method, url) => {
      seen.push(
        `${common.methods![method ?? -1]} ${url} ${major}.${minor} ${(headers ?? []).join('=')}`,
      );
      return 0;
    }) satisfies OnHeadersComplete;
    req[P.kOnMessageComplete] = () => seen.push('end');
    const r1 = req.execute(Buffer.from('GET /a?b HTTP/1.1\r\nHost: x\r\n\r\n'));
    const res = new P();
    res.initialize(P.RESPONSE, {}, 8192, 0);
    res[P.kOnHeadersComplete] = ((_M, _m, _h, _method, _url, status) => {
      seen.push(`status ${status}`);
      return 0;
    }) satisfies OnHeadersComplete;
    res[P.kOnBody] = (b: Buffer) => seen.push(`body ${b.toString()}`);
    res[P.kOnMessageComplete] = () => seen.push('end');
    res.execute(
      Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n'),
    );
    req.close();
    res.close();
    const expected = ['GET /a?b 1.1 Host=x', 'end', 'status 200', 'body ok', 'end'];
    if (isParseError(r1) || seen.join('|') !== expected.join('|'))
      return { ok: false, reason: `llhttp self-test gave ${JSON.stringify(seen)}` };
    return { ok: true, HTTPParser: P, methods: common.methods };
  } catch (err) {
    return { ok: false, reason: `_http_common: ${(err as Error).message}` };
  }
}

const loaded = load();

/**
 * Whether llhttp is usable here. When it is not, the HTTP services serve every request on the
 * public-API path (Node's http.Server) and say so in one log line (`http.direct_unavailable`).
 */
export const LLHTTP: { ok: true } | { ok: false; reason: string } = loaded.ok
  ? { ok: true }
  : { ok: false, reason: loaded.reason };

/** Stand-in parser class when llhttp is unavailable: never constructed (the direct path is off). */
class Unavailable {
  constructor() {
    throw new Error('llhttp is unavailable');
  }
}

export const HTTPParser: HTTPParserStatic = loaded.ok
  ? loaded.HTTPParser
  : (Object.assign(Unavailable, {
      REQUEST: 1,
      RESPONSE: 2,
      kOnHeaders: 1,
      kOnHeadersComplete: 2,
      kOnBody: 3,
      kOnMessageComplete: 4,
      kOnExecute: 5,
    }) as unknown as HTTPParserStatic);
/** Method names by the index llhttp reports. */
export const METHODS: readonly string[] = loaded.ok ? loaded.methods : [];

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
