/**
 * Event → policy context: one pure projection per event, shared by every rule that runs on it.
 * The event is already shaped like the CEL roots, so the context is a small read-only view; the
 * cel-js-shaped context (typed objects, BigInt ints) is built lazily, only when a rule that the
 * closure compiler does not cover runs. Pure; no I/O.
 */
import type { CommonFacts, SecurityEvent } from '../events/types.js';
import { celContext } from './celenv.js';

export class PolicyContext {
  readonly common: Readonly<CommonFacts>;
  readonly http: unknown;
  readonly dns: unknown;
  readonly mcp: unknown;
  readonly process: unknown;
  readonly #event: SecurityEvent;
  #cel: Record<string, unknown> | undefined;

  constructor(event: SecurityEvent) {
    const e = event as Partial<Record<'http' | 'dns' | 'mcp' | 'process', unknown>>;
    this.#event = event;
    this.common = event.common;
    this.http = e.http;
    this.dns = e.dns;
    this.mcp = e.mcp;
    this.process = e.process;
  }

  /** The same facts as cel-js evaluates them. */
  cel(): Record<string, unknown> {
    return (this.#cel ??= celContext(this.#event));
  }
}

export function project(event: SecurityEvent): PolicyContext {
  return new PolicyContext(event);
}
