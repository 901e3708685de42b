/**
 * The response half of an allowed exchange: build the `http.response` event from the upstream's
 * status and headers (and, only when a rule reads `http.response.body`, a bounded decoded prefix of
 * the body), decide it BEFORE any byte of the body reaches the guest, then deny or relay with
 * backpressure. SSE and large downloads stream chunk by chunk; nothing is buffered unless a rule
 * reads the body, and then at most `maxBodyBuffer` bytes.
 *
 * Owns: response enforcement. Must not: decide itself, or release body bytes before `allow`.
 */
import type { ServerResponse } from 'node:http';
import {
  httpResponseEvent,
  normalizeHeaders,
  type BodyFacts,
  type Decision,
  type EventOrigin,
  type HeaderMap,
  type HttpRequestEvent,
  type HttpResponseEvent,
  type SecurityEvent,
} from '../../events/index.js';
import { bodyFacts, readBodyPrefix, type BodyPrefix } from './body.js';
import { decisionDenial, type Denial } from './denial.js';
import type { BodyAwareDecider } from '../../events/decision.js';
import { decideSafely } from '../../events/enforce.js';
import type { EventSink } from '../../events/sink.js';
import type { HttpLimits } from './limits.js';
import type { BodyScrubber, SecretStore } from '../secrets.js';
import type { McpExchange } from './mcp.js';
import { relayMcpResponse } from './mcp-relay.js';
import type { UpstreamResponse } from './upstream-call.js';

/** Hop-by-hop response headers never passed to the guest (framing is the gateway's own). */
const RESPONSE_DROP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-connection',
  'proxy-authenticate',
]);

/**
 * The response headers not passed to the guest: RESPONSE_DROP plus any the upstream names in its
 * own `Connection` header (hop-by-hop by RFC 9110 §7.6.1). The shared set unless it names some.
 */
export function responseDrops(raw: readonly string[]): ReadonlySet<string> {
  let drops: Set<string> | null = null;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]!.length !== 10 || raw[i]!.toLowerCase() !== 'connection') continue;
    for (const t of raw[i + 1]!.split(',')) {
      const name = t.trim().toLowerCase();
      if (name !== '' && !RESPONSE_DROP.has(name)) (drops ??= new Set(RESPONSE_DROP)).add(name);
    }
  }
  return drops ?? RESPONSE_DROP;
}

/** What the response side reports back to the exchange's ledger row. */
export interface ResponseRecord {
  bytesOut: number;
  event: SecurityEvent | null;
  decision: Decision | null;
}

export interface ResponseDeps {
  decider: BodyAwareDecider;
  /** Records a decision; returns a fail-closed decision when the ledger refuses. */
  record(event: SecurityEvent, decision: Decision): Decision;
  /** Where decisions are recorded; asked by the enforcement primitive whether it can record. */
  sink: EventSink;
  limits: HttpLimits;
  /** Secret values echoed by an upstream are replaced by their placeholders (src/transport/secrets.ts). */
  secrets?: SecretStore | undefined;
}

/** Whether `res` answers an HTTP/2 stream (Node's compatibility API; h2.ts). */
export function isHttp2(res: ServerResponse): boolean {
  return (res as { stream?: unknown }).stream !== undefined;
}

/** The response head; HTTP/2 has no reason phrase. */
function writeHead(
  res: ServerResponse,
  status: number,
  message: string | undefined,
  headers: string[],
): void {
  if (isHttp2(res)) res.writeHead(status, headers);
  else res.writeHead(status, message, headers);
}

/** Content types whose bodies are scanned for echoed secret values. */
function scrubbable(contentType: string | undefined): boolean {
  const t = (contentType ?? '').toLowerCase();
  return (
    t === '' ||
    t.startsWith('text/') ||
    /json|xml|javascript|x-www-form-urlencoded|event-stream/.test(t)
  );
}

/**
 * Whether a response body is scanned for echoed secret values (its length may change then): a
 * text-like content type, not compressed.
 */
export function scrubbableBody(headers: HeaderMap): boolean {
  return (
    scrubbable(headers['content-type']) &&
    (headers['content-encoding'] ?? 'identity') === 'identity'
  );
}

/**
 * Builds the `http.response` event and decides it. With no rule against a response the engine
 * keeps the request's allow, also under a deny-by-default profile (src/policy/engine.ts); only a
 * matching rule or a failure refuses it. The decision is recorded only when it says something: a
 * match, a finding, or a refusal.
 */
