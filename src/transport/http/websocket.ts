/**
 * Requests that ask to upgrade the connection (`Upgrade:` + `Connection: upgrade`).
 *
 * - A WebSocket upgrade is judged as an `http.request` like any request. When allowed, only the
 *   request head goes upstream; nothing the guest sends after it (pipelined bytes included) is
 *   forwarded until the upstream's answer has been read and judged as an `http.response`. Only a
 *   real `101 Switching Protocols` to `websocket`, allowed by policy, turns the connection into a
 *   raw relay. Any other answer is relayed as an ordinary response and the connection is closed,
 *   so no later bytes of the guest ever reach the upstream without a decision.
 * - Any other upgrade (`h2c`, custom protocols) is not tunnelled: a bodiless request is served as
 *   an ordinary HTTP/1.1 request without its upgrade headers (RFC 9110 §7.8 lets a server ignore
 *   Upgrade), and one with a body is refused with 400.
 *
 * Owns: upgrade enforcement and the post-101 relay. Must not: decide, or forward a byte before
 * the decision that covers it.
 */
import { ServerResponse, type IncomingMessage } from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import {
  decideAndRecordHeld,
  httpRequestEvent,
  normalizeHeaders,
  type Decision,
} from '../../events/index.js';
import { badRequest, decisionDenial, rawResponse, renderDenial, type Denial } from './denial.js';
import {
  handleRequest,
  NetRecord,
  originFor,
  responseDepsOf,
  upstreamFailure,
  writeNetRow,
  type ExchangeDeps,
} from './exchange.js';
import { reasonPhrase } from './llhttp.js';
import { judgeResponse, relayResponse, streamedBodyFacts } from './response.js';
import { forwardHeaders, hostHeaderFor, resolveTarget, type ExchangeContext } from './target.js';
import { UpstreamCall, type UpstreamResponse } from './upstream-call.js';

const KEEP_FOR_UPGRADE = new Set(['upgrade', 'connection']);
/** The one protocol whose 101 becomes a raw relay. */
export const RELAYED_UPGRADE = 'websocket';

/** The protocols an `Upgrade` field offers, lower-cased, versions dropped (`h2c`, `websocket`). */
export function upgradeProtocols(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((p) => p.trim().toLowerCase().split('/')[0]!)
    .filter((p) => p !== '');
}

/** A response for a socket Node's server gave up to the 'upgrade' event; the connection closes after it. */
function responseOn(req: IncomingMessage, socket: Duplex): ServerResponse {
  const res = new ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket as net.Socket);
  res.once('finish', () => socket.end());
  return res;
}

export function handleUpgrade(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  ctx: ExchangeContext,
  deps: ExchangeDeps,
): void {
  upgrade(req, socket, head, ctx, deps).catch(() => socket.destroy());
}

