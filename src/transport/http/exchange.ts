/**
 * One HTTP exchange, shared by the vsock MITM service and the explicit proxy: build the
 * `http.request` event, decide ONCE before anything goes upstream, then forward (streaming both
 * ways with backpressure, the response judged on status + headers before its body is released) or
 * answer with the DESIGN §7 denial. Exactly one net row and one security event per request.
 *
 * Owns: per-request enforcement. Must not: decide itself, re-evaluate rules for the log, or let any
 * byte reach upstream without an `allow` decision. Never throws; every failure becomes a response.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  httpRequestEvent,
  normalizeHeaders,
  type BodyFacts,
  type Decision,
  type EventOrigin,
  type EventSink,
  type HeaderMap,
  type HttpRequestEvent,
  type SecurityEvent,
} from '../../events/index.js';
import { bodyFacts, readBodyPrefix, type BodyPrefix } from './body.js';
import { isCelgateError } from '../../errors.js';
import {
  badRequest,
  upstreamDenial,
  decisionDenial,
  destinationDenial,
  renderDenial,
  type Denial,
} from './denial.js';
import type { HttpLimits } from './limits.js';
import { headerLines } from './llhttp.js';
import { isHttp2, relayResponse, type ResponseDeps } from './response.js';
import {
  forwardHeaders,
  hostHeaderFor,
  resolveTarget,
  type ExchangeContext,
  type RequestTarget,
} from './target.js';
import type { Upstream } from './upstream.js';
import { UpstreamCall } from './upstream-call.js';
import { CHUNKED, type UpstreamPool } from './upstream-pool.js';
import type { SecretStore } from '../secrets.js';
import { judgeMcpRequest, type McpExchange, type McpHttp } from './mcp.js';

export type { ExchangeContext } from './target.js';

/** A decider may say which event types have rules reading `body`; without it bodies stream unread. */
import type { BodyAwareDecider, Holding } from '../../events/decision.js';
import {
  decideAndRecord as enforceDecideAndRecord,
  decideHeld,
  failClosed,
  recordSafely,
} from '../../events/enforce.js';
export type { BodyAwareDecider };

export interface ExchangeDeps {
  decider: BodyAwareDecider & { generation?: () => number } & Holding;
  sink: EventSink;
  /** session / vm / profile ids stamped on every event; process_name comes from ctx.meta. */
  origin: EventOrigin;
  upstream: Upstream;
  /** The one upstream client (upstream-pool.ts); this path reaches it through upstream-call.ts. */
  pool: UpstreamPool;
  limits: HttpLimits;
  /** Secrets substituted at egress (src/transport/secrets.ts), or undefined when none are configured. */
  secrets?: SecretStore | undefined;
  /** MCP over HTTPS (mcp.ts): exchanges carrying JSON-RPC are judged message by message. */
  mcp?: McpHttp | undefined;
}

/** The decision recorded when the engine throws: fail closed (src/events/enforce.ts). */
export function failClosedDecision(err: unknown): Decision {
  return failClosed('engine', err, -1);
}

/** Records a decision; a ledger that refuses turns an `allow` into a fail-closed `error`. */
export function recordOrFailClosed(
  deps: Pick<ExchangeDeps, 'sink' | 'decider'>,
  event: SecurityEvent,
  decision: Decision,
): Decision {
  return recordSafely(deps, event, decision);
}

/** decide() + ledger, fail closed: an engine throw or an unavailable ledger yields `error`. */
export function decideAndRecord(
  deps: Pick<ExchangeDeps, 'decider' | 'sink'>,
  event: SecurityEvent,
): Decision {
  return enforceDecideAndRecord(deps, event);
}

/** What the response half needs: the decider, the limits, and recording that fails closed. */
export function responseDepsOf(deps: ExchangeDeps): ResponseDeps {
  return {
    decider: deps.decider,
    sink: deps.sink,
    limits: deps.limits,
    record: (e, d) => recordOrFailClosed(deps, e, d),
    secrets: deps.secrets,
  };
}

