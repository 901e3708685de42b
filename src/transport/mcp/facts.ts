/**
 * Pure helpers that turn MCP messages into event facts and ledger fields: tool-name namespacing,
 * the text of a tool result, the argument digest and the bounded, redacted argument preview, and
 * the model-readable denial errors. No I/O.
 */
import { hash } from 'node:crypto';
import type { Decision } from '../../events/decision.js';
import type { McpCallRow } from '../../events/sink.js';
import type { SecurityEvent } from '../../events/types.js';
import {
  RpcCode,
  isJsonObject,
  type Json,
  type JsonObject,
  type RpcErrorObject,
} from './jsonrpc.js';

/** Separator between server id and tool/prompt name toward the guest: `server__tool`. */
export const NAMESPACE_SEP = '__';
/** Server ids: lower-case, no "__" (so the first "__" always splits correctly). */
export const SERVER_ID_PATTERN = /^[a-z0-9](?:[a-z0-9-]|_(?!_))*$/;
/** Most text of one tool result given to rules (`mcp.response.content_text`). */
export const MAX_CONTENT_TEXT = 64 * 1024;
/** Longest argument preview stored in the ledger. */
export const MAX_ARGS_PREVIEW = 256;

const SECRET_KEY =
  /pass(word)?|secret|token|api[-_]?key|auth|credential|cookie|private[-_]?key|session/i;

export function namespaced(server: string, name: string): string {
  return `${server}${NAMESPACE_SEP}${name}`;
}

/** Splits `server__tool`; null when there is no separator or either side is empty. */
export function splitNamespaced(name: string): { server: string; name: string } | null {
  const i = name.indexOf(NAMESPACE_SEP);
  if (i <= 0 || i + NAMESPACE_SEP.length >= name.length) return null;
  return { server: name.slice(0, i), name: name.slice(i + NAMESPACE_SEP.length) };
}

/** Methods whose results are decided as `mcp.response` events before they reach the guest. */
export const RESPONSE_CHECKED_METHODS: ReadonlySet<string> = new Set([
  'tools/call',
  'resources/read',
  'prompts/get',
]);

function itemText(item: Json): string | null {
  if (!isJsonObject(item)) return null;
  if (item.type === 'text' && typeof item.text === 'string') return item.text;
  if (
    item.type === 'resource' &&
    isJsonObject(item.resource) &&
    typeof item.resource.text === 'string'
  )
    return item.resource.text;
  return null;
}

/**
 * The text a response rule sees (`mcp.response.content_text`), joined by "\n" and bounded:
 * tools/call — text items and embedded resource text of `content`, then `structuredContent` as JSON;
 * resources/read — `contents[].text`;
 * prompts/get — the text of each message's `content`.
 */
export function resultText(result: Json, method = 'tools/call'): string {
  if (!isJsonObject(result)) return '';
  let items: Json[] = [];
  let pick: (item: Json) => string | null = itemText;
  if (method === 'resources/read' && Array.isArray(result.contents)) {
    items = result.contents;
    pick = (c) => (isJsonObject(c) && typeof c.text === 'string' ? c.text : null);
  } else if (method === 'prompts/get' && Array.isArray(result.messages)) {
    items = result.messages;
    pick = (m) => (isJsonObject(m) ? itemText(m.content ?? null) : null);
  } else if (Array.isArray(result.content)) items = result.content;
  const parts: string[] = [];
  let size = 0;
  for (const item of items) {
    const text = pick(item);
    if (text === null) continue;
    parts.push(text);
    size += text.length + 1;
    if (size >= MAX_CONTENT_TEXT) break;
  }
  // structuredContent carries the same data as JSON; rules must see it too, or it would bypass them.
  if (
    method === 'tools/call' &&
    size < MAX_CONTENT_TEXT &&
    isJsonObject(result.structuredContent)
  ) {
    parts.push(JSON.stringify(result.structuredContent));
  }
  const joined = parts.join('\n');
  return joined.length > MAX_CONTENT_TEXT ? joined.slice(0, MAX_CONTENT_TEXT) : joined;
}

