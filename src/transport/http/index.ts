/** Public surface of the HTTP interception pipeline (re-exports only). */
export {
  startHttpService,
  type HttpService,
  type HttpServiceDeps,
  type HttpServiceOptions,
  type SecureContextSource,
} from './service.js';
export {
  handleRequest,
  decideAndRecord,
  failClosedDecision,
  writeNetRow,
  type BodyAwareDecider,
  type ExchangeDeps,
} from './exchange.js';
export { handleUpgrade } from './websocket.js';
export type { ExchangeContext, RequestTarget } from './target.js';
export {
  Upstream,
  parseUpstreamMap,
  resolveUpstream,
  type UpstreamMap,
  type UpstreamOptions,
} from './upstream.js';
export * from './limits.js';
export { parseClientHello, sniffProtocol, MAX_CLIENT_HELLO_BYTES } from './clienthello.js';
