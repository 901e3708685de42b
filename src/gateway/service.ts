/**
 * The shape of a service the gateway starts (a transport, the exec gate) and of what each receives.
 * Lives here, not in the composition code (compose.ts), so services and the code that starts them
 * do not import each other.
 */
import type { EventSink, GenerationAware } from '../events/index.js';
import type { PolicyEngine } from '../policy/engine.js';
import type { RuleRegistry } from '../policy/registry.js';
import type { PolicyPort } from '../control/port.js';
import type { Route } from '../control/server.js';
import type { GatewayConfig } from './config.js';
import type { LeafCache } from '../certs/index.js';
import type { SecretStore } from '../transport/secrets.js';
import type { Logger } from './logger.js';

/** A running transport (or other) service started by the gateway. */
export interface Service {
  name: string;
  /** Bound addresses, e.g. {http: "127.0.0.1:5002"}; merged into /v1/health `listeners`. */
  addresses: Record<string, string>;
  /** Extra admin API routes this service serves (e.g. POST /v1/exec). */
  routes?: Route[];
  /** Warnings to log once at start (e.g. a fallback the service chose). */
  warnings?: string[];
  /** Stop accepting, drain in-flight work, release resources. */
  close(): Promise<void>;
}

/** What every service receives. Transport must use only `decider` + `sink` for policy and record,
 * through the enforcement primitive (src/events/enforce.ts): it refuses while `sink.unavailable()`
 * says the ledger cannot record, and fails closed when the engine throws. `decider` knows its
 * plan generation. */
export interface ServiceDeps {
  config: GatewayConfig;
  decider: GenerationAware;
  /** The same engine as `decider`, for `needsBody(type)` and plan inspection. */
  engine: PolicyEngine;
  registry: RuleRegistry;
  sink: EventSink;
  logger: Logger;
  policy: PolicyPort;
  sessionDir: string;
  sessionDb: string;
  /** Credentials substituted at egress (docs/secrets.md). */
  secrets: SecretStore;
  /** The one interception leaf cache, loaded on first use and shared by the HTTP entry points. */
  certs(): Promise<LeafCache>;
}