export function judgeResponse(
  deps: Pick<ResponseDeps, 'decider' | 'record' | 'sink'>,
  request: HttpRequestEvent,
  origin: EventOrigin,
  status: number,
  headers: HeaderMap,
  body: BodyFacts,
): { event: HttpResponseEvent; decision: Decision } {
  const event = httpResponseEvent(origin, request.http.request, { status, headers, body });
  let decision = decideSafely(deps, event);
  if (decision.action !== 'allow' || decision.matches.length > 0)
    decision = deps.record(event, decision);
  return { event, decision };
}

/** What a pooled exchange (the direct path, an HTTP/2 stream) does with an upstream's head. */
export type StreamedHead =
  | { allowed: false; event: HttpResponseEvent; decision: Decision; denial: Denial }
  | {
      allowed: true;
      headers: HeaderMap;
      /** HEAD, 204 or 304: no body follows. */
      noBody: boolean;
      /** The secret store when this host's answers are scrubbed of secret values, else undefined. */
      secrets: SecretStore | undefined;
      /** Set when the body is scanned for echoed secret values (its length may change). */
      scrubber: BodyScrubber | null;
    };

/**
 * Judges a response head whose body streams unread (judgeResponse), and says how an allowed body
 * is relayed: scrubbed of echoed secrets for a host secrets go to (`target.host`), when its type is
 * text-like. A refusal's denial is rendered for the guest's `target.accept`.
 */
export function judgeStreamedHead(
  deps: Pick<ResponseDeps, 'decider' | 'record' | 'sink' | 'secrets'>,
  request: HttpRequestEvent,
  origin: EventOrigin,
  target: { method: string; host: string; accept: string },
  status: number,
  raw: string[],
): StreamedHead {
  const headers = normalizeHeaders(raw);
  const streamed = streamedBodyFacts(headers);
  const { event, decision } = judgeResponse(deps, request, origin, status, headers, streamed);
  if (decision.action !== 'allow')
    return {
      allowed: false,
      event,
      decision,
      denial: decisionDenial(decision, event.common.event_id, target.accept),
    };
  const noBody = target.method === 'HEAD' || status === 204 || status === 304;
  const secrets =
    deps.secrets !== undefined && deps.secrets.scrubs(target.host) ? deps.secrets : undefined;
  const scrub = secrets !== undefined && !noBody && scrubbableBody(headers);
  return {
    allowed: true,
    headers,
    noBody,
    secrets,
    scrubber: scrub ? secrets.bodyScrubber() : null,
  };
}

/** Body facts for a response whose body streams unread: its declared size and type. */
export function streamedBodyFacts(headers: HeaderMap): BodyFacts {
  const len = Number(headers['content-length'] ?? 0);
  return {
    state: 'streamed',
    text: '',
    size: Number.isFinite(len) ? len : 0,
    content_type: headers['content-type'] ?? '',
    truncated: false,
  };
}

/**
 * Judges and relays one upstream response. `deny` answers the guest when the response is refused.
 * Resolves once the decision is enforced (the body may still be streaming).
 */
export async function relayResponse(
  upRes: UpstreamResponse,
  res: ServerResponse,
  request: HttpRequestEvent,
  origin: EventOrigin,
  accept: string,
  deps: ResponseDeps,
  rec: ResponseRecord,
  deny: (d: Denial) => void,
  mcp: McpExchange | null = null,
): Promise<void> {
  const status = upRes.statusCode;
  const headers = normalizeHeaders(upRes.rawHeaders);
  let prefix: BodyPrefix | null = null;
  let body = streamedBodyFacts(headers);
  if (
    deps.decider.needsBody?.('http.response') === true &&
    request.http.request.method !== 'HEAD' &&
    status !== 204 &&
    status !== 304
  ) {
    prefix = await readBodyPrefix(upRes, deps.limits.maxBodyBuffer);
    body = await bodyFacts({
      prefix,
      contentEncoding: headers['content-encoding'] ?? '',
      contentType: headers['content-type'] ?? '',
      declaredLength:
        headers['content-length'] === undefined ? null : Number(headers['content-length']),
      limit: deps.limits.maxBodyBuffer,
    });
  }
  const { event, decision } = judgeResponse(deps, request, origin, status, headers, body);
  if (decision.action !== 'allow') {
    upRes.destroy();
    rec.event = event;
    rec.decision = decision;
    deny(decisionDenial(decision, event.common.event_id, accept));
    return;
  }
  const secrets =
    deps.secrets !== undefined && deps.secrets.scrubs(request.http.request.host)
      ? deps.secrets
      : undefined;
  relayAllowed(upRes, res, rec, prefix, headers, secrets, mcp);
}