export function originFor(deps: Pick<ExchangeDeps, 'origin'>, ctx: ExchangeContext): EventOrigin {
  const name = ctx.meta.process_name;
  return name === undefined || name === '' ? deps.origin : { ...deps.origin, process_name: name };
}

function declaredLength(req: IncomingMessage): number | null {
  const v = req.headers['content-length'];
  return v === undefined || !/^\d+$/.test(v) ? null : Number(v);
}

function hasBody(req: IncomingMessage): boolean {
  if (req.httpVersionMajor === 2)
    return !(req as unknown as { stream: { endAfterHeaders: boolean } }).stream.endAfterHeaders;
  return req.headers['transfer-encoding'] !== undefined || (declaredLength(req) ?? 0) > 0;
}

import { NetRecord, destinationDecision, recordDestinationRefusal } from './net-row.js';
export {
  NetRecord,
  destinationDecision,
  recordDestinationRefusal,
  writeNetRow,
  type NetRowInput,
} from './net-row.js';
export { DESTINATION_GUARD_RULE } from './denial.js';

export interface RequestFacts {
  method: string;
  target: RequestTarget;
  headers: HeaderMap;
  body?: BodyFacts | undefined;
  /** The destination guard's refusal when it is known before connecting (`Upstream.destination`). */
  refused?: Error | undefined;
}

/**
 * Builds the `http.request` event, decides it once and records it, in DESIGN §2's order: a refusal
 * is answered (`deny`) before it is recorded, nothing having gone upstream; an allow is recorded
 * before anything is forwarded, and a ledger that refuses turns it into a 502. Returns the event
 * when the request may be forwarded, else null (the guest has been answered) — or a promise of
 * either while an `ask` is held for an approver.
 */
export function judgeRequest(
  deps: Pick<ExchangeDeps, 'decider' | 'sink' | 'origin' | 'secrets'>,
  ctx: ExchangeContext,
  rec: NetRecord,
  r: RequestFacts,
  accept: string,
  deny: (d: Denial) => void,
): HttpRequestEvent | null | Promise<HttpRequestEvent | null> {
  const t = r.target;
  const event = httpRequestEvent(originFor(deps, ctx), {
    method: r.method,
    scheme: t.scheme,
    host: t.host,
    port: t.port,
    path: t.path,
    query: t.query,
    raw_target: t.rawTarget,
    secrets:
      deps.secrets === undefined
        ? []
        : deps.secrets.requestSecrets(
            r.headers,
            t.query,
            r.body?.state === 'buffered' || r.body?.state === 'truncated' ? r.body.text : undefined,
          ),
    headers: r.headers,
    ...(r.body === undefined ? {} : { body: r.body }),
  });
  rec.event = event;
  // An `ask` may be held for an approver (docs/approvals.md): then this answers later.
  const held = decideHeld(deps, event);
  return held instanceof Promise
    ? held.then((d) => enforceRequest(deps, rec, event, d, r, accept, deny))
    : enforceRequest(deps, rec, event, held, r, accept, deny);
}

function enforceRequest(
  deps: Pick<ExchangeDeps, 'decider' | 'sink'>,
  rec: NetRecord,
  event: HttpRequestEvent,
  decided: Decision,
  r: RequestFacts,
  accept: string,
  deny: (d: Denial) => void,
): HttpRequestEvent | null {
  let decision = decided;
  // A destination the guard already knows it refuses (an address literal, a special-purpose name):
  // the guard's block is the decision, so the event is recorded once, as blocked.
  if (decision.action === 'allow' && r.refused !== undefined) {
    decision = destinationDecision(r.refused, decision.generation);
    rec.error = 'destination_blocked';
  }
  if (decision.action !== 'allow') {
    rec.decision = decision;
    deny(decisionDenial(decision, event.common.event_id, accept));
    recordOrFailClosed(deps, event, decision);
    return null;
  }
  decision = recordOrFailClosed(deps, event, decision);
  rec.decision = decision;
  if (decision.action !== 'allow') {
    deny(decisionDenial(decision, event.common.event_id, accept));
    return null;
  }
  return event;
}

