/**
 * `startExplicitProxyFromConfig`: the adapter `celgate start` calls to run the explicit proxy from
 * the `http` config section (`http.proxy`, plus the limits, upstream map and extra CAs the vsock
 * HTTP service uses, so both entry points enforce the same bounds). Maps config onto
 * `startExplicitProxy`; never imports the store; starts nothing when `http.proxy` is off.
 */
import { CelgateError } from '../../errors.js';
import type {
  Decider,
  EventSink,
  EventType,
  GenerationAware,
  Holding,
} from '../../events/index.js';
import { limitsFromConfig, readExtraCa, type HttpConfig } from './config.js';
import { startExplicitProxy } from './proxy.js';
import type { SecretStore } from '../secrets.js';
import type { SecureContextSource } from './service.js';
import { parseUpstreamMap } from './upstream.js';
import type { RuleSource } from '../mcp/gateway.js';
import type { RemoteEndpoint } from '../mcp/remote.js';

export interface ProxyStartConfig {
  session_id: string;
  profile: string;
  http: HttpConfig & { proxy?: string | null };
  /** `mcp.remote` (src/transport/mcp/config.ts): endpoints always judged as MCP over HTTPS. */
  mcp?: { remote: readonly RemoteEndpoint[] };
  /** The config file the values came from (named in errors). */
  source?: string;
}

export interface ProxyStartDeps {
  decider: Decider;
  engine?: { needsBody(type: EventType): boolean };
  sink: EventSink;
  /** The leaf cache shared with the vsock HTTP service (one CA, one leaf key per process). */
  certs: SecureContextSource;
  /** The secret store shared with the vsock HTTP service. */
  secrets?: SecretStore;
  /** The rule set, for hiding tools in remote MCP tools/list results. */
  rules?: RuleSource;
}

export async function startExplicitProxyFromConfig(
  config: ProxyStartConfig,
  deps: ProxyStartDeps,
): Promise<{
  name: string;
  addresses: Record<string, string>;
  warnings: string[];
  close(): Promise<void>;
}> {
  const listen = config.http.proxy ?? null;
  if (listen === null) return { name: 'proxy', addresses: {}, warnings: [], close: async () => {} };
  const map = parseUpstreamMap(config.http.upstream_map);
  if (!map.ok)
    throw new CelgateError(
      'E_CONFIG',
      `http.upstream_map: ${map.issues.map((i) => i.message).join('; ')}`,
    );
  const engine = deps.engine;
  const inner = deps.decider as GenerationAware & Holding;
  const decider = {
    decide: inner.decide.bind(inner),
    ...(inner.generation === undefined ? {} : { generation: inner.generation.bind(inner) }),
    ...(engine === undefined ? {} : { needsBody: (t: EventType) => engine.needsBody(t) }),
    // A held `ask` (docs/approvals.md) goes through the same decider.
    ...(inner.hold === undefined ? {} : { hold: inner.hold }),
    ...(inner.mayAsk === undefined ? {} : { mayAsk: inner.mayAsk }),
  };
  const proxy = await startExplicitProxy(
    {
      listen,
      limits: limitsFromConfig(config.http),
      upstreamMap: map.value,
      extraCa: readExtraCa(config.http.extra_ca, config.source),
      allowPrivateDestinations: config.http.allow_private_destinations,
      direct: config.http.direct,
      http2: config.http.http2,
      ...(deps.secrets === undefined ? {} : { secrets: deps.secrets }),
      mcp: { remote: config.mcp?.remote ?? [], rules: deps.rules },
    },
    {
      decider,
      sink: deps.sink,
      origin: { session_id: config.session_id, profile_id: config.profile },
      certs: deps.certs,
    },
  );
  return {
    name: 'proxy',
    addresses: proxy.addresses,
    warnings: proxy.warnings,
    close: () => proxy.close(),
  };
}
