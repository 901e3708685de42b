/**
 * The transports the gateway runs, in start order. Every one is started through the same adapter
 * shape — its config section, the decider, the sink and the log — plus what the gateway shares
 * between them (ServiceDeps: the interception certificates, the secrets, the registry). Adding a
 * transport is one entry here; compose.ts starts them in order and closes them in reverse.
 */
import { CelgateError } from '../errors.js';
import type { EventSink } from '../events/index.js';
import { SECRET_PLACEHOLDER_PREFIX } from '../policy/secrets.js';
import { startDnsFromConfig } from '../transport/dns/config.js';
import { startHttpFromConfig } from '../transport/http/config.js';
import { startExplicitProxyFromConfig } from '../transport/http/proxy-config.js';
import { startMcpFromConfig } from '../transport/mcp/config.js';
import type { SecretStore } from '../transport/secrets.js';
import type { GatewayConfig } from './config.js';
import { startExecService } from './exec-service.js';
import type { Logger } from './logger.js';
import type { Service, ServiceDeps } from './service.js';

/** What a transport is started with: its own config section, who decides, where decisions go. */
export interface TransportAdapter<S> {
  section: S;
  decider: ServiceDeps['decider'];
  sink: EventSink;
  log: Logger;
}

/** One transport: which config section it reads and how it starts. */
export interface Transport<S = unknown> {
  name: string;
  section(config: GatewayConfig): S;
  start(adapter: TransportAdapter<S>, deps: ServiceDeps): Promise<Service>;
}

const transport = <S>(t: Transport<S>): Transport => t as Transport;

/** Start order; the HTTP entry points share one CA and one leaf cache (`deps.certs()`). */
export const TRANSPORTS: readonly Transport[] = [
  transport({
    name: 'exec',
    section: (c) => c.vsock,
    start: (_a, d) => startExecService(d),
  }),
  transport({
    name: 'mcp',
    section: (c) => c.mcp,
    start: (a, d) =>
      startMcpFromConfig(withMcpSecrets(d.config, d.secrets), {
        decider: a.decider,
        sink: a.sink,
        registry: d.registry,
        logger: a.log,
      }),
  }),
  transport({
    name: 'dns',
    section: (c) => c.dns,
    start: (a, d) =>
      startDnsFromConfig(a.section, {
        session_id: d.config.session_id,
        profile_id: d.config.profile,
        vsock: {
          mode: d.config.vsock.mode,
          host: d.config.vsock.host,
          uds_base: d.config.vsock.uds_base,
          port: d.config.vsock.ports.dns,
        },
        decider: a.decider,
        sink: a.sink,
        logger: a.log,
      }),
  }),
  transport({
    name: 'http',
    section: (c) => c.http,
    start: async (a, d) =>
      startHttpFromConfig(d.config, {
        decider: a.decider,
        engine: d.engine,
        sink: a.sink,
        certs: await d.certs(),
        secrets: d.secrets,
        rules: d.registry,
      }),
  }),
  transport({
    name: 'proxy',
    section: (c) => c.http.proxy,
    start: async (a, d) =>
      startExplicitProxyFromConfig(d.config, {
        decider: a.decider,
        engine: d.engine,
        sink: a.sink,
        certs: await d.certs(),
        secrets: d.secrets,
        rules: d.registry,
      }),
  }),
];

/** Starts `t` with its adapter built from the shared deps. */
export function startTransport(t: Transport, deps: ServiceDeps): Promise<Service> {
  return t.start(
    { section: t.section(deps.config), decider: deps.decider, sink: deps.sink, log: deps.logger },
    deps,
  );
}

/**
 * The config with secret placeholders in the headers of MCP Streamable HTTP servers replaced by
 * their values, for servers whose host the secret belongs to; any other placeholder stops start.
 */
export function withMcpSecrets(config: GatewayConfig, secrets: SecretStore): GatewayConfig {
  if (secrets.size === 0 || config.mcp.servers.every((s) => s.headers === undefined)) return config;
  const servers = config.mcp.servers.map((s) => {
    if (s.url === undefined || s.headers === undefined) return s;
    const u = new URL(s.url);
    const host = u.hostname.toLowerCase();
    const scheme = u.protocol.replace(/:$/, '');
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(s.headers)) {
      const next = secrets.substitute(v, host, scheme);
      if (next.includes(SECRET_PLACEHOLDER_PREFIX)) {
        throw new CelgateError(
          'E_CONFIG',
          `mcp.servers[${s.id}].headers.${k}: a secret placeholder there does not belong to ${host} (or would go out without TLS), or names an unknown secret`,
        );
      }
      headers[k] = next;
    }
    return { ...s, headers };
  });
  return { ...config, mcp: { ...config.mcp, servers } };
}
