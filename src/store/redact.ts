/**
 * What may reach session.db: header values outside an allowlist become short hashes, credential
 * headers and credential-looking fields become "[redacted]" (their presence is kept, their value
 * never), bodies and previews are bounded and scrubbed of credential-looking text, secret query
 * parameters are masked. Pure; no I/O.
 */
import { createHash } from 'node:crypto';
import type { HeaderMap, SecurityEvent } from '../events/types.js';

/** Header values stored verbatim; every other value is stored as `sha256:<12 hex>`. */
export const HEADER_ALLOWLIST: ReadonlySet<string> = new Set([
  'accept',
  'accept-encoding',
  'accept-language',
  'cache-control',
  'connection',
  'content-encoding',
  'content-length',
  'content-type',
  'host',
  'transfer-encoding',
  'upgrade',
  'user-agent',
]);
/** Bytes of body text kept in the ledger (UTF-16 code units, approximately characters). */
export const MAX_BODY_PREVIEW = 2048;
/** Longest string kept anywhere else in a stored event (URLs, argv items, tool arguments). */
export const MAX_FIELD_CHARS = 4096;
/** Depth and breadth bound for stored MCP arguments. */
export const MAX_ARG_DEPTH = 6;
export const MAX_ARG_KEYS = 64;
export const REDACTED = '[redacted]';

/** Header names and JSON keys whose values are credentials. */
const SECRET_NAME =
  /(^|[-_])(authorization|cookie|set-cookie|api[-_]?key|apikey|x-api-key|token|access[-_]?token|secret|password|passwd|session|auth|credential|private[-_]?key)s?($|[-_])|^x-goog-api-key$|^proxy-authorization$/i;

export function isSecretName(name: string): boolean {
  return SECRET_NAME.test(name);
}

export function shortHash(value: string): string {
  return `sha256:${createHash('sha256').update(value).digest('hex').slice(0, 12)}`;
}

/** Credential shapes masked inside free text (bodies, tool arguments, command lines). Quantifiers
 * are bounded so a long run of name characters cannot make a pattern quadratic. */
const TEXT_SECRETS: readonly [RegExp, string][] = [
  [/\b(Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=-]{8,}/gi, '$1 [redacted]'],
  [
    /(["']?)([A-Za-z0-9_.-]{0,32}(?:api[_-]?key|apikey|token|secret|password|passwd|credential|private[_-]?key)[A-Za-z0-9_.-]{0,32})\1(\s*[:=]\s*)(["']?)[^"'&\s,;}]+/gi,
    '$1$2$1$3$4[redacted]',
  ],
  [
    /\b(?:sk-[A-Za-z0-9_-]{16,}|ghp_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|AKIA[0-9A-Z]{16}|xox[abpr]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35})/g,
    '[redacted]',
  ],
];
/** Cheap pre-check: text without any of these substrings has nothing to scrub. */
const MAYBE_SECRET =
  /key|token|secret|passw|credential|bearer|basic|sk-|ghp_|github_pat_|AKIA|xox|AIza/i;

/** Masks credential-looking substrings of free text (`api_key=…`, `"token": "…"`, `Bearer …`, `sk-…`). */
export function scrubSecrets(text: string): string {
  if (!MAYBE_SECRET.test(text)) return text;
  let out = text;
  for (const [re, replacement] of TEXT_SECRETS) out = out.replace(re, replacement);
  return out;
}

export function bound(text: string, max = MAX_FIELD_CHARS): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}

const H_SECRET = 0;
const H_KEEP = 1;
const H_HASH = 2;
/** Header names whose treatment is remembered (names repeat on every request); bounded. */
export const MAX_CACHED_HEADER_NAMES = 1024;
const headerNames = new Map<string, { key: string; how: number }>();

function headerName(name: string): { key: string; how: number } {
  let c = headerNames.get(name);
  if (c === undefined) {
    const key = name.toLowerCase();
    c = { key, how: isSecretName(key) ? H_SECRET : HEADER_ALLOWLIST.has(key) ? H_KEEP : H_HASH };
    if (headerNames.size >= MAX_CACHED_HEADER_NAMES) headerNames.clear();
    headerNames.set(name, c);
  }
  return c;
}

export function redactHeaders(headers: HeaderMap): HeaderMap {
  const out: HeaderMap = {};
  for (const name in headers) {
    const { key, how } = headerName(name);
    const value = headers[name]!;
    out[key] = how === H_SECRET ? REDACTED : how === H_KEEP ? bound(value, 512) : shortHash(value);
  }
  return out;
}

/** Masks the values of query parameters with credential names (`?api_key=…` → `api_key=[redacted]`). */
/** Every name `redactQuery` masks contains one of these; a query without any (and without
 * percent-encoding, which could hide one) has nothing to mask. */
const QUERY_MAYBE_SECRET = /auth|cookie|key|token|secret|passw|session|credential|sig|%/i;

