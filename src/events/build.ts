/**
 * Constructors for SecurityEvents, and `eventFromJson` which turns a fixture or API payload into a
 * complete event (missing facts get their neutral defaults) or a list of issues. Pure; no I/O.
 */
import { randomUUID } from 'node:crypto';
import type { Issue, Validated } from '../errors.js';
import {
  EVENT_TYPES,
  familyOf,
  type BodyFacts,
  type CommonFacts,
  type DnsAnswerRecord,
  type DnsRequestFacts,
  type DnsResponseFacts,
  type EventOf,
  type EventType,
  type HeaderMap,
  type HttpRequestFacts,
  type HttpResponseFacts,
  type McpRequestFacts,
  type McpResponseFacts,
  type ProcessActivityFacts,
  type SecurityEvent,
} from './types.js';

/** Who and where an event comes from: the parts of `common` that transport knows per connection. */
export interface EventOrigin {
  session_id: string;
  vm_id?: string;
  profile_id?: string;
  process_name?: string;
}

export function newEventId(): string {
  return randomUUID();
}

export function commonFacts<T extends EventType>(
  type: T,
  origin: EventOrigin,
  overrides: Partial<Pick<CommonFacts, 'event_id' | 'timestamp_ms'>> = {},
): CommonFacts & { event_type: T } {
  return {
    event_id: overrides.event_id ?? newEventId(),
    event_type: type,
    family: familyOf(type),
    session_id: origin.session_id,
    vm_id: origin.vm_id ?? '',
    profile_id: origin.profile_id ?? '',
    process_name: origin.process_name ?? '',
    timestamp_ms: overrides.timestamp_ms ?? Date.now(),
  };
}

export const ABSENT_BODY: Readonly<BodyFacts> = Object.freeze({
  state: 'absent',
  text: '',
  size: 0,
  content_type: '',
  truncated: false,
});

/** Lower-cases header names and joins repeats with ", ". Accepts Node's raw header pairs too. */
export function normalizeHeaders(
  input: Record<string, string | string[] | undefined> | string[],
): HeaderMap {
  const out: HeaderMap = {};
  const add = (name: string, value: string) => {
    const key = name.toLowerCase();
    const prev = out[key];
    out[key] = prev === undefined ? value : `${prev}, ${value}`;
  };
  if (Array.isArray(input)) {
    for (let i = 0; i + 1 < input.length; i += 2) add(input[i]!, input[i + 1]!);
    return out;
  }
  for (const [name, value] of Object.entries(input)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) add(name, v);
    else add(name, value);
  }
  return out;
}

export function httpRequestEvent(
  origin: EventOrigin,
  request: Omit<HttpRequestFacts, 'body' | 'url' | 'query' | 'headers' | 'raw_target' | 'secrets'> &
    Partial<
      Pick<HttpRequestFacts, 'body' | 'url' | 'query' | 'headers' | 'raw_target' | 'secrets'>
    >,
  overrides?: Partial<Pick<CommonFacts, 'event_id' | 'timestamp_ms'>>,
): EventOf<'http.request'> {
  const query = request.query ?? '';
  const url =
    request.url ?? buildUrl(request.scheme, request.host, request.port, request.path, query);
  // Field by field, not a spread: one object shape for every request event, and nothing a caller's
  // object happens to carry besides the facts ends up in the event (and so in the ledger).
  const facts: HttpRequestFacts = {
    method: request.method,
    scheme: request.scheme,
    host: request.host,
    port: request.port,
    path: request.path,
    query,
    url,
    raw_target: request.raw_target ?? `${request.path}${query === '' ? '' : `?${query}`}`,
    secrets: request.secrets ?? [],
    headers: request.headers ?? {},
    body: request.body ?? { ...ABSENT_BODY },
  };
  return { common: commonFacts('http.request', origin, overrides), http: { request: facts } };
}