function relayAllowed(
  upRes: UpstreamResponse,
  res: ServerResponse,
  rec: ResponseRecord,
  prefix: BodyPrefix | null,
  headers: Record<string, string>,
  secrets: SecretStore | undefined,
  mcp: McpExchange | null,
): void {
  const status = upRes.statusCode;
  if (res.destroyed) {
    upRes.destroy();
    return;
  }
  const out: string[] = [];
  const drops = responseDrops(upRes.rawHeaders);
  // A body from a host secrets go to is scanned for echoed values; its length may change then.
  const scrub = secrets !== undefined && scrubbableBody(headers);
  for (let i = 0; i + 1 < upRes.rawHeaders.length; i += 2) {
    const name = upRes.rawHeaders[i]!.toLowerCase();
    if (drops.has(name) || (scrub && name === 'content-length')) continue;
    out.push(
      upRes.rawHeaders[i]!,
      secrets === undefined ? upRes.rawHeaders[i + 1]! : secrets.scrub(upRes.rawHeaders[i + 1]!),
    );
  }
  // MCP over HTTPS (mcp.ts): its messages are judged as they arrive; secrets are scrubbed per message.
  if (
    mcp !== null &&
    relayMcpResponse(
      mcp,
      prefix,
      upRes,
      res,
      headers,
      out,
      (s, h) => writeHead(res, s, upRes.statusMessage, h),
      (n) => (rec.bytesOut += n),
    )
  )
    return;
  if (scrub) {
    relayScrubbed(upRes, res, rec, prefix, status, out, secrets.bodyScrubber());
    return;
  }
  writeHead(res, status, upRes.statusMessage, out);
  if (headers['content-type']?.startsWith('text/event-stream') === true) res.flushHeaders();
  upRes.on('error', () => res.destroy());
  upRes.on('aborted', () => res.destroy());
  if (prefix !== null) {
    for (const c of prefix.chunks) res.write(c);
    rec.bytesOut += prefix.bytes;
    if (prefix.complete) {
      res.end();
      return;
    }
  }
  relayBody(upRes, res, rec, prefix?.bytes ?? 0, headers['content-length']);
}

/** Relays a body through the secret scrubber (framing chosen by Node: chunked, or close for HTTP/1.0). */
function relayScrubbed(
  upRes: UpstreamResponse,
  res: ServerResponse,
  rec: ResponseRecord,
  prefix: BodyPrefix | null,
  status: number,
  out: string[],
  scrubber: BodyScrubber,
): void {
  writeHead(res, status, upRes.statusMessage, out);
  upRes.on('error', () => res.destroy());
  upRes.on('aborted', () => res.destroy());
  const send = (c: Buffer) => {
    const clean = scrubber.push(c);
    return clean.length === 0 || res.write(clean);
  };
  if (prefix !== null) {
    for (const c of prefix.chunks) send(c);
    rec.bytesOut += prefix.bytes;
    if (prefix.complete) {
      res.end(scrubber.end());
      return;
    }
  }
  const onDrain = () => upRes.resume();
  upRes.on('data', (c: Buffer) => {
    rec.bytesOut += c.length;
    if (res.writableEnded) return;
    if (res.destroyed) {
      upRes.destroy();
      return;
    }
    if (!send(c)) {
      upRes.pause();
      res.once('drain', onDrain);
    }
  });
  upRes.on('end', () => {
    if (!res.writableEnded) res.end(scrubber.end());
  });
  res.once('close', () => {
    res.removeListener('drain', onDrain);
    if (!upRes.complete) upRes.destroy();
  });
}

/**
 * Streams the rest of the body with backpressure. When the upstream declared a length, the chunk that
 * completes it is sent with `res.end(chunk)`, so the last bytes and the end of the message leave in
 * one corked write (a pipe would issue a second, empty write per response).
 */
function relayBody(
  upRes: UpstreamResponse,
  res: ServerResponse,
  rec: ResponseRecord,
  already: number,
  declared: string | undefined,
): void {
  const expected = declared !== undefined && /^\d+$/.test(declared) ? Number(declared) : -1;
  let seen = already;
  const onDrain = () => upRes.resume();
  upRes.on('data', (c: Buffer) => {
    rec.bytesOut += c.length;
    seen += c.length;
    if (res.writableEnded) return;
    if (res.destroyed) {
      upRes.destroy();
      return;
    }
    if (seen === expected) {
      res.end(c);
      return;
    }
    if (!res.write(c)) {
      upRes.pause();
      res.once('drain', onDrain);
    }
  });
  upRes.on('end', () => {
    if (!res.writableEnded) res.end();
  });
  res.once('close', () => {
    res.removeListener('drain', onDrain);
    if (!upRes.complete) upRes.destroy();
  });
}