function sendDenial(res: ServerResponse, d: Denial): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // HTTP/2 has no connection-specific headers; the stream ends with the answer.
  if (isHttp2(res)) delete d.headers.connection;
  res.writeHead(d.status, d.headers);
  res.end(d.body);
}

/**
 * Handles one parsed request. `req` may be paused; nothing is read from it before the decision
 * unless a rule reads `body`. Resolves when the exchange has been answered (not when it finishes streaming).
 */
export async function handleRequest(
  req: IncomingMessage,
  res: ServerResponse,
  ctx: ExchangeContext,
  deps: ExchangeDeps,
): Promise<void> {
  const method = req.method ?? 'GET';
  const rec = new NetRecord(deps.sink, ctx, method, null, deps.origin);
  res.once('close', () => rec.finish(res.headersSent ? res.statusCode : null));
  const accept = req.headers.accept ?? '';
  try {
    const headers = normalizeHeaders(req.rawHeaders);
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
      const d = badRequest(tr.status, tr.reason, accept);
      d.headers.connection = 'close';
      sendDenial(res, d);
      return;
    }
    const target = tr.target;
    rec.setTarget(target);

    let prefix: BodyPrefix | null = null;
    let body: BodyFacts | undefined;
    const expectContinue = (req.headers.expect ?? '').toLowerCase() === '100-continue';
    // An exchange that may carry MCP has its body read (bounded) so its messages can be judged.
    const mcp =
      deps.mcp !== undefined && deps.mcp.candidate(target.host, target.path, headers)
        ? deps.mcp
        : undefined;
    // The decoded body an MCP exchange's messages are read from (not on the event unless a rule reads it).
    let read: BodyFacts | undefined;
    if (hasBody(req)) {
      const needs = deps.decider.needsBody?.('http.request') === true;
      if (needs || mcp !== undefined) {
        if (expectContinue) res.writeContinue();
        prefix = await readBodyPrefix(req, deps.limits.maxBodyBuffer);
        rec.bytesIn = prefix.bytes;
        read = await bodyFacts({
          prefix,
          contentEncoding: headers['content-encoding'] ?? '',
          contentType: headers['content-type'] ?? '',
          declaredLength: declaredLength(req),
          limit: deps.limits.maxBodyBuffer,
        });
      }
      if (needs) body = read;
      else {
        body = {
          state: 'streamed',
          text: '',
          size: declaredLength(req) ?? 0,
          content_type: headers['content-type'] ?? '',
          truncated: false,
        };
      }
    }
    const refused = deps.upstream.destination(target.host, target.port).refused;
    const judged = judgeRequest(
      deps,
      ctx,
      rec,
      { method, target, headers, body, refused },
      accept,
      (d) => sendDenial(res, d),
    );
    // Only a held `ask` waits; everything else goes on in this same tick, as before.
    const event = judged instanceof Promise ? await judged : judged;
    if (event === null) return;
    // The guest left while its request was held for an approver: nothing goes upstream.
    if (res.destroyed) {
      rec.error = 'client_aborted';
      return;
    }
    let exchange: McpExchange | null = null;
    if (mcp !== undefined) {
      const judgedMcp = judgeMcpRequest(
        { decider: deps.decider, sink: deps.sink, mcp, secrets: deps.secrets },
        originFor(deps, ctx),
        { host: target.host, path: target.path, query: target.query, headers, method },
        prefix === null || read === undefined
          ? null
          : {
              text: read.text,
              complete: prefix.complete && read.state === 'buffered',
              encoded: (headers['content-encoding'] ?? 'identity') !== 'identity',
            },
        res,
        (code) => (rec.error = code),
      );
      // As above: only messages held for an approver make the exchange wait.
      const out = judgedMcp instanceof Promise ? await judgedMcp : judgedMcp;
      if (out.kind === 'answered') return;
      if (res.destroyed) {
        rec.error = 'client_aborted';
        return;
      }
      if (out.kind === 'forward') {
        exchange = out.exchange;
        if (out.body !== null && prefix !== null) {
          prefix = { chunks: [out.body], bytes: out.body.length, complete: true };
          setContentLength(req, out.body.length);
        }
      }
    }
    if (expectContinue && prefix === null) res.writeContinue();
    forward(req, res, ctx, deps, event, target, prefix, rec, exchange);
  } catch (err) {
    rec.error = (err as { code?: string }).code === 'E_PARSE' ? 'client_aborted' : 'internal_error';
    const d = renderDenial({
      kind: 'upstream_error',
      status: 502,
      rule_id: null,
      reason: `celgate failed while handling the request: ${(err as Error).message}`,
      event_id: rec.event?.common.event_id ?? '',
      accept,
    });
    if (!res.destroyed) sendDenial(res, d);
  }
}

