/**
 * DNS interception (issue #5): the public surface of src/transport/dns. Parsers and builders are
 * sans-io; `startDnsService` owns the listeners. Nothing here decides: a `Decider` is passed in.
 */
export {
  startDnsService,
  serveStream,
  parseListen,
  DEFAULT_UPSTREAMS,
  DEFAULT_TIMEOUT_MS,
  DEFAULT_STATIC_TTL_S,
} from './service.js';
export type { DnsServiceOptions, DnsService } from './service.js';
export { DnsResolver } from './resolver.js';
export type { DnsDeps, DnsLog, DnsStats, RequestContext } from './resolver.js';
export { parseQuery } from './parse.js';
export type { DnsQuery, DnsQuestion, DnsParseError, QueryParse, EdnsInfo } from './parse.js';
export { parseResponse } from './response.js';
export {
  denialResponse,
  errorResponse,
  staticResponse,
  truncatedResponse,
  rewriteResponse,
} from './synth.js';
export { FrameReader, frame } from './framing.js';
export { AnswerCache, cacheKey } from './cache.js';
export { UpstreamForwarder, parseUpstream } from './upstream.js';
export * from './limits.js';
export type { DnsProblem } from './wire.js';
export { parseDnsConfig, startDnsFromConfig } from './config.js';
export type { DnsConfig, DnsStartDeps } from './config.js';
export { listenDnsVsock } from './vsock-listener.js';