/** handleUpgrade's body: synchronous up to the decision, which awaits only a held `ask`. */
async function upgrade(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  ctx: ExchangeContext,
  deps: ExchangeDeps,
): Promise<void> {
  socket.on('error', () => {});
  const protocols = upgradeProtocols(req.headers.upgrade);
  if (!protocols.includes(RELAYED_UPGRADE)) {
    serveWithoutUpgrade(req, socket, head, ctx, deps, protocols);
    return;
  }
  const method = req.method ?? 'GET';
  const accept = req.headers.accept ?? '';
  const headers = normalizeHeaders(req.rawHeaders);
  const rec = new NetRecord(deps.sink, ctx, method, null, deps.origin);
  rec.bytesIn = head.length;
  let res: ServerResponse | null = null;
  const answer = (d: Denial, phrase: string) => {
    if (res !== null) {
      if (!res.headersSent) {
        res.writeHead(d.status, d.headers);
        res.end(d.body);
      } else res.destroy();
    } else socket.end(rawResponse(d, phrase));
    rec.finish(d.status);
  };
  const tr = resolveTarget(
    method,
    req.url ?? '/',
    headers,
    req.rawHeaders.length / 2,
    ctx,
    deps.limits,
  );
  if (!tr.ok) {
    rec.error = tr.code;
    answer(badRequest(tr.status, tr.reason, accept), 'Bad Request');
    return;
  }
  const target = tr.target;
  rec.setTarget(target);
  const secrets = deps.secrets?.requestSecrets(headers, target.query) ?? [];
  const event = httpRequestEvent(originFor(deps, ctx), {
    method,
    scheme: target.scheme,
    host: target.host,
    port: target.port,
    path: target.path,
    query: target.query,
    raw_target: target.rawTarget,
    secrets,
    headers,
  });
  // An `ask` may be held for an approver (docs/approvals.md); nothing is read from the guest meanwhile.
  const decided = decideAndRecordHeld(deps, event);
  rec.event = event;
  let decision: Decision;
  if (decided instanceof Promise) {
    socket.pause();
    decision = await decided;
    if (socket.destroyed) {
      rec.decision = decision;
      rec.error = 'client_aborted';
      rec.finish(null);
      return;
    }
  } else decision = decided;
  rec.decision = decision;
  if (decision.action !== 'allow') {
    const d = decisionDenial(decision, event.common.event_id, accept);
    answer(d, d.status === 403 ? 'Forbidden' : 'Bad Gateway');
    return;
  }
  // Nothing more is read from the guest until the upstream has answered and that answer is judged.
  socket.pause();
  // Secret placeholders are substituted after the decision, for the hosts the secrets belong to.
  const forwarded = forwardHeaders(req.rawHeaders, KEEP_FOR_UPGRADE);
  const query =
    secrets.length > 0
      ? deps.secrets!.substitute(target.query, target.host, target.scheme)
      : target.query;
  let settled = false;
  let upReq: UpstreamCall | null = null;
  // Not a 101: an ordinary response, judged and relayed; then the connection closes (the pool
  // never reuses a connection an upgrade was asked on).
  const onResponse = (upRes: UpstreamResponse) => {
    settled = true;
    res = responseOn(req, socket);
    res.once('close', () => {
      upReq?.destroy();
      rec.finish(res!.headersSent ? res!.statusCode : null);
    });
    relayResponse(upRes, res, event, originFor(deps, ctx), accept, responseDepsOf(deps), rec, (d) =>
      answer(d, 'Forbidden'),
    ).catch(() => {
      rec.error = 'upstream_error';
      upRes.destroy();
      res?.destroy();
    });
  };
  // A 101: judge it, check it switched to WebSocket, and only then relay raw bytes.
  const onUpgrade = (upRes: UpstreamResponse, up: net.Socket, upHead: Buffer) => {
    settled = true;
    up.on('error', () => {});
    const responseHeaders = normalizeHeaders(upRes.rawHeaders);
    const judged = judgeResponse(
      responseDepsOf(deps),
      event,
      originFor(deps, ctx),
      101,
      responseHeaders,
      streamedBodyFacts(responseHeaders),
    );
    if (judged.decision.action !== 'allow') {
      up.destroy();
      rec.event = judged.event;
      rec.decision = judged.decision;
      const d = decisionDenial(judged.decision, judged.event.common.event_id, accept);
      answer(d, d.status === 403 ? 'Forbidden' : 'Bad Gateway');
      return;
    }
    if (!upgradeProtocols(responseHeaders.upgrade).includes(RELAYED_UPGRADE)) {
      up.destroy();
      rec.error = 'upstream_error';
      answer(
        renderDenial({
          kind: 'upstream_error',
          status: 502,
          rule_id: null,
          reason: `upstream ${target.host} switched to "${responseHeaders.upgrade ?? ''}", not WebSocket`,
          event_id: event.common.event_id,
          accept,
        }),
        'Bad Gateway',
      );
      return;
    }
    const lines = [`HTTP/1.1 101 ${upRes.statusMessage || 'Switching Protocols'}`];
    for (let i = 0; i + 1 < upRes.rawHeaders.length; i += 2)
      lines.push(`${upRes.rawHeaders[i]}: ${upRes.rawHeaders[i + 1]}`);
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (upHead.length > 0) socket.write(upHead);
    if (head.length > 0) up.write(head);
    rec.bytesOut += upHead.length;
    up.on('data', (c: Buffer) => (rec.bytesOut += c.length));
    socket.on('data', (c: Buffer) => (rec.bytesIn += c.length));
    up.pipe(socket);
    socket.pipe(up);
    socket.resume();
    const close = () => {
      up.destroy();
      socket.destroy();
      rec.finish(101);
    };
    up.on('close', close);
    socket.on('close', close);
  };
  upReq = new UpstreamCall(
    deps.upstream,
    deps.pool,
    {
      scheme: target.scheme,
      host: target.host,
      port: target.port,
      method,
      path: `${target.path}${query === '' ? '' : `?${query}`}`,
      headers: [
        'host',
        hostHeaderFor(target),
        ...(secrets.length > 0
          ? deps.secrets!.substituteHeaders(forwarded, target.host, target.scheme)
          : forwarded),
      ],
      bodyLength: 0,
      upgrade: true,
    },
    { response: onResponse, upgrade: onUpgrade },
  );
  upReq.on('error', (err) => {
    if (settled) return;
    settled = true;
    const d = upstreamFailure(deps, rec, event, target, err, accept);
    answer(d, reasonPhrase(d.status));
  });
  upReq.end();
  socket.once('close', () => {
    if (!settled) upReq?.destroy();
  });
}

/**
 * An upgrade to anything but WebSocket: the request is served as plain HTTP/1.1 without its upgrade
 * headers, or refused when it carries a body (Node's server stops parsing at an upgrade request, so
 * its body cannot be framed here).
 */
function serveWithoutUpgrade(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  ctx: ExchangeContext,
  deps: ExchangeDeps,
  protocols: string[],
): void {
  const hasBody =
    req.headers['transfer-encoding'] !== undefined ||
    Number(req.headers['content-length'] ?? 0) > 0 ||
    head.length > 0;
  if (hasBody) {
    const reason = `upgrades to ${protocols.join(', ') || 'an unnamed protocol'} are not relayed, and a request that asks for one cannot carry a body here; send it without Upgrade`;
    socket.end(rawResponse(badRequest(400, reason, req.headers.accept ?? ''), 'Bad Request'));
    writeNetRow(deps.sink, {
      ctx,
      method: req.method ?? '',
      target: null,
      event: null,
      decision: null,
      status: 400,
      bytesIn: head.length,
      bytesOut: 0,
      durationMs: 0,
      error: 'upgrade_refused',
      sessionOrigin: deps.origin,
    });
    return;
  }
  const res = responseOn(req, socket);
  handleRequest(req, res, ctx, deps).catch(() => res.destroy());
}
