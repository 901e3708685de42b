/**
 * The DNS section's defaults and the value parsers config parsing needs, apart from the service,
 * so parsing a config file (every `celgate` command does) does not load the resolver and sockets.
 *
 * Owns: defaults, `listen` and `static` parsing. Must not: import the service or open sockets.
 */
import net from 'node:net';
import { CelgateError } from '../../errors.js';

export const DEFAULT_UPSTREAMS = ['1.1.1.1:53', '9.9.9.9:53'] as const;
export const DEFAULT_TIMEOUT_MS = 2000;
export const DEFAULT_STATIC_TTL_S = 60;

export function parseListen(text: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:.]+\]|[0-9.]+):(\d{1,5})$/.exec(text);
  const port = m === null ? -1 : Number(m[2]);
  const host = m === null ? '' : m[1]!.replace(/^\[|\]$/g, '');
  if (m === null || net.isIP(host) === 0 || port > 65535) {
    throw new CelgateError(
      'E_CONFIG',
      `dns.listen "${text}" must be "IP:PORT", e.g. 127.0.0.1:5353`,
    );
  }
  return { host, port };
}

export function normaliseStatic(
  table: Readonly<Record<string, readonly string[]>>,
): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [name, addresses] of Object.entries(table)) {
    for (const a of addresses) {
      if (net.isIP(a) === 0)
        throw new CelgateError('E_CONFIG', `dns.static["${name}"]: "${a}" is not an IP address`);
    }
    out.set(name.toLowerCase().replace(/\.$/, ''), [...addresses]);
  }
  return out;
}
