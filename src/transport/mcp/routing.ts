/**
 * Routing of guest requests to upstream servers: `server__name` splitting for tools and prompts,
 * resource URIs, completion refs, and capability-based forwarding of other methods. Pure given the
 * gateway's tables; it decides nothing (the session decides every routed request).
 */
import { splitNamespaced } from './facts.js';
import type { McpGateway } from './gateway.js';
import { isJsonObject, type JsonObject } from './jsonrpc.js';
import type { Upstream } from './upstream.js';

export interface Route {
  upstream: Upstream | null;
  /** The params sent upstream (names un-namespaced). */
  params: JsonObject | undefined;
  tool: string;
  args: JsonObject;
  /** Why there is no upstream (an error message for the guest). */
  unknown?: string;
}

/** Maps a method to its server and the params the server must see. Pure given the gateway's tables. */
export function routeRequest(
  gw: McpGateway,
  method: string,
  params: JsonObject | undefined,
): Route {
  const p = params ?? {};
  const args = isJsonObject(p.arguments) ? p.arguments : {};
  if (method === 'tools/call' || method === 'prompts/get') {
    const name = typeof p.name === 'string' ? p.name : '';
    if (p.arguments !== undefined && !isJsonObject(p.arguments)) {
      // Rules read arguments as an object; anything else would slip past them, so it never leaves.
      return {
        upstream: null,
        params,
        tool: name,
        args: {},
        unknown: 'Invalid params: "arguments" must be an object',
      };
    }
    const split = splitNamespaced(name);
    const upstream = split ? (gw.upstreams.get(split.server) ?? null) : null;
    const tool = split?.name ?? name;
    const unknown = upstream
      ? undefined
      : `Unknown ${method === 'tools/call' ? 'tool' : 'prompt'} "${name}": names are "<server>__<name>" as listed by celgate`;
    return { upstream, params: { ...p, name: tool }, tool, args, ...(unknown ? { unknown } : {}) };
  }
  if (method.startsWith('resources/')) {
    const uri = typeof p.uri === 'string' ? p.uri : '';
    const server = gw.serverForUri(uri);
    const upstream = server === null ? null : (gw.upstreams.get(server) ?? null);
    return {
      upstream,
      params,
      tool: '',
      args: p,
      ...(upstream ? {} : { unknown: `Unknown resource "${uri}"` }),
    };
  }
  if (method === 'completion/complete') {
    const ref = isJsonObject(p.ref) ? p.ref : {};
    if (ref.type === 'ref/prompt' && typeof ref.name === 'string') {
      const split = splitNamespaced(ref.name);
      const upstream = split ? (gw.upstreams.get(split.server) ?? null) : null;
      const fwd = { ...p, ref: { ...ref, name: split?.name ?? ref.name } };
      return {
        upstream,
        params: fwd,
        tool: split?.name ?? '',
        args: p,
        ...(upstream ? {} : { unknown: `Unknown prompt "${ref.name}"` }),
      };
    }
    const server = typeof ref.uri === 'string' ? gw.serverForUri(ref.uri) : null;
    const upstream = server === null ? null : (gw.upstreams.get(server) ?? null);
    return {
      upstream,
      params,
      tool: '',
      args: p,
      ...(upstream ? {} : { unknown: 'Unknown completion reference' }),
    };
  }
  // Any other method goes to the one server whose capabilities advertise its prefix.
  const prefix = method.slice(0, method.indexOf('/') === -1 ? method.length : method.indexOf('/'));
  const candidates = gw.serversWith(prefix);
  const upstream = candidates.length === 1 ? candidates[0]! : null;
  return {
    upstream,
    params,
    tool: '',
    args: p,
    ...(upstream ? {} : { unknown: `Method not found: ${method}` }),
  };
}
