/**
 * The ledger contract: transport hands every decided event (and each protocol exchange) to an
 * EventSink; src/store implements it on session.db. Calls must not block the request path.
 * Pure types; no I/O.
 */
import type { Decision, Verdict } from './decision.js';
import type { SecurityEvent } from './types.js';

/** The policy fields every protocol row carries, copied from the enforced Decision. */
export interface PolicyFields {
  event_id: string;
  session_id: string;
  timestamp_ms: number;
  decision: Verdict;
  rule_id: string | null;
  reason: string;
  generation: number;
  process_name: string;
}

export interface NetRow extends PolicyFields {
  scheme: 'http' | 'https';
  method: string;
  host: string;
  port: number;
  path: string;
  query: string;
  /** The TLS server name the guest sent ('' for plain HTTP). */
  sni: string;
  /** The Host header when it disagrees with SNI, else ''. */
  host_header_mismatch: string;
  status: number | null;
  bytes_in: number;
  bytes_out: number;
  duration_ms: number;
  /** Connection-level failure code (no_sni, tls_handshake, parse_error, upstream_error, …) or null. */
  error: string | null;
}

export interface DnsRow extends PolicyFields {
  qname: string;
  qtype: string;
  transport: 'udp' | 'tcp' | 'vsock';
  rcode: string;
  answers: string[];
  upstream_ms: number | null;
  cached: boolean;
}

export interface McpCallRow extends PolicyFields {
  direction: 'request' | 'response';
  server_id: string;
  method: string;
  tool_name: string;
  request_id: string;
  /** sha256 of the canonical JSON arguments (hex, first 16 chars). */
  args_digest: string;
  /** Bounded, redacted preview of the arguments. */
  args_preview: string;
  is_error: boolean;
  duration_ms: number;
  /** `vsock` (the framed MCP port; the default) or `https` (a remote server through the HTTP pipeline). */
  transport?: 'vsock' | 'https';
}

export interface ExecRow extends PolicyFields {
  executable: string;
  argv: string[];
  command: string;
  cwd: string;
  command_class: string;
  exit_code: number | null;
  duration_ms: number;
}

export interface EventSink {
  /** One evaluated event with the decision that was enforced. */
  decision(event: SecurityEvent, decision: Decision): void;
  net(row: NetRow): void;
  dns(row: DnsRow): void;
  mcp(row: McpCallRow): void;
  exec(row: ExecRow): void;
  /**
   * Why decisions cannot be recorded right now (the ledger is failing, closed, or below its
   * free-space reserve), or null when they can. While it is non-null the enforcement primitive
   * (enforce.ts) refuses every event instead of deciding it.
   */
  unavailable?(): string | null;
}

/** Copies the policy fields of an enforced decision onto a protocol row. */
export function policyFields(event: SecurityEvent, decision: Decision): PolicyFields {
  return {
    event_id: event.common.event_id,
    session_id: event.common.session_id,
    timestamp_ms: event.common.timestamp_ms,
    decision: decision.action,
    rule_id: decision.rule_id,
    reason: decision.reason,
    generation: decision.generation,
    process_name: event.common.process_name,
  };
}

/** A sink that drops everything: for tools and tests that do not record. */
export const NULL_SINK: EventSink = {
  decision() {},
  net() {},
  dns() {},
  mcp() {},
  exec() {},
};