export function httpResponseEvent(
  origin: EventOrigin,
  request: HttpRequestFacts,
  response: HttpResponseFacts,
  overrides?: Partial<Pick<CommonFacts, 'event_id' | 'timestamp_ms'>>,
): EventOf<'http.response'> {
  return { common: commonFacts('http.response', origin, overrides), http: { request, response } };
}

export function dnsRequestEvent(
  origin: EventOrigin,
  request: DnsRequestFacts,
  overrides?: Partial<Pick<CommonFacts, 'event_id' | 'timestamp_ms'>>,
): EventOf<'dns.request'> {
  return { common: commonFacts('dns.request', origin, overrides), dns: { request } };
}

/** `qname` without its leftmost label; "" for a name of one label (or the root). */
export function parentDomain(qname: string): string {
  // A `.` inside a label is written `\.` in presentation form, so only an unescaped dot separates.
  for (let i = 0; i < qname.length; i++) {
    const c = qname.charCodeAt(i);
    if (c === 92 /* \ */) i++;
    else if (c === 46 /* . */) return qname.slice(i + 1);
  }
  return '';
}

/** The response facts of one question; `parent_domain`, `answer_data` and `answer_types` derived. */
export function dnsResponseFacts(
  request: DnsRequestFacts,
  rcode: string,
  answers: readonly DnsAnswerRecord[],
  cached: boolean,
): DnsResponseFacts {
  return {
    qname: request.qname,
    qtype: request.qtype,
    qclass: request.qclass,
    transport: request.transport,
    rcode,
    parent_domain: parentDomain(request.qname),
    answers: answers.map((a) => ({ name: a.name, type: a.type, data: a.data, ttl: a.ttl })),
    answer_data: answers.map((a) => a.data),
    answer_types: answers.map((a) => a.type),
    cached,
  };
}

export function dnsResponseEvent(
  origin: EventOrigin,
  request: DnsRequestFacts,
  response: DnsResponseFacts,
  overrides?: Partial<Pick<CommonFacts, 'event_id' | 'timestamp_ms'>>,
): EventOf<'dns.response'> {
  return { common: commonFacts('dns.response', origin, overrides), dns: { request, response } };
}

export function mcpRequestEvent(
  origin: EventOrigin,
  request: McpRequestFacts,
  overrides?: Partial<Pick<CommonFacts, 'event_id' | 'timestamp_ms'>>,
): EventOf<'mcp.request'> {
  return { common: commonFacts('mcp.request', origin, overrides), mcp: { request } };
}

export function mcpResponseEvent(
  origin: EventOrigin,
  response: McpResponseFacts,
  overrides?: Partial<Pick<CommonFacts, 'event_id' | 'timestamp_ms'>>,
): EventOf<'mcp.response'> {
  return { common: commonFacts('mcp.response', origin, overrides), mcp: { response } };
}

export function processExecEvent(
  origin: EventOrigin,
  activity: Omit<ProcessActivityFacts, 'operation' | 'parent_executable' | 'parent_command'> &
    Partial<Pick<ProcessActivityFacts, 'parent_executable' | 'parent_command'>>,
  overrides?: Partial<Pick<CommonFacts, 'event_id' | 'timestamp_ms'>>,
): EventOf<'process.exec'> {
  return {
    common: commonFacts('process.exec', origin, overrides),
    process: {
      activity: { operation: 'exec', parent_executable: '', parent_command: '', ...activity },
    },
  };
}

export function buildUrl(
  scheme: string,
  host: string,
  port: number,
  path: string,
  query: string,
): string {
  const defaultPort = (scheme === 'https' && port === 443) || (scheme === 'http' && port === 80);
  const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return `${scheme}://${h}${defaultPort ? '' : `:${port}`}${path}${query === '' ? '' : `?${query}`}`;
}

