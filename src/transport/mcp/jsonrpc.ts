/**
 * JSON-RPC 2.0 message parsing and validation for MCP payloads, with the bounds the guest cannot
 * exceed (nesting depth, batch size). Sans-io: a payload in, classified messages or one verdict out.
 * No sockets, no clock, no logging; never throws past its own functions.
 */

export const JSONRPC_VERSION = '2.0';
/** Deepest object/array nesting accepted in one message (CEL projection walks arguments). */
export const MAX_JSON_DEPTH = 64;
/** Most messages accepted in one batch array. */
export const MAX_BATCH = 64;
/** Longest method name accepted. */
export const MAX_METHOD_BYTES = 256;

export const RpcCode = {
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL_ERROR: -32603,
  /** Upstream timed out, crashed or is unavailable (the JSON-RPC "server error" range). */
  SERVER_ERROR: -32000,
  /** celgate policy refused the request or the result (see docs/mcp.md). */
  POLICY_BLOCKED: -32010,
  /** celgate could not decide (engine error): fail closed. */
  POLICY_ERROR: -32011,
} as const;

export type RpcId = string | number;
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export interface RpcErrorObject {
  code: number;
  message: string;
  data?: Json;
}

export type RpcMessage =
  | {
      type: 'request';
      id: RpcId;
      method: string;
      params: JsonObject | Json[] | undefined;
      raw: JsonObject;
    }
  | {
      type: 'notification';
      method: string;
      params: JsonObject | Json[] | undefined;
      raw: JsonObject;
    }
  | { type: 'response'; id: RpcId | null; raw: JsonObject }
  | { type: 'invalid'; id: RpcId | null; message: string };

export type ParsedPayload =
  | { ok: true; batch: boolean; messages: RpcMessage[] }
  /** The payload gets one JSON-RPC error reply (-32700 or -32600) and the stream stays open. */
  | { ok: false; reply: RpcErrorObject }
  /** The payload is hostile (bad bytes, too deep): the stream is closed with this reason. */
  | { ok: false; fatal: 'json_too_deep' };

const isObject = (v: unknown): v is JsonObject =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * True when `text` nests objects/arrays deeper than `max`. Scans characters (strings skipped), so
 * it is linear and cannot overflow a stack, and runs before JSON.parse sees the text.
 */
export function exceedsDepth(text: string, max: number = MAX_JSON_DEPTH): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped char
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

/** Parses one already-decoded payload (one frame or one NDJSON line) into messages. */
export function parsePayload(text: string): ParsedPayload {
  if (exceedsDepth(text)) return { ok: false, fatal: 'json_too_deep' };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return {
      ok: false,
      reply: { code: RpcCode.PARSE_ERROR, message: `Parse error: ${(err as Error).message}` },
    };
  }
  if (Array.isArray(value)) {
    if (value.length === 0)
      return {
        ok: false,
        reply: { code: RpcCode.INVALID_REQUEST, message: 'Invalid Request: empty batch' },
      };
    if (value.length > MAX_BATCH) {
      return {
        ok: false,
        reply: {
          code: RpcCode.INVALID_REQUEST,
          message: `Invalid Request: batch of ${value.length} exceeds ${MAX_BATCH}`,
        },
      };
    }
    return { ok: true, batch: true, messages: value.map(classify) };
  }
  return { ok: true, batch: false, messages: [classify(value)] };
}

/** Sorts one JSON value into request / notification / response / invalid. */
export function classify(value: unknown): RpcMessage {
  if (!isObject(value))
    return {
      type: 'invalid',
      id: null,
      message: 'Invalid Request: a message must be a JSON object',
    };
  const rawId = value.id;
  const idOk = typeof rawId === 'string' || (typeof rawId === 'number' && Number.isFinite(rawId));
  const id = idOk ? (rawId as RpcId) : null;
  if (value.jsonrpc !== JSONRPC_VERSION)
    return { type: 'invalid', id, message: 'Invalid Request: "jsonrpc" must be "2.0"' };
  if ('method' in value) {
    const method = value.method;
    if (typeof method !== 'string' || method === '' || method.length > MAX_METHOD_BYTES) {
      return {
        type: 'invalid',
        id,
        message: 'Invalid Request: "method" must be a non-empty string',
      };
    }
    const params = value.params;
    if (params !== undefined && typeof params !== 'object') {
      return {
        type: 'invalid',
        id,
        message: 'Invalid Request: "params" must be an object or an array',
      };
    }
    if (params === null)
      return {
        type: 'invalid',
        id,
        message: 'Invalid Request: "params" must be an object or an array',
      };
    if (!('id' in value)) return { type: 'notification', method, params, raw: value };
    if (!idOk)
      return {
        type: 'invalid',
        id: null,
        message: 'Invalid Request: "id" must be a string or a number',
      };
    return { type: 'request', id: id!, method, params, raw: value };
  }
  if ('result' in value || 'error' in value) {
    if (rawId !== null && !idOk)
      return { type: 'invalid', id: null, message: 'Invalid Request: bad response id' };
    return { type: 'response', id, raw: value };
  }
  return { type: 'invalid', id, message: 'Invalid Request: neither a request nor a response' };
}

export function errorResponse(id: RpcId | null, error: RpcErrorObject): JsonObject {
  return { jsonrpc: JSONRPC_VERSION, id, error: error as unknown as JsonObject };
}

export function resultResponse(id: RpcId, result: Json): JsonObject {
  return { jsonrpc: JSONRPC_VERSION, id, result };
}

export function notification(method: string, params?: JsonObject): JsonObject {
  return params === undefined
    ? { jsonrpc: JSONRPC_VERSION, method }
    : { jsonrpc: JSONRPC_VERSION, method, params };
}

export { isObject as isJsonObject };
