/**
 * The HTTP/2 codec's side of the exchange pipeline: one guest stream (Node's compatibility
 * request/response, from terminator.ts) becomes one exchange in exchange.ts, like an HTTP/1.1
 * request — one event, one decision, one ledger row; a refused stream gets its own 403 while the
 * connection's other streams go on. The upstream is spoken to over HTTP/1.1 by the shared client.
 *
 * The request is shown to the pipeline as HTTP/1.1 would show it: pseudo-headers removed, and
 * `:authority` as `Host` (RFC 9113 §8.3.1). CONNECT (and extended CONNECT) is refused: nothing is
 * tunnelled from inside a stream.
 *
 * Owns: that translation. Must not: decide, or forward.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type http2 from 'node:http2';
import { handleRequest, writeNetRow, type ExchangeDeps } from './exchange.js';
import { renderDenial } from './denial.js';
import type { ExchangeContext } from './target.js';

/** `[name, value, …]` without pseudo-headers; `:authority` becomes `host` when no Host was sent. */
export function http1View(raw: readonly string[]): string[] {
  const out: string[] = [];
  let authority: string | null = null;
  let host = false;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.charCodeAt(0) === 58 /* ':' */) {
      if (name === ':authority') authority = raw[i + 1]!;
      continue;
    }
    if (name === 'host') host = true;
    out.push(name, raw[i + 1]!);
  }
  if (!host && authority !== null) out.unshift('host', authority);
  return out;
}

export function handleHttp2Stream(req: http2.Http2ServerRequest, res: http2.Http2ServerResponse, ctx: ExchangeContext, deps: ExchangeDeps): void {
  res.stream.on('error', () => {});
  if (req.method === 'CONNECT') {
    writeNetRow(deps.sink, { ctx, method: 'CONNECT', target: null, event: null, decision: null, status: 405, bytesIn: 0, bytesOut: 0, durationMs: 0, error: 'connect_refused', sessionOrigin: deps.origin });
    const d = renderDenial({ kind: 'bad_request', status: 405, rule_id: null, reason: 'CONNECT is not accepted inside an HTTP/2 connection', event_id: '', accept: req.headers.accept ?? '' });
    res.writeHead(d.status, d.headers);
    res.end(d.body);
    return;
  }
  // The pipeline reads rawHeaders once; an own property shadows the compatibility getter.
  Object.defineProperty(req, 'rawHeaders', { value: http1View(req.rawHeaders), configurable: true });
  void handleRequest(req as unknown as IncomingMessage, res as unknown as ServerResponse, ctx, deps).catch(() => res.stream.close());
}
