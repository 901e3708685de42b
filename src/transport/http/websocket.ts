/**
 * HTTP Upgrade (WebSocket) requests: judged by the same `http.request` decision as any request
 * before a single byte goes upstream; a refusal is a real 403 on the raw socket. An allowed upgrade
 * is relayed byte for byte to the upstream (TLS verified like every other upstream connection).
 *
 * Owns: upgrade enforcement and the raw relay. Must not: decide, or relay before `allow`.
 */
import type { IncomingMessage } from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { httpRequestEvent, normalizeHeaders } from '../../events/index.js';
import { isCelgateError } from '../../errors.js';
import { decisionDenial, destinationDenial, rawResponse, renderDenial } from './denial.js';
import { decideAndRecord, originFor, writeNetRow, type ExchangeDeps } from './exchange.js';
import { forwardHeaders, hostHeaderFor, resolveTarget, type ExchangeContext } from './target.js';

const KEEP_FOR_UPGRADE = new Set(['upgrade', 'connection']);

export function handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, ctx: ExchangeContext, deps: ExchangeDeps): void {
  const started = performance.now();
  const method = req.method ?? 'GET';
  const accept = req.headers.accept ?? '';
  const headers = normalizeHeaders(req.rawHeaders);
  socket.on('error', () => {});
  const tr = resolveTarget(method, req.url ?? '/', headers, req.rawHeaders.length / 2, ctx, deps.limits);
  if (!tr.ok) {
    socket.end(rawResponse(renderDenial({ kind: 'bad_request', status: tr.status, rule_id: null, reason: tr.reason, event_id: '', accept }), 'Bad Request'));
    writeNetRow(deps.sink, { ctx, method, target: null, event: null, decision: null, status: tr.status, bytesIn: 0, bytesOut: 0, durationMs: 0, error: tr.code, sessionOrigin: deps.origin });
    return;
  }
  const target = tr.target;
  const event = httpRequestEvent(originFor(deps, ctx), { method, ...target, headers });
  const decision = decideAndRecord(deps, event);
  let bytesIn = head.length;
  let bytesOut = 0;
  let status: number | null = null;
  let error: string | null = null;
  const finish = () =>
    writeNetRow(deps.sink, { ctx, method, target, event, decision, status, bytesIn, bytesOut, durationMs: performance.now() - started, error });
  if (decision.action !== 'allow') {
    const d = decisionDenial(decision, event.common.event_id, accept);
    status = d.status;
    socket.end(rawResponse(d, d.status === 403 ? 'Forbidden' : 'Bad Gateway'));
    finish();
    return;
  }
  const to = deps.upstream.destination(target.host, target.port);
  if (to.refused !== undefined) {
    const d = destinationDenial(to.refused, event.common.event_id, accept);
    error = 'destination_blocked';
    status = d.status;
    socket.end(rawResponse(d, 'Forbidden'));
    finish();
    return;
  }
  const lookup = to.lookup === undefined ? {} : { lookup: to.lookup as unknown as net.LookupFunction };
  const up: net.Socket =
    target.scheme === 'https'
      ? tls.connect({
          host: to.host,
          port: to.port,
          ...lookup,
          ...(net.isIP(target.host) === 0 ? { servername: target.host } : {}),
          secureContext: deps.upstream.secureContext,
          checkServerIdentity: (_n, cert) => tls.checkServerIdentity(target.host, cert),
          ALPNProtocols: ['http/1.1'],
        })
      : net.connect({ host: to.host, port: to.port, ...lookup });
  const ready = target.scheme === 'https' ? 'secureConnect' : 'connect';
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    up.destroy();
    socket.destroy();
    finish();
  };
  up.setTimeout(deps.limits.upstreamTimeoutMs, () => up.destroy(new Error('upstream timeout')));
  up.once('error', (err) => {
    if (status === null && !closed) {
      const refused = isCelgateError(err, 'E_DESTINATION');
      error = refused ? 'destination_blocked' : 'upstream_error';
      const d = refused
        ? destinationDenial(err, event.common.event_id, accept)
        : renderDenial({ kind: 'upstream_error', status: 502, rule_id: null, reason: `upstream ${target.host}:${target.port} failed: ${err.message}`, event_id: event.common.event_id, accept });
      status = d.status;
      socket.end(rawResponse(d, refused ? 'Forbidden' : 'Bad Gateway'));
      closed = true;
      finish();
      return;
    }
    close();
  });
  up.once(ready, () => {
    up.setTimeout(0);
    const lines = [`${method} ${target.path}${target.query === '' ? '' : `?${target.query}`} HTTP/1.1`, `host: ${hostHeaderFor(target)}`];
    const fwd = forwardHeaders(req.rawHeaders, KEEP_FOR_UPGRADE);
    for (let i = 0; i + 1 < fwd.length; i += 2) lines.push(`${fwd[i]}: ${fwd[i + 1]}`);
    up.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (head.length > 0) up.write(head);
    up.once('data', (first: Buffer) => {
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(first.subarray(0, 16).toString('latin1'));
      status = m === null ? null : Number(m[1]);
    });
    up.on('data', (c: Buffer) => (bytesOut += c.length));
    socket.on('data', (c: Buffer) => (bytesIn += c.length));
    up.pipe(socket);
    socket.pipe(up);
    up.on('close', close);
    socket.on('close', close);
  });
}
