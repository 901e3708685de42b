/**
 * In-process MCP test harness: a RuleRegistry + PolicyEngine, a recording EventSink, the MCP
 * service on tcp port 0 with real upstream servers (server-everything and the flaky fixture as
 * stdio children), and SDK Clients connected through the frame transport.
 */
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { Decision } from '../../src/events/decision.js';
import type { EventSink, McpCallRow } from '../../src/events/sink.js';
import type { SecurityEvent } from '../../src/events/types.js';
import { PolicyEngine, RuleRegistry } from '../../src/policy/index.js';
import type { RuleDefinition } from '../../src/policy/types.js';
import {
  connectFramedTransport,
  startMcpService,
  type McpService,
  type StreamClosed,
  type UpstreamConfig,
} from '../../src/transport/mcp/index.js';
import { RECORD_BATCH_MS } from '../../src/transport/mcp/session.js';

export const EVERYTHING_JS = fileURLToPath(
  new URL(
    '../../node_modules/@modelcontextprotocol/server-everything/dist/index.js',
    import.meta.url,
  ),
);
export const FLAKY_JS = fileURLToPath(new URL('../fixtures/mcp/flaky-server.mjs', import.meta.url));
export const EVERYTHING: UpstreamConfig = {
  id: 'everything',
  command: process.execPath,
  args: [EVERYTHING_JS, 'stdio'],
};
export const FLAKY: UpstreamConfig = { id: 'flaky', command: process.execPath, args: [FLAKY_JS] };

export function rule(
  id: string,
  condition: string,
  action: RuleDefinition['action'] = 'block',
  extra: Partial<RuleDefinition> = {},
): RuleDefinition {
  return {
    id,
    description: id,
    condition,
    action,
    priority: 0,
    mode: 'enforce',
    reason: `test rule ${id}`,
    enabled: true,
    severity: null,
    tags: [],
    pack_id: 'test',
    kind: 'enforcement',
    ...extra,
  };
}

export class RecordingSink implements EventSink {
  readonly decisions: { event: SecurityEvent; decision: Decision }[] = [];
  readonly mcpRows: McpCallRow[] = [];
  decision(event: SecurityEvent, decision: Decision): void {
    this.decisions.push({ event, decision });
  }
  mcp(row: McpCallRow): void {
    this.mcpRows.push(row);
  }
  /**
   * Resolves after the sessions' batched records were written: they are within RECORD_BATCH_MS of
   * the decision, and a timer set later with a longer delay fires after theirs.
   */
  recorded(): Promise<void> {
    return new Promise((r) => setTimeout(r, 3 * RECORD_BATCH_MS));
  }
  net(): void {}
  dns(): void {}
  exec(): void {}
}

export interface Harness {
  service: McpService;
  registry: RuleRegistry;
  sink: RecordingSink;
  closed: StreamClosed[];
  endpoint: { mode: 'tcp'; host: string; port: number };
  client(name?: string): Promise<Client>;
  close(): Promise<void>;
}

export async function startHarness(opts: {
  rules?: RuleDefinition[];
  upstreams?: UpstreamConfig[];
  callTimeoutMs?: number;
  backoffInitialMs?: number;
  frameTimeoutMs?: number;
  defaultAction?: 'allow' | 'block';
}): Promise<Harness> {
  const registry = new RuleRegistry({ defaultAction: opts.defaultAction ?? 'allow' });
  for (const r of opts.rules ?? []) {
    const res = registry.install(r);
    if (!res.ok) throw new Error(`rule ${r.id}: ${JSON.stringify(res.issues)}`);
  }
  const sink = new RecordingSink();
  const closed: StreamClosed[] = [];
  const service = await startMcpService(
    {
      upstreams: opts.upstreams ?? [EVERYTHING],
      callTimeoutMs: opts.callTimeoutMs ?? 10_000,
      backoffInitialMs: opts.backoffInitialMs ?? 100,
      origin: { session_id: 'mcp-test' },
      vsock: { mode: 'tcp', host: '127.0.0.1', port: 0 },
      frameTimeoutMs: opts.frameTimeoutMs ?? 2_000,
    },
    {
      decider: new PolicyEngine(registry),
      sink,
      rules: registry,
      onStreamClosed: (i) => closed.push(i),
    },
  );
  const port = Number(service.addresses.mcp!.split(':').pop());
  const endpoint = { mode: 'tcp' as const, host: '127.0.0.1', port };
  const clients: Client[] = [];
  return {
    service,
    registry,
    sink,
    closed,
    endpoint,
    async client(name = 'test-agent') {
      const transport = await connectFramedTransport(endpoint, { processName: name });
      const client = new Client({ name, version: '1.0.0' });
      await client.connect(transport);
      clients.push(client);
      return client;
    },
    async close() {
      await Promise.all(clients.map((c) => c.close().catch(() => {})));
      await service.close();
    },
  };
}