export function canonicalJson(value: Json | undefined): string {
  if (value === undefined) return 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (isJsonObject(value)) {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** sha256 of the canonical JSON, hex, first 16 characters (McpCallRow.args_digest). */
export function argsDigest(args: JsonObject): string {
  return hash('sha256', canonicalJson(args), 'hex').slice(0, 16);
}

function redact(value: Json, depth: number): Json {
  if (depth > 8) return '…';
  if (Array.isArray(value)) return value.slice(0, 16).map((v) => redact(v, depth + 1));
  if (isJsonObject(value)) {
    const out: JsonObject = {};
    for (const [k, v] of Object.entries(value))
      out[k] = SECRET_KEY.test(k) ? '[redacted]' : redact(v, depth + 1);
    return out;
  }
  if (typeof value === 'string' && value.length > 128) return `${value.slice(0, 128)}…`;
  return value;
}

/** Bounded preview of the arguments with secret-looking keys replaced by "[redacted]". */
export function argsPreview(args: JsonObject): string {
  const text = JSON.stringify(redact(args, 0));
  return text.length > MAX_ARGS_PREVIEW ? `${text.slice(0, MAX_ARGS_PREVIEW - 1)}…` : text;
}

/** What an `mcp_calls` row says beyond the event's identity and the decision. */
export interface McpCallFacts {
  direction: 'request' | 'response';
  server: string;
  method: string;
  tool: string;
  requestId: string;
  args: { args_digest: string; args_preview: string };
  isError: boolean;
  durationMs: number;
  transport: 'vsock' | 'https';
}

/**
 * The `mcp_calls` row of one decided MCP message, for the vsock port and MCP over HTTPS alike.
 * Field by field, not spread: two spreads around nine more properties cost ~19 µs per row in the
 * echo profile (slow map transitions; bench/mcp.ts).
 */
export function mcpCallRow(event: SecurityEvent, decision: Decision, f: McpCallFacts): McpCallRow {
  const c = event.common;
  return {
    event_id: c.event_id,
    session_id: c.session_id,
    timestamp_ms: c.timestamp_ms,
    decision: decision.action,
    rule_id: decision.rule_id,
    reason: decision.reason,
    generation: decision.generation,
    process_name: c.process_name,
    direction: f.direction,
    server_id: f.server,
    method: f.method,
    tool_name: f.tool,
    request_id: f.requestId,
    args_digest: f.args.args_digest,
    args_preview: f.args.args_preview,
    is_error: f.isError,
    duration_ms: Math.round(f.durationMs * 1000) / 1000,
    transport: f.transport,
  };
}

/**
 * The JSON-RPC error for a decision that is not `allow`: rule id and reason in `error.data`, and a
 * message that tells a model the refusal is deliberate and retrying will not help.
 */
export function denialError(
  decision: Decision,
  eventId: string,
  what: 'request' | 'result',
): RpcErrorObject {
  const rule = decision.rule_id === null ? 'the default policy' : `rule "${decision.rule_id}"`;
  const data: JsonObject = {
    decision: decision.action,
    rule_id: decision.rule_id,
    reason: decision.reason,
    event_id: eventId,
    stage: what,
    retryable: false,
  };
  if (decision.action === 'error') {
    return {
      code: RpcCode.POLICY_ERROR,
      message:
        `celgate refused this ${what} because its security policy could not be evaluated (fail closed): ${decision.reason}. ` +
        'Retrying will not help until the policy is fixed; do not retry this call.',
      data,
    };
  }
  return {
    code: RpcCode.POLICY_BLOCKED,
    message:
      `celgate blocked this ${what === 'request' ? 'call' : 'result'} by ${rule}: ${decision.reason}. ` +
      'This is a deliberate security policy decision, not a transient error: do not retry this call or variations of it; it will be blocked again.',
    data,
  };
}
