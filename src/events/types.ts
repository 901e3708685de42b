/**
 * The SecurityEvent contract: one event per boundary crossing. Transport builds these; policy,
 * detection and the store read only these. Pure types and constants; no I/O.
 *
 * The event is shaped like the CEL policy context (DESIGN §4): `event.http.request.host` is the value
 * a rule reads as `http.request.host`. Integers are plain JS numbers here; the projection converts
 * what CEL needs.
 */

export const EVENT_TYPES = [
  'http.request',
  'http.response',
  'dns.request',
  'dns.response',
  'mcp.request',
  'mcp.response',
  'process.exec',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export const FAMILIES = ['http', 'dns', 'mcp', 'process'] as const;
export type Family = (typeof FAMILIES)[number];

export function familyOf(type: EventType): Family {
  return type.slice(0, type.indexOf('.')) as Family;
}

export interface CommonFacts {
  event_id: string;
  event_type: EventType;
  family: Family;
  session_id: string;
  vm_id: string;
  profile_id: string;
  /** Guest process that originated the crossing (from the `\0META` preamble), or '' when unknown. */
  process_name: string;
  timestamp_ms: number;
}

export type BodyState = 'absent' | 'buffered' | 'truncated' | 'streamed' | 'undecodable';

export interface BodyFacts {
  /** absent: no body; buffered: `text` holds all of it; truncated: `text` holds the first bytes;
   * streamed: not buffered because no rule reads it; undecodable: content-encoding failed. */
  state: BodyState;
  text: string;
  size: number;
  content_type: string;
  truncated: boolean;
}

/** Header names are lower-case; repeated headers are joined with ", " (RFC 9110 §5.3). */
export type HeaderMap = Record<string, string>;

export interface HttpRequestFacts {
  method: string;
  scheme: 'http' | 'https';
  host: string;
  port: number;
  path: string;
  /** Raw query string without the leading '?', '' when none. */
  query: string;
  url: string;
  /** The request target exactly as the guest sent it (`path` is its normalised form). */
  raw_target: string;
  /** Ids of the secret placeholders (`celgate-secret-<id>`) the request carries where they are
   * substituted: header values, the query, and (for secrets with `in_body`) the body. */
  secrets: string[];
  headers: HeaderMap;
  body: BodyFacts;
}

export interface HttpResponseFacts {
  status: number;
  headers: HeaderMap;
  body: BodyFacts;
}

export type DnsTransport = 'udp' | 'tcp' | 'vsock';

export interface DnsRequestFacts {
  /** Lower-case, no trailing dot. */
  qname: string;
  /** Mnemonic: "A", "AAAA", "TXT", … (or "TYPE65534" for unknown types). */
  qtype: string;
  /** Mnemonic: "IN", "CH", … */
  qclass: string;
  transport: DnsTransport;
}

/** One resource record of an answer section, as celgate read it from the upstream's response. */
export interface DnsAnswerRecord {
  /** Owner name: lower-case, no trailing dot. */
  name: string;
  /** Mnemonic: "A", "CNAME", … */
  type: string;
  /** Presentation text of the data: an address, a target name, quoted TXT strings, or
   * "(N bytes)" for types celgate does not render. */
  data: string;
  ttl: number;
}

/**
 * The answer to one question, built after the answer was written to the guest: judged by detection
 * rules (findings), never enforced — the answer has already left.
 */
export interface DnsResponseFacts {
  qname: string;
  qtype: string;
  qclass: string;
  transport: DnsTransport;
  /** "NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", … (RCODE<n> for others). */
  rcode: string;
  /** `qname` without its leftmost label ("" for a one-label name): `x1.t.example.com` →
   * `t.example.com`. Groups lookups of many names under one domain. */
  parent_domain: string;
  /** The answer section (at most 16 records). */
  answers: DnsAnswerRecord[];
  /** `answers[i].data` and `answers[i].type`, as lists a rule can test element-wise. */
  answer_data: string[];
  answer_types: string[];
  /** True when the answer came from celgate's answer cache (as `dns_events.cached`). */
  cached: boolean;
}

export interface McpRequestFacts {
  method: string;
  server_id: string;
  tool_name: string;
  arguments: Record<string, unknown>;
  request_id: string;
}

export interface McpResponseFacts {
  method: string;
  server_id: string;
  tool_name: string;
  is_error: boolean;
  content_text: string;
}

export type CommandClass = 'shell' | 'interpreter' | 'binary';

export interface ProcessActivityFacts {
  operation: 'exec';
  executable: string;
  command: string;
  argv: string[];
  cwd: string;
  command_class: CommandClass;
  /**
   * The process that asked for this command — its parent as far as the gateway can know — as the
   * requester reports it (`celgate exec` sends its own parent's): executable path and command line,
   * '' when unknown.
   */
  parent_executable: string;
  parent_command: string;
}

interface Base<T extends EventType> {
  common: CommonFacts & { event_type: T };
}

export interface HttpRequestEvent extends Base<'http.request'> {
  http: { request: HttpRequestFacts };
}
/** A response event also carries the request it answers, so a rule can read both. */
export interface HttpResponseEvent extends Base<'http.response'> {
  http: { request: HttpRequestFacts; response: HttpResponseFacts };
}
export interface DnsRequestEvent extends Base<'dns.request'> {
  dns: { request: DnsRequestFacts };
}
/** A response event also carries the request it answers. */
export interface DnsResponseEvent extends Base<'dns.response'> {
  dns: { request: DnsRequestFacts; response: DnsResponseFacts };
}
export interface McpRequestEvent extends Base<'mcp.request'> {
  mcp: { request: McpRequestFacts };
}
export interface McpResponseEvent extends Base<'mcp.response'> {
  mcp: { response: McpResponseFacts };
}
export interface ProcessExecEvent extends Base<'process.exec'> {
  process: { activity: ProcessActivityFacts };
}

export type SecurityEvent =
  | HttpRequestEvent
  | HttpResponseEvent
  | DnsRequestEvent
  | DnsResponseEvent
  | McpRequestEvent
  | McpResponseEvent
  | ProcessExecEvent;

export type EventOf<T extends EventType> = Extract<SecurityEvent, { common: { event_type: T } }>;