/**
 * What goes upstream when the request carries secrets (src/transport/secrets.ts): header values
 * and the query with placeholders replaced by the real values (only for a host the secret belongs
 * to; the decision has already refused any other), and `Accept-Encoding: identity` so an echo of a
 * value comes back in a body celgate can scrub. Null when nothing is substituted.
 */
export function egress(
  secrets: SecretStore | undefined,
  target: RequestTarget,
  forwarded: readonly string[],
  carries: boolean,
): { headers: string[]; path: string } | null {
  if (secrets === undefined || !carries) return null;
  const headers = [...secrets.substituteHeaders(forwarded, target.host, target.scheme)];
  let identity = false;
  for (let i = 0; i + 1 < headers.length; i += 2) {
    if (headers[i]!.toLowerCase() === 'accept-encoding') {
      headers[i + 1] = 'identity';
      identity = true;
    }
  }
  if (!identity) headers.push('accept-encoding', 'identity');
  const query = secrets.substitute(target.query, target.host, target.scheme);
  return { headers, path: `${target.path}${query === '' ? '' : `?${query}`}` };
}

/**
 * The HTTP/1.1 head of a judged request the direct path or an HTTP/2 stream sends on the upstream
 * pool, as Node's keep-alive agent sends it: Host first, the guest's end-to-end fields (secrets
 * substituted, `egress`), Connection last.
 */
export function pooledRequestHead(
  secrets: SecretStore | undefined,
  event: HttpRequestEvent,
  target: RequestTarget,
  method: string,
  raw: readonly string[],
): string {
  const forwarded = forwardHeaders(raw);
  const sub = egress(secrets, target, forwarded, event.http.request.secrets.length > 0);
  const path = sub?.path ?? (target.query === '' ? target.path : `${target.path}?${target.query}`);
  return `${method} ${path} HTTP/1.1\r\nhost: ${hostHeaderFor(target)}\r\n${headerLines(sub?.headers ?? forwarded)}Connection: keep-alive\r\n\r\n`;
}

/**
 * The answer when the upstream failed before any response byte: a destination refused at connect
 * time is recorded as the guard's block (403), anything else is the row's `upstream_error` (502,
 * or 504 on a timeout).
 */
export function upstreamFailure(
  deps: { sink: EventSink },
  rec: NetRecord,
  event: HttpRequestEvent | null,
  target: RequestTarget,
  err: Error,
  accept: string,
): Denial {
  const eventId = event?.common.event_id ?? '';
  if (isCelgateError(err, 'E_DESTINATION') && event !== null) {
    recordDestinationRefusal(deps, rec, event, err);
    return destinationDenial(err, eventId, accept);
  }
  rec.error = 'upstream_error';
  return upstreamDenial(err, target.host, target.port, eventId, accept);
}

/** Asks the upstream for an uncompressed answer (`Accept-Encoding: identity`). */
function identityEncoding(headers: string[]): void {
  for (let i = 2; i + 1 < headers.length; i += 2)
    if (headers[i]!.toLowerCase() === 'accept-encoding') headers[i + 1] = 'identity';
}

