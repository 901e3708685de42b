/**
 * MCP over HTTPS, the answer half (docs/mcp.md "MCP over HTTPS"): the upstream's JSON body or SSE
 * stream read message by message — results of forwarded calls decided as `mcp.response` events (a
 * refusal replaces the message in the same framing), tools/list results filtered — and relayed as
 * they are judged: SSE event by event, with backpressure, never held to the end of the stream.
 *
 * Owns: the relays of MCP answers. Must not: decide itself, or relay a judged message before its
 * decision. The request half and the per-service state: mcp.ts.
 */
import type { ServerResponse } from 'node:http';
import { mcpResponseEvent, type HeaderMap } from '../../events/index.js';
import { decideAndRecord } from '../../events/enforce.js';
import { denialError } from '../mcp/facts.js';
import {
  RpcCode,
  errorResponse,
  parsePayload,
  type Json,
  type JsonObject,
  type RpcMessage,
} from '../mcp/jsonrpc.js';
import {
  filterToolsList,
  isEventStream,
  isJsonType,
  mentionsJsonRpc,
  responseFacts,
  sessionKey,
  toolNames,
} from '../mcp/remote.js';
import { encodeSseEvent, SseDecoder } from '../mcp/sse.js';
import { readBodyPrefix, type BodyPrefix } from './body.js';
import { MAX_MCP_JSON_BYTES, mcpRow, type McpExchange } from './mcp.js';
import type { UpstreamResponse } from './upstream-call.js';

/**
 * Judges the messages a server sent (one JSON body or one SSE event's data): results of calls
 * this gateway forwarded are decided as `mcp.response` events (a refusal replaces the result with
 * the JSON-RPC denial), tools/list results lose hidden tools. Returns null when nothing changed.
 */
function judgeServerMessages(ex: McpExchange, messages: RpcMessage[]): Json[] | null {
  let changed = false;
  const out: Json[] = [];
  for (const m of messages) {
    if (m.type !== 'response' || m.id === null) {
      out.push(m.type === 'invalid' ? null : m.raw);
      continue;
    }
    const call = ex.find(String(m.id));
    const result = m.raw.result;
    if (call === undefined || result === undefined) {
      out.push(m.raw);
      continue;
    }
    let msg: JsonObject = m.raw;
    if (call.method === 'tools/list') {
      ex.deps.mcp.noteListed(ex.host, toolNames(result));
      const f = filterToolsList(result, (t) => ex.deps.mcp.isHidden(ex.host, t));
      if (f.removed > 0) {
        msg = { ...m.raw, result: f.result };
        changed = true;
      }
    }
    const facts = responseFacts(ex.host, call, result);
    if (facts !== null) {
      const event = mcpResponseEvent(ex.origin, facts);
      const decision = decideAndRecord(ex.deps, event);
      mcpRow(
        ex.deps.sink,
        event,
        decision,
        'response',
        { server: ex.host, method: call.method, tool: call.tool, id: String(m.id), args: {} },
        facts.is_error || decision.action !== 'allow',
        performance.now() - call.started,
      );
      if (decision.action !== 'allow') {
        msg = errorResponse(m.id, denialError(decision, event.common.event_id, 'result'));
        changed = true;
      }
    }
    out.push(msg);
  }
  return changed ? out : null;
}

/** Parses and judges one server payload; returns the text to send instead, or null for "as is". */
function judgePayload(ex: McpExchange, text: string): string | null {
  if (!mentionsJsonRpc(text)) return null;
  const parsed = parsePayload(text);
  if (!parsed.ok) return null; // not JSON-RPC after all: the client's own parser will say so
  const out = judgeServerMessages(ex, parsed.messages);
  if (out === null) return null;
  return JSON.stringify(parsed.batch ? out : out[0]);
}

/**
 * Relays an allowed upstream answer of an MCP exchange, judging its messages. Returns false when
 * the answer is not MCP (the caller relays it as plain HTTP).
 */
export function relayMcpResponse(
  ex: McpExchange,
  prefix: BodyPrefix | null,
  upRes: UpstreamResponse,
  res: ServerResponse,
  headers: HeaderMap,
  out: string[],
  writeHead: (status: number, headers: string[]) => void,
  counted: (n: number) => void,
): boolean {
  const type = headers['content-type'] ?? '';
  const status = upRes.statusCode;
  const encoded = (headers['content-encoding'] ?? 'identity') !== 'identity';
  const head = out.filter((_, i) => {
    const name = out[i - (i % 2)]!.toLowerCase();
    return name !== 'content-length';
  });
  const scrub = (s: string) =>
    ex.deps.secrets !== undefined && ex.deps.secrets.scrubs(ex.host) ? ex.deps.secrets.scrub(s) : s;
  if (encoded && (isEventStream(type) || (isJsonType(type) && ex.calls.size > 0))) {
    // Asked for identity and answered compressed: its messages cannot be judged, so none pass.
    upRes.resume();
    const text = JSON.stringify(
      errorResponse(null, {
        code: RpcCode.SERVER_ERROR,
        message: `celgate cannot judge a compressed MCP answer (Content-Encoding: ${headers['content-encoding']})`,
        data: { reason: 'compressed_answer' },
      }),
    );
    endWith(writeHead, res, 502, JSON_HEAD, text);
    return true;
  }
  if (isEventStream(type)) {
    relaySse(ex, prefix, upRes, res, status, head, writeHead, counted, scrub);
    return true;
  }
  // A JSON body answers this exchange's own requests; one that answers none (a GET) is not MCP.
  if (isJsonType(type) && !encoded && (ex.calls.size > 0 || ex.denials.length > 0)) {
    void relayJson(ex, prefix, upRes, res, status, head, writeHead, counted, scrub);
    return true;
  }
  if (status === 202 && ex.denials.length > 0) {
    // Only notifications were forwarded; the refused requests still need their answers.
    upRes.resume();
    const text = JSON.stringify(ex.denials.length === 1 ? ex.denials[0] : ex.denials);
    endWith(writeHead, res, 200, JSON_HEAD, text);
    return true;
  }
  return false;
}

