/**
 * The direct path's head rules (direct.ts): which parsed request heads it takes itself and how long
 * their body is, and the HTTP/1.1 response head it writes to the guest. Pure: no sockets, no state.
 *
 * Must not: decide or record (the exchange does); the Node path (exchange.ts, response.ts) has its
 * own framing through `ServerResponse`.
 */
import type { HeaderMap } from '../../events/index.js';
import type { SecretStore } from '../secrets.js';
import type { ExchangeDeps } from './exchange.js';
import { httpDate, reasonPhrase } from './llhttp.js';
import { responseDrops } from './response.js';

/**
 * The length of the body the direct path forwards for the head just parsed (`raw`: llhttp's
 * name/value list), or -1 when the Node path must take the request: `Expect`, a chunked body, a
 * body while a rule reads request bodies, a request that may carry MCP, one an `ask` rule could
 * hold, or any request while a rule reads response bodies (the Node path buffers and judges those).
 * `complete`: llhttp saw the whole message in the head (no body).
 */
export function directBodyLength(
  raw: readonly string[],
  sniHost: string,
  complete: boolean,
  deps: Pick<ExchangeDeps, 'decider' | 'mcp'>,
): number {
  const decider = deps.decider;
  if (decider.needsBody?.('http.response') === true) return -1;
  // A request an `ask` rule could hold for an approver waits on the Node path (exchange.ts).
  if (decider.mayAsk?.('http.request') === true) return -1;
  let length = -1;
  let contentType = '';
  let accept = '';
  let host = sniHost;
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i]!.length;
    if (n !== 4 && n !== 6 && n !== 12 && n !== 14 && n !== 17) continue;
    const name = raw[i]!.toLowerCase();
    if (name === 'expect' || name === 'transfer-encoding') return -1;
    // llhttp has checked it: digits only, never two that differ.
    if (name === 'content-length') length = Number(raw[i + 1]);
    else if (name === 'content-type') contentType = raw[i + 1]!;
    else if (name === 'accept') accept = raw[i + 1]!;
    else if (name === 'host' && host === '') host = raw[i + 1]!.replace(/:\d+$/, '').toLowerCase();
  }
  // A request that may carry MCP (mcp.ts) is judged message by message on the Node path.
  if (deps.mcp?.candidateHead(host, contentType, accept) === true) return -1;
  if (complete) return 0;
  if (length <= 0 || !Number.isSafeInteger(length) || decider.needsBody?.('http.request') === true)
    return -1;
  return length;
}

export interface ResponseHead {
  /** Status line and header lines, each ending in CRLF (the caller adds Connection and the
   * blank line). */
  text: string;
  /** The body goes to the guest chunked (no length known, an HTTP/1.1 guest). */
  chunked: boolean;
  /** No length known and an HTTP/1.0 guest: the body ends with the connection. */
  untilClose: boolean;
}

/**
 * The guest-facing head of an allowed upstream response: hop-by-hop and dropped headers left out,
 * secret values echoed in headers replaced (`secrets`), Content-Length left out when the body is
 * scrubbed (`scrub`: its length may change), a Date added when the upstream sent none.
 */
export function responseHead(
  status: number,
  message: string,
  raw: readonly string[],
  headers: HeaderMap,
  o: { secrets: SecretStore | undefined; scrub: boolean; noBody: boolean; http11: boolean },
): ResponseHead {
  let s = `HTTP/1.1 ${status} ${message === '' ? reasonPhrase(status) : message}\r\n`;
  let dated = false;
  const drops = responseDrops(raw);
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (drops.has(name) || (o.scrub && name === 'content-length')) continue;
    if (name === 'date') dated = true;
    s += `${raw[i]}: ${o.secrets === undefined ? raw[i + 1] : o.secrets.scrub(raw[i + 1]!)}\r\n`;
  }
  if (!dated) s += `Date: ${httpDate()}\r\n`;
  const delimited =
    o.noBody ||
    (!o.scrub &&
      headers['content-length'] !== undefined &&
      headers['transfer-encoding'] === undefined);
  const chunked = !delimited && o.http11;
  if (chunked) s += 'Transfer-Encoding: chunked\r\n';
  return { text: s, chunked, untilClose: !delimited && !chunked };
}
