/**
 * The MCP section's defaults and checks that config parsing needs, apart from the gateway, so
 * parsing a config file (every `celgate` command does) does not load the MCP SDK.
 *
 * Owns: defaults and upstream-list validation. Must not: import the gateway, the SDK or sockets.
 */
import { CelgateError } from '../../errors.js';
import { SERVER_ID_PATTERN } from './facts.js';
import type { UpstreamConfig } from './upstream.js';

export const DEFAULT_CALL_TIMEOUT_MS = 30_000;
export const DEFAULT_START_TIMEOUT_MS = 10_000;
/** Most upstream servers one gateway will run. */
export const MAX_UPSTREAMS = 64;

/** Validates upstream configs: ids unique and namespace-safe, exactly one of command/url. */
export function checkUpstreams(list: UpstreamConfig[]): void {
  if (list.length > MAX_UPSTREAMS)
    throw new CelgateError('E_CONFIG', `mcp.servers: at most ${MAX_UPSTREAMS} servers`);
  const seen = new Set<string>();
  for (const [i, u] of list.entries()) {
    const where = `mcp.servers[${i}]`;
    if (typeof u.id !== 'string' || !SERVER_ID_PATTERN.test(u.id)) {
      throw new CelgateError(
        'E_CONFIG',
        `${where}.id: must match ${SERVER_ID_PATTERN} (lower-case, no "__")`,
      );
    }
    if (seen.has(u.id))
      throw new CelgateError('E_CONFIG', `${where}.id: duplicate server id "${u.id}"`);
    seen.add(u.id);
    if ((u.command === undefined) === (u.url === undefined)) {
      throw new CelgateError(
        'E_CONFIG',
        `${where}: give exactly one of "command" (stdio) or "url" (Streamable HTTP)`,
      );
    }
    if (u.url !== undefined && !/^https?:\/\//.test(u.url))
      throw new CelgateError('E_CONFIG', `${where}.url: must be http(s)://…`);
  }
}
