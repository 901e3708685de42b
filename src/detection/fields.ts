/**
 * Resolves a Detection IR field path against the policy field table for one event type: a plain
 * contract field, or a header (`http.request.headers.<name>`). Owns IR-path syntax only; the table
 * itself lives in src/policy/fields.ts and is never copied here. Pure; no I/O.
 */
import type { EventType } from '../events/types.js';
import {
  EVENT_ROOTS,
  FIELD_BY_PATH,
  closestField,
  rootOf,
  type FieldType,
} from '../policy/fields.js';

export type ResolvedField =
  | { kind: 'field'; path: string; type: FieldType }
  | { kind: 'header'; root: 'http.request' | 'http.response'; name: string }
  | { kind: 'argument'; key: string };

/** `mcp.request.arguments.<key>` names one top-level MCP tool argument (compared as a string). */
const ARGUMENTS_PREFIX = 'mcp.request.arguments.';
const MAX_ARGUMENT_KEY = 256;

export type FieldResolution = { ok: true; field: ResolvedField } | { ok: false; message: string };

/** RFC 9110 token characters, lower-case (header names are stored lower-case). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]{1,256}$/;

/** Resolutions are pure functions of (path, event type); cached, bounded. */
const CACHE = new Map<string, FieldResolution>();
const CACHE_LIMIT = 4096;

export function resolveField(path: string, eventType: EventType): FieldResolution {
  const key = `${eventType} ${path}`;
  const hit = CACHE.get(key);
  if (hit !== undefined) return hit;
  const res = resolveUncached(path, eventType);
  if (CACHE.size >= CACHE_LIMIT) CACHE.clear();
  CACHE.set(key, res);
  return res;
}

function resolveUncached(path: string, eventType: EventType): FieldResolution {
  const root = rootOf(path);
  const roots = EVENT_ROOTS[eventType];
  if (root === undefined) {
    const hint = closestField(path.split('.').slice(0, -1).join('.'), path.split('.').pop() ?? '');
    return {
      ok: false,
      message: `unknown field "${path}"${hint === undefined ? '' : ` (did you mean "${hint}"?)`}`,
    };
  }
  if (!roots.includes(root)) {
    return {
      ok: false,
      message: `field "${path}" is not carried by ${eventType} events (roots: ${roots.join(', ')})`,
    };
  }
  for (const hroot of ['http.request', 'http.response'] as const) {
    const prefix = `${hroot}.headers.`;
    if (root === hroot && path.startsWith(prefix)) {
      const name = path.slice(prefix.length);
      if (!HEADER_NAME.test(name)) {
        return { ok: false, message: `header name "${name}" must be a lower-case HTTP token` };
      }
      return { ok: true, field: { kind: 'header', root: hroot, name } };
    }
  }
  if (root === 'mcp.request' && path.startsWith(ARGUMENTS_PREFIX)) {
    const key = path.slice(ARGUMENTS_PREFIX.length);
    if (key === '' || key.length > MAX_ARGUMENT_KEY)
      return { ok: false, message: `argument name must be 1…${MAX_ARGUMENT_KEY} characters` };
    return { ok: true, field: { kind: 'argument', key } };
  }
  const def = FIELD_BY_PATH.get(path);
  if (def === undefined) {
    const dot = path.lastIndexOf('.');
    const hint = closestField(path.slice(0, dot), path.slice(dot + 1));
    return {
      ok: false,
      message: `unknown field "${path}" for ${eventType}${hint === undefined ? '' : ` (did you mean "${hint}"?)`}`,
    };
  }
  if (def.type.startsWith('map<')) {
    const how =
      def.type === 'map<string, string>'
        ? ` (name one header: "${path}.<name>")`
        : ` (name one argument: "${path}.<key>")`;
    return {
      ok: false,
      message: `field "${path}" is a ${def.type}; predicates take a scalar field${how}`,
    };
  }
  if (def.type === 'list<map<string, dyn>>') {
    return {
      ok: false,
      message: `field "${path}" is a list of records; predicates read "${path.replace(/answers$/, 'answer_data')}" or "${path.replace(/answers$/, 'answer_types')}"`,
    };
  }
  return { ok: true, field: { kind: 'field', path, type: def.type } };
}

/** The contract field a resolved field reads, as reported on findings. */
export function contractPath(field: ResolvedField): string {
  return field.kind === 'field'
    ? field.path
    : field.kind === 'header'
      ? `${field.root}.headers`
      : 'mcp.request.arguments';
}