/** The buffered body with in-body placeholders substituted; Content-Length follows the new size. */
function substituteBody(
  secrets: SecretStore,
  target: RequestTarget,
  prefix: BodyPrefix,
  req: IncomingMessage,
): BodyPrefix {
  const text = Buffer.concat(prefix.chunks).toString('utf8');
  const next = secrets.substitute(text, target.host, target.scheme, true);
  if (next === text) return prefix;
  const bytes = Buffer.from(next);
  const delta = bytes.length - prefix.bytes;
  const declared = req.headers['content-length'];
  if (declared !== undefined) setContentLength(req, Number(declared) + delta);
  return { ...prefix, chunks: [bytes], bytes: bytes.length };
}

/** Rewrites the Content-Length the forwarded head carries (a body celgate changed). */
function setContentLength(req: IncomingMessage, n: number): void {
  req.headers['content-length'] = String(n);
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2)
    if (req.rawHeaders[i]!.toLowerCase() === 'content-length') req.rawHeaders[i + 1] = String(n);
}

/**
 * The request's body framing upstream: the Content-Length it carries (rewritten when celgate
 * changed the body), else chunked when it has a body (a chunked or HTTP/2 upload), else none.
 */
function bodyLengthOf(req: IncomingMessage, forwarded: readonly string[]): number {
  for (let i = 0; i + 1 < forwarded.length; i += 2)
    if (forwarded[i]!.toLowerCase() === 'content-length' && /^\d+$/.test(forwarded[i + 1]!))
      return Number(forwarded[i + 1]);
  return hasBody(req) ? CHUNKED : 0;
}

function forward(
  req: IncomingMessage,
  res: ServerResponse,
  ctx: ExchangeContext,
  deps: ExchangeDeps,
  event: HttpRequestEvent,
  target: RequestTarget,
  prefix: BodyPrefix | null,
  rec: NetRecord,
  mcp: McpExchange | null,
): void {
  const carries = event.http.request.secrets.length > 0;
  // The body first: its substitution rewrites Content-Length, which the header pass then copies.
  if (prefix !== null && carries && deps.secrets !== undefined)
    prefix = substituteBody(deps.secrets, target, prefix, req);
  const forwarded = forwardHeaders(req.rawHeaders);
  const sub = egress(deps.secrets, target, forwarded, carries);
  const headers = ['host', hostHeaderFor(target), ...(sub?.headers ?? forwarded)];
  // MCP answers are judged message by message, so they must arrive readable.
  if (mcp !== null) identityEncoding(headers);
  const accept = req.headers.accept ?? '';
  let done = false;
  const upReq = new UpstreamCall(
    deps.upstream,
    deps.pool,
    {
      scheme: target.scheme,
      host: target.host,
      port: target.port,
      method: event.http.request.method,
      path: sub?.path ?? `${target.path}${target.query === '' ? '' : `?${target.query}`}`,
      headers,
      bodyLength: bodyLengthOf(req, forwarded),
    },
    {
      response: (upRes) => {
        upRes.once('end', () => (done = true));
        relayResponse(
          upRes,
          res,
          event,
          originFor(deps, ctx),
          accept,
          responseDepsOf(deps),
          rec,
          (d) => {
            done = true;
            sendDenial(res, d);
          },
          mcp,
        ).catch(() => {
          done = true;
          upRes.destroy();
          rec.error = 'upstream_error';
          res.destroy();
        });
      },
    },
  );
  upReq.on('error', (err) => {
    if (done) return;
    done = true;
    req.unpipe(upReq);
    sendDenial(res, upstreamFailure(deps, rec, event, target, err, accept));
  });
  res.once('close', () => {
    if (!res.writableFinished) upReq.destroy();
  });

  if (prefix !== null) {
    for (const c of prefix.chunks) upReq.write(c);
    if (prefix.complete) upReq.end();
    else {
      req.pipe(upReq);
      req.on('data', (c: Buffer) => (rec.bytesIn += c.length));
    }
  } else if (!hasBody(req)) {
    // No Content-Length > 0 and no Transfer-Encoding: the parser has already ended this body, so
    // there is nothing to pipe (a pipe costs listeners and a flow tick per request); the server
    // dumps the empty stream when the response finishes.
    upReq.end();
  } else {
    req.pipe(upReq);
    req.on('data', (c: Buffer) => (rec.bytesIn += c.length));
  }
}