const SHELLS = new Set([
  'sh',
  'bash',
  'zsh',
  'dash',
  'ash',
  'ksh',
  'fish',
  'csh',
  'tcsh',
  'busybox',
]);
const INTERPRETERS =
  /^(python[0-9.]*|node|nodejs|deno|bun|ruby|perl[0-9.]*|php[0-9.]*|lua[0-9.]*|java|osascript|pwsh|powershell|Rscript|tclsh|awk|gawk)$/;

/** Classifies an executable by its base name: a shell, a language interpreter, or a plain binary. */
export function commandClass(executable: string): ProcessActivityFacts['command_class'] {
  const base = executable.slice(executable.lastIndexOf('/') + 1);
  if (SHELLS.has(base)) return 'shell';
  if (INTERPRETERS.test(base)) return 'interpreter';
  return 'binary';
}

// ---------------------------------------------------------------------------------------------
// From JSON (fixtures, the control API, backtest corpora)

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

class Reader {
  readonly issues: Issue[] = [];
  str(o: Obj, key: string, path: string, fallback = ''): string {
    const v = o[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'string')
      this.issues.push({ path: `${path}.${key}`, message: `must be a string, got ${typeof v}` });
    return typeof v === 'string' ? v : fallback;
  }
  strList(o: Obj, key: string, path: string): string[] {
    const v = o[key];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
      this.issues.push({ path: `${path}.${key}`, message: 'must be a list of strings' });
      return [];
    }
    return v as string[];
  }
  num(o: Obj, key: string, path: string, fallback = 0): number {
    const v = o[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      this.issues.push({ path: `${path}.${key}`, message: `must be a number, got ${typeof v}` });
      return fallback;
    }
    return v;
  }
  bool(o: Obj, key: string, path: string, fallback = false): boolean {
    const v = o[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean')
      this.issues.push({ path: `${path}.${key}`, message: `must be a boolean` });
    return typeof v === 'boolean' ? v : fallback;
  }
  obj(o: Obj, key: string, path: string): Obj {
    const v = o[key];
    if (v === undefined || v === null) return {};
    if (!isObj(v)) {
      this.issues.push({ path: `${path}.${key}`, message: 'must be an object' });
      return {};
    }
    return v;
  }
  headers(o: Obj, key: string, path: string): HeaderMap {
    const raw = this.obj(o, key, path);
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(raw)) {
      if (typeof v === 'string') out[k] = v;
      else if (Array.isArray(v) && v.every((x) => typeof x === 'string')) out[k] = v.join(', ');
      else
        this.issues.push({ path: `${path}.${key}.${k}`, message: 'header values must be strings' });
    }
    return normalizeHeaders(out);
  }
  body(o: Obj, key: string, path: string): BodyFacts {
    const v = o[key];
    if (typeof v === 'string') {
      return {
        state: 'buffered',
        text: v,
        size: Buffer.byteLength(v),
        content_type: '',
        truncated: false,
      };
    }
    if (v === undefined || v === null) return { ...ABSENT_BODY };
    const b = this.obj(o, key, path);
    const p = `${path}.${key}`;
    const text = this.str(b, 'text', p);
    const state = this.str(b, 'state', p, text === '' ? 'absent' : 'buffered');
    if (!['absent', 'buffered', 'truncated', 'streamed', 'undecodable'].includes(state)) {
      this.issues.push({ path: `${p}.state`, message: `unknown body state "${state}"` });
    }
    return {
      state: state as BodyFacts['state'],
      text,
      size: this.num(b, 'size', p, Buffer.byteLength(text)),
      content_type: this.str(b, 'content_type', p),
      truncated: this.bool(b, 'truncated', p, state === 'truncated'),
    };
  }
}

function answersFrom(r: Reader, raw: unknown): DnsAnswerRecord[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) {
    r.issues.push({ path: 'dns.response.answers', message: 'must be a list of records' });
    return [];
  }
  return raw.map((item, i): DnsAnswerRecord => {
    const p = `dns.response.answers[${i}]`;
    if (!isObj(item)) {
      r.issues.push({ path: p, message: 'must be an object {name, type, data, ttl}' });
      return { name: '', type: '', data: '', ttl: 0 };
    }
    return {
      name: r.str(item, 'name', p).toLowerCase().replace(/\.$/, ''),
      type: r.str(item, 'type', p, 'A').toUpperCase(),
      data: r.str(item, 'data', p),
      ttl: r.num(item, 'ttl', p),
    };
  });
}

