/**
 * The explicit proxy's listen setting (`http.proxy`): parsing and the loopback-only check. Pure; no
 * I/O, so the config loader can use it without loading the proxy.
 */
import { CelgateError } from '../../errors.js';

/** The documented default listen address of the explicit proxy. */
export const DEFAULT_PROXY_LISTEN = '127.0.0.1:8080';

/** Parses and checks the listen address: loopback only (an open MITM proxy on a LAN is a hole). */
export function parseProxyListen(value: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value.trim());
  const port = m === null ? NaN : Number(m[2]);
  if (m === null || port > 65535)
    throw new CelgateError('E_CONFIG', `http.proxy: "${value}" is not host:port`);
  const host = m[1]!.startsWith('[') ? m[1]!.slice(1, -1) : m[1]!.toLowerCase();
  const loopback =
    host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
  if (!loopback)
    throw new CelgateError(
      'E_CONFIG',
      `http.proxy: ${host} is not a loopback address; the explicit proxy listens on loopback only`,
    );
  return { host, port };
}

/**
 * The `http.proxy` config value: a loopback `host:port` (default DEFAULT_PROXY_LISTEN), or
 * `null` / `false` / `"off"` to run without the explicit proxy. Throws E_CONFIG naming the key.
 */
export function parseProxySetting(raw: unknown, source = '<defaults>'): string | null {
  if (raw === undefined) return DEFAULT_PROXY_LISTEN;
  if (raw === null || raw === false || raw === 'off') return null;
  if (typeof raw !== 'string')
    throw new CelgateError(
      'E_CONFIG',
      `${source}: http.proxy: must be "host:port" on loopback, or "off"`,
    );
  try {
    parseProxyListen(raw);
  } catch (err) {
    throw new CelgateError('E_CONFIG', `${source}: ${(err as Error).message}`, { cause: err });
  }
  return raw;
}

/** Longest agent label taken from proxy credentials. */
export const MAX_AGENT_LABEL = 64;

/**
 * The agent label of a proxy client: the user name of `Proxy-Authorization: Basic …`, so
 * `HTTPS_PROXY=http://my-agent@127.0.0.1:8080` tags every ledger row with `process_name: my-agent`.
 * A label, not authentication (the proxy is loopback-only). Anything else → undefined.
 */
export function agentLabel(authorization: string | undefined): string | undefined {
  if (authorization === undefined || authorization.length > 1024) return undefined;
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization);
  if (m === null) return undefined;
  const user = Buffer.from(m[1]!, 'base64').toString('utf8').split(':', 1)[0] ?? '';
  return new RegExp(`^[A-Za-z0-9._-]{1,${MAX_AGENT_LABEL}}$`).test(user) ? user : undefined;
}
