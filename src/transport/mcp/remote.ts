/**
 * MCP over HTTPS, the pure half: which HTTP exchanges carry MCP (a JSON-RPC body POSTed as
 * `application/json`, an SSE stream, or an endpoint forced by `mcp.remote`), what a body holds
 * (messages, or the JSON-RPC error that refuses it), the event facts of a client request and of a
 * server result, and tools/list filtering. Sans-io: no sockets, no clock, no decisions.
 *
 * The HTTP pipeline (src/transport/http/mcp.ts) owns the I/O around it; docs/mcp.md "MCP over HTTPS".
 */
import type { McpRequestFacts, McpResponseFacts } from '../../events/types.js';
import { RESPONSE_CHECKED_METHODS, resultText } from './facts.js';
import {
  RpcCode,
  exceedsDepth,
  isJsonObject,
  parsePayload,
  type Json,
  type JsonObject,
  type RpcErrorObject,
  type RpcMessage,
} from './jsonrpc.js';

/** One `mcp.remote` entry: every exchange with this host under this path is MCP. */
export interface RemoteEndpoint {
  host: string;
  /** A path prefix ('/' for the whole host). */
  path: string;
}

/** Is `host`/`path` an endpoint the config says is MCP? (`path` a prefix on segment bounds.) */
export function isForcedRemote(
  remote: readonly RemoteEndpoint[],
  host: string,
  path: string,
): boolean {
  for (const r of remote) {
    if (r.host !== host) continue;
    if (
      r.path === '/' ||
      path === r.path ||
      path.startsWith(r.path.endsWith('/') ? r.path : `${r.path}/`)
    )
      return true;
  }
  return false;
}

/** Does a content type name JSON (`application/json`, `application/x+json`, parameters ignored)? */
export function isJsonType(contentType: string): boolean {
  const t = contentType.split(';', 1)[0]!.trim().toLowerCase();
  return t === 'application/json' || (t.startsWith('application/') && t.endsWith('+json'));
}

export function isEventStream(contentType: string): boolean {
  return contentType.split(';', 1)[0]!.trim().toLowerCase() === 'text/event-stream';
}

/**
 * May this request be MCP? Cheap, from the head alone: a body sent as JSON, a client that accepts an
 * event stream (Streamable HTTP and the SSE transport both say so), or a forced endpoint. Such
 * requests take the pipeline path that buffers and judges bodies.
 */
export function mayCarryMcp(contentType: string, accept: string, forced: boolean): boolean {
  return forced || isJsonType(contentType) || accept.toLowerCase().includes('text/event-stream');
}

/** What a request body holds. */
export type McpBody =
  /** Not JSON-RPC and not claimed to be: plain HTTP. */
  | { kind: 'opaque' }
  /** JSON-RPC that breaks the protocol: refused with this error (HTTP 400), never forwarded. */
  | { kind: 'malformed'; error: RpcErrorObject }
  | { kind: 'messages'; batch: boolean; messages: RpcMessage[] };

/**
 * Classifies a JSON body. It claims to be JSON-RPC when `forced` or when its text names `"jsonrpc"`;
 * then a syntax error is -32700 and any invalid message -32600 (the whole body is refused, as the
 * vsock port refuses a malformed frame's messages).
 */