function httpRequestFrom(r: Reader, o: Obj, path: string): HttpRequestFacts {
  const scheme = r.str(o, 'scheme', path, 'https');
  if (scheme !== 'http' && scheme !== 'https')
    r.issues.push({ path: `${path}.scheme`, message: 'must be "http" or "https"' });
  const s = scheme === 'http' ? 'http' : 'https';
  const host = r.str(o, 'host', path).toLowerCase();
  const port = r.num(o, 'port', path, s === 'https' ? 443 : 80);
  const pathValue = r.str(o, 'path', path, '/');
  const query = r.str(o, 'query', path);
  const headers = r.headers(o, 'headers', path);
  const body = r.body(o, 'body', path);
  if (body.content_type === '' && headers['content-type'] !== undefined)
    body.content_type = headers['content-type'];
  return {
    method: r.str(o, 'method', path, 'GET').toUpperCase(),
    scheme: s,
    host,
    port,
    path: pathValue,
    query,
    url: r.str(o, 'url', path, buildUrl(s, host, port, pathValue, query)),
    raw_target: r.str(o, 'raw_target', path, `${pathValue}${query === '' ? '' : `?${query}`}`),
    secrets: r.strList(o, 'secrets', path),
    headers,
    body,
  };
}

/**
 * Builds a complete SecurityEvent from JSON. The input names `common.event_type` (or a top-level
 * `event_type`) and carries the facts under the same roots a rule reads. Unset facts default to
 * neutral values; ids and times are generated when absent.
 */
