/**
 * What a human approver is shown for a held `ask` (docs/approvals.md) and the exact-match rule that
 * `remember: session` installs: per protocol, the target (a one-line description), a key that is
 * equal for identical requests, and a CEL condition that matches exactly those requests.
 *
 * Identical means, per protocol:
 * - http: method, scheme, host, port and path (not the query, headers or body);
 * - dns: qname and qtype;
 * - mcp: server, method and tool name (not the arguments);
 * - exec: the command line.
 *
 * Pure given an event; no I/O.
 */
import type { SecurityEvent } from '../events/types.js';

export type ApprovalProtocol = 'http' | 'dns' | 'mcp' | 'exec';

export interface ApprovalTarget {
  protocol: ApprovalProtocol;
  /** One line for a human, e.g. "GET https://api.example.com/v1/items". */
  target: string;
  /** Bounded extra context (MCP arguments, exec cwd), '' when none. */
  detail: string;
  /** Equal for requests the remembered rule matches. */
  key: string;
  /** CEL that matches exactly the requests with this key. */
  condition: string;
}

/** Longest detail shown to an approver. */
export const MAX_APPROVAL_DETAIL = 512;

/** A CEL string literal (JSON's escapes are a subset of CEL's). */
function lit(s: string): string {
  return JSON.stringify(s);
}

function bounded(s: string): string {
  return s.length <= MAX_APPROVAL_DETAIL ? s : `${s.slice(0, MAX_APPROVAL_DETAIL)}…`;
}

/** The approval target of a request event, or null for events that are never held (responses). */
export function approvalTarget(event: SecurityEvent): ApprovalTarget | null {
  switch (event.common.event_type) {
    case 'http.request': {
      const r = (event as Extract<SecurityEvent, { common: { event_type: 'http.request' } }>).http
        .request;
      const dflt = r.scheme === 'https' ? 443 : 80;
      const authority = r.port === dflt ? r.host : `${r.host}:${r.port}`;
      const target = `${r.method} ${r.scheme}://${authority}${r.path}`;
      return {
        protocol: 'http',
        target,
        detail: r.query === '' ? '' : bounded(`?${r.query}`),
        key: `http ${r.method} ${r.scheme}://${r.host}:${r.port}${r.path}`,
        condition: [
          `http.request.method == ${lit(r.method)}`,
          `http.request.scheme == ${lit(r.scheme)}`,
          `http.request.host == ${lit(r.host)}`,
          `http.request.port == ${r.port}`,
          `http.request.path == ${lit(r.path)}`,
        ].join(' && '),
      };
    }
    case 'dns.request': {
      const r = (event as Extract<SecurityEvent, { common: { event_type: 'dns.request' } }>).dns
        .request;
      return {
        protocol: 'dns',
        target: `${r.qname} ${r.qtype}`,
        detail: '',
        key: `dns ${r.qname} ${r.qtype}`,
        condition: `dns.request.qname == ${lit(r.qname)} && dns.request.qtype == ${lit(r.qtype)}`,
      };
    }
    case 'mcp.request': {
      const r = (event as Extract<SecurityEvent, { common: { event_type: 'mcp.request' } }>).mcp
        .request;
      const tool = r.tool_name === '' ? '' : ` ${r.tool_name}`;
      let args = '';
      try {
        args = Object.keys(r.arguments).length === 0 ? '' : JSON.stringify(r.arguments);
      } catch {
        args = '';
      }
      return {
        protocol: 'mcp',
        target: `${r.server_id} ${r.method}${tool}`,
        detail: bounded(args),
        key: `mcp ${r.server_id} ${r.method} ${r.tool_name}`,
        condition: [
          `mcp.request.server_id == ${lit(r.server_id)}`,
          `mcp.request.method == ${lit(r.method)}`,
          `mcp.request.tool_name == ${lit(r.tool_name)}`,
        ].join(' && '),
      };
    }
    case 'process.exec': {
      const r = (event as Extract<SecurityEvent, { common: { event_type: 'process.exec' } }>)
        .process.activity;
      return {
        protocol: 'exec',
        target: r.command,
        detail: r.cwd === '' ? '' : bounded(`cwd ${r.cwd}`),
        key: `exec ${r.command}`,
        condition: `process.activity.command == ${lit(r.command)}`,
      };
    }
    default:
      return null;
  }
}