async function relayJson(
  ex: McpExchange,
  first: BodyPrefix | null,
  upRes: UpstreamResponse,
  res: ServerResponse,
  status: number,
  head: string[],
  writeHead: (status: number, headers: string[]) => void,
  counted: (n: number) => void,
  scrub: (s: string) => string,
): Promise<void> {
  let prefix: BodyPrefix;
  try {
    prefix =
      first?.complete === true
        ? first
        : await readBodyPrefix(upRes, MAX_MCP_JSON_BYTES - (first?.bytes ?? 0));
  } catch {
    res.destroy();
    return;
  }
  if (first !== null && prefix !== first)
    prefix = {
      chunks: [...first.chunks, ...prefix.chunks],
      bytes: first.bytes + prefix.bytes,
      complete: prefix.complete,
    };
  counted(prefix.bytes);
  if (!prefix.complete) {
    upRes.destroy();
    res.destroy();
    return;
  }
  const raw = scrub(Buffer.concat(prefix.chunks).toString('utf8'));
  let text = judgePayload(ex, raw) ?? raw;
  if (ex.denials.length > 0) {
    // A batch of which some requests were refused: their errors join the server's answers.
    const parsed = parsePayload(text);
    const answers: Json[] =
      parsed.ok && parsed.batch
        ? (JSON.parse(text) as Json[])
        : parsed.ok
          ? [JSON.parse(text) as Json]
          : [];
    text = JSON.stringify([...answers, ...ex.denials]);
  }
  if (res.destroyed) return;
  endWith(writeHead, res, status, head, text);
}

const JSON_HEAD = ['content-type', 'application/json'];

/** Answers with the whole body `text` under `head` (plus its content-length). */
function endWith(
  writeHead: (status: number, headers: string[]) => void,
  res: ServerResponse,
  status: number,
  head: string[],
  text: string,
): void {
  writeHead(status, [...head, 'content-length', String(Buffer.byteLength(text))]);
  res.end(text);
}

function relaySse(
  ex: McpExchange,
  prefix: BodyPrefix | null,
  upRes: UpstreamResponse,
  res: ServerResponse,
  status: number,
  head: string[],
  writeHead: (status: number, headers: string[]) => void,
  counted: (n: number) => void,
  scrub: (s: string) => string,
): void {
  writeHead(status, head);
  res.flushHeaders();
  const decoder = new SseDecoder();
  let closeStream = null as (() => void) | null;
  const write = (b: Buffer): boolean => (res.writableEnded || res.destroyed ? true : res.write(b));
  for (const d of ex.denials) write(encodeSseEvent({ event: 'message', data: JSON.stringify(d) }));
  // The server's own stream also carries what celgate tells the client (tools/list_changed);
  // written between the server's events, never inside one.
  const closeNotices = ex.opensStream
    ? ex.deps.mcp.openServerStream(ex.host, (b) => void write(b))
    : null;
  const onDrain = () => upRes.resume();
  const onData = (chunk: Buffer) => {
    counted(chunk.length);
    if (res.destroyed) {
      upRes.destroy();
      return;
    }
    const { events, error } = decoder.push(chunk);
    let ok = true;
    for (const e of events) {
      let bytes = e.raw;
      if (e.event === 'endpoint' && e.data !== null && closeStream === null) {
        // HTTP+SSE transport: the POST endpoint of this session; denials for it come here.
        try {
          const u = new URL(e.data, `https://${ex.host}${ex.url}`);
          const url = `${u.pathname}${u.search}`;
          const session = sessionKey('', u.search.slice(1));
          closeStream = ex.deps.mcp.openStream(`${ex.host}\0${url}`, {
            session,
            inject: (b) => void write(b),
          });
          // Answers on this stream belong to that session.
          ex.session = session;
        } catch {
          // Not a URL: passed on as it came.
        }
      } else if (e.data !== null && (e.event === '' || e.event === 'message')) {
        const raw = scrub(e.data);
        const next = judgePayload(ex, raw);
        if (next !== null || raw !== e.data)
          bytes = encodeSseEvent({ event: e.event, id: e.id, data: next ?? raw });
      }
      ok = write(bytes) && ok;
    }
    if (error !== null) {
      upRes.destroy();
      res.destroy();
      return;
    }
    if (!ok) {
      upRes.pause();
      res.once('drain', onDrain);
    }
  };
  for (const c of prefix?.chunks ?? []) onData(c);
  if (prefix?.complete === true) {
    closeStream?.();
    closeNotices?.();
    if (!res.writableEnded) res.end();
    return;
  }
  upRes.on('data', onData);
  upRes.on('end', () => {
    closeStream?.();
    closeNotices?.();
    // An event cut off by the end of the stream is never dispatched by a client; it is dropped.
    if (!res.writableEnded) res.end();
  });
  upRes.on('error', () => res.destroy());
  upRes.on('aborted', () => res.destroy());
  res.once('close', () => {
    closeStream?.();
    closeNotices?.();
    res.removeListener('drain', onDrain);
    if (!upRes.complete) upRes.destroy();
  });
}
