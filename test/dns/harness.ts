/**
 * In-process DNS service for tests and benchmarks: a real RuleRegistry + PolicyEngine, a sink that
 * records every call, a log that keeps its lines, and `startDnsService` on loopback (vsock in tcp
 * mode and plain UDP + TCP, all on port 0).
 */
import type { Decision, DnsRow, EventSink, SecurityEvent } from '../../src/events/index.js';
import { PolicyEngine } from '../../src/policy/engine.js';
import { RuleRegistry } from '../../src/policy/registry.js';
import type { Decider } from '../../src/events/index.js';
import {
  startDnsService,
  type DnsServiceOptions,
  type DnsService,
} from '../../src/transport/dns/index.js';

export class RecordingSink implements EventSink {
  readonly decisions: { event: SecurityEvent; decision: Decision }[] = [];
  readonly dnsRows: DnsRow[] = [];
  decision(event: SecurityEvent, decision: Decision): void {
    this.decisions.push({ event, decision });
  }
  dns(row: DnsRow): void {
    this.dnsRows.push(row);
  }
  net(): void {}
  mcp(): void {}
  exec(): void {}
}

export interface LogLine {
  level: 'info' | 'warn' | 'debug';
  obj: Record<string, unknown>;
  msg: string;
}

export function recordingLog(lines: LogLine[] = []) {
  const at =
    (level: LogLine['level']) =>
    (obj: object, msg = '') =>
      void lines.push({ level, obj: obj as Record<string, unknown>, msg });
  return { lines, info: at('info'), warn: at('warn'), debug: at('debug') };
}

export interface Harness {
  registry: RuleRegistry;
  sink: RecordingSink;
  log: ReturnType<typeof recordingLog>;
  service: DnsService;
  udp: { host: string; port: number };
  vsockPort: number;
  close(): Promise<void>;
}

export function blockRule(id: string, condition: string) {
  return {
    id,
    description: `test rule ${id}`,
    condition,
    action: 'block',
    reason: `${id} says no`,
    priority: 0,
    mode: 'enforce',
    enabled: true,
  };
}

export async function startHarness(
  options: Partial<DnsServiceOptions> & { decider?: Decider } = {},
): Promise<Harness> {
  const registry = new RuleRegistry({ defaultAction: 'allow' });
  const engine = new PolicyEngine(registry);
  const sink = new RecordingSink();
  const log = recordingLog();
  const { decider, ...rest } = options;
  const service = await startDnsService(
    {
      origin: { session_id: 'dns-test' },
      vsock: { mode: 'tcp', host: '127.0.0.1', port: 0 },
      listen: '127.0.0.1:0',
      upstreams: [],
      timeout_ms: 500,
      ...rest,
    },
    { decider: decider ?? engine, sink, log },
  );
  const split = (a: string | undefined) => {
    const i = (a ?? ':0').lastIndexOf(':');
    return { host: (a ?? '').slice(0, i), port: Number((a ?? ':0').slice(i + 1)) };
  };
  return {
    registry,
    sink,
    log,
    service,
    udp: split(service.addresses.dns_udp),
    vsockPort: split(service.addresses.dns_vsock).port,
    close: () => service.close(),
  };
}