export function redactQuery(query: string): string {
  if (query === '') return query;
  if (!QUERY_MAYBE_SECRET.test(query)) return bound(query);
  return bound(
    query
      .split('&')
      .map((pair) => {
        const eq = pair.indexOf('=');
        const name = eq < 0 ? pair : pair.slice(0, eq);
        let decoded = name;
        try {
          decoded = decodeURIComponent(name);
        } catch {
          /* keep raw */
        }
        return eq >= 0 && (isSecretName(decoded) || /^(key|sig|signature)$/i.test(decoded))
          ? `${name}=${REDACTED}`
          : pair;
      })
      .join('&'),
  );
}

export function redactUrl(url: string, query: string, redactedQuery?: string): string {
  if (query === '') return bound(url);
  // The usual case: the URL ends with the query already redacted for the `query` field.
  if (redactedQuery !== undefined && url.endsWith(`?${query}`))
    return bound(`${url.slice(0, url.length - query.length)}${redactedQuery}`);
  const q = url.indexOf('?');
  return bound(q < 0 ? url : `${url.slice(0, q)}?${redactQuery(url.slice(q + 1))}`);
}

/** Bounded, credential-free copy of a JSON value (MCP arguments). */
export function redactJson(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return scrubSecrets(bound(value, 1024));
  if (value === null || typeof value !== 'object') return value;
  if (depth >= MAX_ARG_DEPTH) return '[truncated]';
  if (Array.isArray(value))
    return value.slice(0, MAX_ARG_KEYS).map((v) => redactJson(v, depth + 1));
  const out: Record<string, unknown> = {};
  let n = 0;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (n++ >= MAX_ARG_KEYS) break;
    out[k] = isSecretName(k) ? REDACTED : redactJson(v, depth + 1);
  }
  return out;
}

function body<B extends { text: string; truncated: boolean; state: string }>(b: B): B {
  if (b.text.length <= MAX_BODY_PREVIEW)
    return b.text === '' ? b : { ...b, text: scrubSecrets(b.text) };
  return {
    ...b,
    text: scrubSecrets(b.text.slice(0, MAX_BODY_PREVIEW)),
    truncated: true,
    state: b.state === 'buffered' ? 'truncated' : b.state,
  };
}

/**
 * The redacted copy of an event stored in `security_events.event_json`. Same shape as the event,
 * so `eventFromJson` reads it back for hunts.
 */
export function redactEvent(event: SecurityEvent): SecurityEvent {
  switch (event.common.event_type) {
    case 'http.request':
    case 'http.response': {
      const e = event as Extract<SecurityEvent, { http: unknown }>;
      const r = e.http.request;
      const query = redactQuery(r.query);
      const request = {
        ...r,
        host: bound(r.host, 512),
        path: scrubSecrets(bound(r.path)),
        query,
        url: scrubSecrets(redactUrl(r.url, r.query, query)),
        // The target as sent carries the query too (and may carry it in another spelling).
        raw_target: scrubSecrets(redactUrl(r.raw_target ?? '', r.query, query)),
        headers: redactHeaders(r.headers),
        body: body(r.body),
      };
      if (!('response' in e.http)) return { common: e.common, http: { request } } as SecurityEvent;
      const s = (
        e.http as { response: { status: number; headers: HeaderMap; body: typeof r.body } }
      ).response;
      return {
        common: e.common,
        http: {
          request,
          response: { ...s, headers: redactHeaders(s.headers), body: body(s.body) },
        },
      } as SecurityEvent;
    }
    case 'mcp.request': {
      const e = event as Extract<SecurityEvent, { common: { event_type: 'mcp.request' } }>;
      return {
        common: e.common,
        mcp: {
          request: {
            ...e.mcp.request,
            arguments: redactJson(e.mcp.request.arguments) as Record<string, unknown>,
          },
        },
      };
    }
    case 'mcp.response': {
      const e = event as Extract<SecurityEvent, { common: { event_type: 'mcp.response' } }>;
      return {
        common: e.common,
        mcp: {
          response: {
            ...e.mcp.response,
            content_text: scrubSecrets(bound(e.mcp.response.content_text, MAX_BODY_PREVIEW)),
          },
        },
      };
    }
    case 'process.exec': {
      const e = event as Extract<SecurityEvent, { common: { event_type: 'process.exec' } }>;
      const a = e.process.activity;
      return {
        common: e.common,
        process: {
          activity: {
            ...a,
            command: scrubSecrets(bound(a.command)),
            argv: a.argv.slice(0, 256).map((x) => scrubSecrets(bound(x, 1024))),
            cwd: bound(a.cwd, 1024),
          },
        },
      };
    }
    case 'dns.request':
    case 'dns.response':
      return event;
  }
}

/**
 * `security_events.event_json`: the redacted event without the `common` facts the row's columns
 * already hold (event_id, event_type, family, session_id, process_name, timestamp_ms); only
 * `vm_id` and `profile_id` stay. `readEvents` merges the columns back.
 */
export function storedEventJson(event: SecurityEvent): string {
  const redacted = redactEvent(event) as unknown as Record<string, unknown>;
  const c = event.common;
  // Assembled around the family part instead of copying the event into a new object first.
  let out = `{"common":{"vm_id":${JSON.stringify(c.vm_id)},"profile_id":${JSON.stringify(c.profile_id)}}`;
  for (const key in redacted)
    if (key !== 'common') out += `,${JSON.stringify(key)}:${JSON.stringify(redacted[key])}`;
  return `${out}}`;
}