export function eventFromJson(
  input: unknown,
  fallbackOrigin: EventOrigin = { session_id: 'fixture' },
): Validated<SecurityEvent> {
  const r = new Reader();
  if (!isObj(input))
    return { ok: false, issues: [{ path: '', message: 'an event must be a JSON object' }] };
  const c = r.obj(input, 'common', '');
  const type = (typeof c.event_type === 'string' ? c.event_type : input.event_type) as EventType;
  if (!EVENT_TYPES.includes(type)) {
    return {
      ok: false,
      issues: [{ path: 'common.event_type', message: `must be one of ${EVENT_TYPES.join(', ')}` }],
    };
  }
  const origin: EventOrigin = {
    session_id: r.str(c, 'session_id', 'common', fallbackOrigin.session_id),
    vm_id: r.str(c, 'vm_id', 'common', fallbackOrigin.vm_id ?? ''),
    profile_id: r.str(c, 'profile_id', 'common', fallbackOrigin.profile_id ?? ''),
    process_name: r.str(c, 'process_name', 'common', fallbackOrigin.process_name ?? ''),
  };
  const ids: Partial<Pick<CommonFacts, 'event_id' | 'timestamp_ms'>> = {};
  if (typeof c.event_id === 'string') ids.event_id = c.event_id;
  if (typeof c.timestamp_ms === 'number') ids.timestamp_ms = c.timestamp_ms;
  let event: SecurityEvent;
  switch (type) {
    case 'http.request':
    case 'http.response': {
      const http = r.obj(input, 'http', '');
      const request = httpRequestFrom(r, r.obj(http, 'request', 'http'), 'http.request');
      if (type === 'http.request') {
        event = { common: commonFacts(type, origin, ids), http: { request } };
      } else {
        const res = r.obj(http, 'response', 'http');
        const response: HttpResponseFacts = {
          status: r.num(res, 'status', 'http.response', 200),
          headers: r.headers(res, 'headers', 'http.response'),
          body: r.body(res, 'body', 'http.response'),
        };
        event = { common: commonFacts(type, origin, ids), http: { request, response } };
      }
      break;
    }
    case 'dns.request':
    case 'dns.response': {
      const dns = r.obj(input, 'dns', '');
      const q = r.obj(dns, 'request', 'dns');
      const res = type === 'dns.response' ? r.obj(dns, 'response', 'dns') : {};
      // A response may name its question on either side; the request's facts win.
      const pick = (key: string, fallback: string) =>
        r.str(q, key, 'dns.request', r.str(res, key, 'dns.response', fallback));
      const transport = pick('transport', 'udp');
      if (!['udp', 'tcp', 'vsock'].includes(transport))
        r.issues.push({ path: 'dns.request.transport', message: 'must be udp, tcp or vsock' });
      const request: DnsRequestFacts = {
        qname: pick('qname', '').toLowerCase().replace(/\.$/, ''),
        qtype: pick('qtype', 'A').toUpperCase(),
        qclass: pick('qclass', 'IN').toUpperCase(),
        transport: transport as DnsRequestFacts['transport'],
      };
      if (type === 'dns.request') {
        event = dnsRequestEvent(origin, request, ids);
        break;
      }
      event = dnsResponseEvent(
        origin,
        request,
        dnsResponseFacts(
          request,
          r.str(res, 'rcode', 'dns.response', 'NOERROR').toUpperCase(),
          answersFrom(r, res.answers),
          r.bool(res, 'cached', 'dns.response'),
        ),
        ids,
      );
      break;
    }
    case 'mcp.request': {
      const q = r.obj(r.obj(input, 'mcp', ''), 'request', 'mcp');
      event = mcpRequestEvent(
        origin,
        {
          method: r.str(q, 'method', 'mcp.request', 'tools/call'),
          server_id: r.str(q, 'server_id', 'mcp.request'),
          tool_name: r.str(q, 'tool_name', 'mcp.request'),
          arguments: r.obj(q, 'arguments', 'mcp.request'),
          request_id: String(q.request_id ?? ''),
        },
        ids,
      );
      break;
    }
    case 'mcp.response': {
      const q = r.obj(r.obj(input, 'mcp', ''), 'response', 'mcp');
      event = mcpResponseEvent(
        origin,
        {
          method: r.str(q, 'method', 'mcp.response', 'tools/call'),
          server_id: r.str(q, 'server_id', 'mcp.response'),
          tool_name: r.str(q, 'tool_name', 'mcp.response'),
          is_error: r.bool(q, 'is_error', 'mcp.response'),
          content_text: r.str(q, 'content_text', 'mcp.response'),
        },
        ids,
      );
      break;
    }
    case 'process.exec': {
      const a = r.obj(r.obj(input, 'process', ''), 'activity', 'process');
      const argvRaw = a.argv;
      const argv =
        Array.isArray(argvRaw) && argvRaw.every((x) => typeof x === 'string')
          ? (argvRaw as string[])
          : [];
      if (
        argvRaw !== undefined &&
        argv.length === 0 &&
        Array.isArray(argvRaw) &&
        argvRaw.length > 0
      ) {
        r.issues.push({ path: 'process.activity.argv', message: 'must be a list of strings' });
      }
      const executable = r.str(a, 'executable', 'process.activity', argv[0] ?? '');
      event = processExecEvent(
        origin,
        {
          executable,
          argv,
          command: r.str(a, 'command', 'process.activity', argv.join(' ')),
          cwd: r.str(a, 'cwd', 'process.activity', '/'),
          command_class: r.str(
            a,
            'command_class',
            'process.activity',
            commandClass(executable),
          ) as ProcessActivityFacts['command_class'],
          parent_executable: r.str(a, 'parent_executable', 'process.activity'),
          parent_command: r.str(a, 'parent_command', 'process.activity'),
        },
        ids,
      );
      break;
    }
  }
  return r.issues.length > 0 ? { ok: false, issues: r.issues } : { ok: true, value: event };
}