export function classifyBody(text: string, forced: boolean): McpBody {
  if (!forced && !mentionsJsonRpc(text)) return { kind: 'opaque' };
  if (!forced && !exceedsDepth(text)) {
    // Only a body whose message(s) carry a top-level "jsonrpc" key claims to be JSON-RPC; one that
    // merely quotes the word somewhere inside stays plain HTTP.
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      value = undefined; // a syntax error in a body that names "jsonrpc": refused below
    }
    if (value !== undefined && !claimsJsonRpc(value)) return { kind: 'opaque' };
  }
  const parsed = parsePayload(text);
  if (!parsed.ok) {
    if ('fatal' in parsed)
      return {
        kind: 'malformed',
        error: {
          code: RpcCode.INVALID_REQUEST,
          message: 'Invalid Request: JSON nested too deeply',
        },
      };
    return { kind: 'malformed', error: parsed.reply };
  }
  for (const m of parsed.messages) {
    if (m.type === 'invalid')
      return { kind: 'malformed', error: { code: RpcCode.INVALID_REQUEST, message: m.message } };
    if (
      (m.type === 'request' || m.type === 'notification') &&
      m.params !== undefined &&
      !isJsonObject(m.params)
    )
      return {
        kind: 'malformed',
        error: { code: RpcCode.INVALID_PARAMS, message: 'Invalid params: MCP params are objects' },
      };
    if (
      m.type === 'request' &&
      m.method === 'tools/call' &&
      isJsonObject(m.params) &&
      m.params.arguments !== undefined &&
      !isJsonObject(m.params.arguments)
    )
      return {
        kind: 'malformed',
        error: {
          code: RpcCode.INVALID_PARAMS,
          message: 'Invalid params: tools/call arguments must be an object',
        },
      };
  }
  return { kind: 'messages', batch: parsed.batch, messages: parsed.messages };
}

/** Does the text name a `"jsonrpc":` key anywhere (the cheap pre-check)? */
export function mentionsJsonRpc(text: string): boolean {
  return /"jsonrpc"\s*:/.test(text);
}

/** A JSON value whose top-level object (or any element of a top-level array) has a "jsonrpc" key. */
function claimsJsonRpc(value: unknown): boolean {
  const has = (v: unknown) => isJsonObject(v as Json) && 'jsonrpc' in (v as JsonObject);
  return Array.isArray(value) ? value.some(has) : has(value);
}

/**
 * The `mcp.request` facts of a client request or notification sent to `server` (the host):
 * tool_name for `tools/call` and `prompts/get`, arguments as on the vsock port.
 */
export function requestFacts(
  server: string,
  method: string,
  params: JsonObject | Json[] | undefined,
  id: string,
): McpRequestFacts {
  const p = isJsonObject(params) ? params : {};
  const named = method === 'tools/call' || method === 'prompts/get';
  const tool = named && typeof p.name === 'string' ? p.name : '';
  const args = named ? (isJsonObject(p.arguments) ? p.arguments : {}) : p;
  return { method, server_id: server, tool_name: tool, arguments: args, request_id: id };
}

/** What the pipeline remembers of a forwarded request until its answer is judged. */
export interface PendingCall {
  method: string;
  tool: string;
  started: number;
}

/** The `mcp.response` facts of a result, or null when results of `method` are not judged. */
export function responseFacts(
  server: string,
  call: PendingCall,
  result: Json,
): McpResponseFacts | null {
  if (!RESPONSE_CHECKED_METHODS.has(call.method)) return null;
  return {
    method: call.method,
    server_id: server,
    tool_name: call.tool,
    is_error: isJsonObject(result) && result.isError === true,
    content_text: resultText(result, call.method),
  };
}

/** The tool names a tools/list result lists ([] when it is not one). */
export function toolNames(result: Json): string[] {
  if (!isJsonObject(result) || !Array.isArray(result.tools)) return [];
  const out: string[] = [];
  for (const t of result.tools) if (isJsonObject(t) && typeof t.name === 'string') out.push(t.name);
  return out;
}

/** A tools/list result without the tools `hidden` says every call of would be refused. */
export function filterToolsList(
  result: Json,
  hidden: (tool: string) => boolean,
): { result: Json; removed: number } {
  if (!isJsonObject(result) || !Array.isArray(result.tools)) return { result, removed: 0 };
  const tools = result.tools.filter(
    (t) => !(isJsonObject(t) && typeof t.name === 'string' && hidden(t.name)),
  );
  const removed = result.tools.length - tools.length;
  return removed === 0 ? { result, removed } : { result: { ...result, tools }, removed };
}

/** The session a message belongs to: the `Mcp-Session-Id` header, else the SSE transport's `sessionId` query parameter. */
export function sessionKey(mcpSessionId: string, query: string): string {
  if (mcpSessionId !== '') return `h:${mcpSessionId}`;
  const m = /(?:^|&)sessionId=([^&]*)/.exec(query);
  return m === null ? '' : `q:${m[1]}`;
}
