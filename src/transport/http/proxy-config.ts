/**
 * `startExplicitProxyFromConfig`: the adapter `celgate start` calls to run the explicit proxy from
 * the `http` config section (`http.proxy`, plus the limits, upstream map and extra CAs the vsock
 * HTTP service uses, so both entry points enforce the same bounds). Maps config onto
 * `startExplicitProxy`; never imports the store; starts nothing when `http.proxy` is off.
 */
import {
  pipelineFromConfig,
  type HttpConfig,
  type PipelineStartConfig,
  type PipelineStartDeps,
  type StartedFrontEnd,
} from './config.js';
import { startExplicitProxy } from './proxy.js';
import type { SecureContextSource } from './service.js';

export interface ProxyStartConfig extends PipelineStartConfig {
  http: HttpConfig & { proxy?: string | null };
}

export interface ProxyStartDeps extends PipelineStartDeps {
  /** The leaf cache shared with the vsock HTTP service (one CA, one leaf key per process). */
  certs: SecureContextSource;
}

export async function startExplicitProxyFromConfig(
  config: ProxyStartConfig,
  deps: ProxyStartDeps,
): Promise<StartedFrontEnd> {
  const listen = config.http.proxy ?? null;
  if (listen === null) return { name: 'proxy', addresses: {}, warnings: [], close: async () => {} };
  const pipeline = pipelineFromConfig(config, deps);
  const proxy = await startExplicitProxy(
    { ...pipeline.options, listen },
    { ...pipeline.deps, certs: deps.certs },
  );
  return {
    name: 'proxy',
    addresses: proxy.addresses,
    warnings: proxy.warnings,
    close: () => proxy.close(),
  };
}
