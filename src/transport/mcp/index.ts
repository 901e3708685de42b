/**
 * Public surface of the MCP interception area: the service entry point, the frame and NDJSON
 * codecs, and the SDK transport for guests. Re-exports only; no logic.
 */
export {
  startMcpService,
  type McpService,
  type McpServiceDeps,
  type McpServiceOptions,
} from './service.js';
export {
  McpGateway,
  checkUpstreams,
  DEFAULT_CALL_TIMEOUT_MS,
  type McpGatewayDeps,
  type McpGatewayOptions,
  type RuleSource,
  type McpLog,
} from './gateway.js';
export type { UpstreamConfig } from './upstream.js';
export type { StreamClosed } from './connection.js';
export { serveFramed, serveNdjson } from './connection.js';
export { FramedConnection, FramedClientTransport, connectFramedTransport } from './client.js';
export * from './frame.js';
export { NdjsonDecoder, encodeLine, MAX_LINE_BYTES } from './ndjson.js';
export { RpcCode, MAX_JSON_DEPTH, MAX_BATCH } from './jsonrpc.js';
export { HiddenTools, toolMatcher } from './hidden.js';
