/**
 * MCP interception benchmarks (issue #6). Three measurements, each asserting what it measures
 * before recording it, written as JSON artifacts under benchmarks/security-engine/:
 *
 *  1. micro  `mcp-blocked-call-pipeline`: frame decode → JSON-RPC parse → mcp.request event →
 *     engine decide → JSON-RPC denial → frame encode, in process (tinybench).
 *  2. guest  `mcp-blocked-call-e2e`: the real gateway (`celgate start`, uds vsock), the SDK Client
 *     over the frame transport, N blocked `tools/call`s (interleaved with diagnostics: SDK ping,
 *     the same call from a raw frame client; plus the SDK alone on an in-memory transport). Gate: p50 ≤ 0.3 ms. Asserts every call was
 *     denied with the rule id and session.db holds N rows naming it.
 *  3. guest  `mcp-echo-overhead`: allowed `echo` on server-everything through celgate vs. the same
 *     call from an SDK Client straight to the server (stdio), interleaved in the same run.
 *     Goals: median(celgate) ≤ 1.5 × median(direct) and gateway CPU ≤ 0.35 ms per echo.
 *     Diagnostic floor in the same loop: the same call through a bare relay process (stdio in →
 *     child stdio, bytes copied, nothing parsed), i.e. the cost of one extra process hop alone;
 *     the same relay reached over a Unix socket (the
 *     guest-side transport the gateway is reached by here), since a socket round trip costs more
 *     than a pipe's; and the CPU time per call of the gateway process vs. both relays (from /proc),
 *     since on a loaded machine CPU per call is what turns into latency.
 *
 * usage: npm run -s build && node dist/bench/mcp.js [--calls N]   (exits 1 when a gate fails)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { Bench } from 'tinybench';
import { NULL_SINK } from '../src/events/sink.js';
import { PolicyEngine, RuleRegistry } from '../src/policy/index.js';
import {
  FrameDecoder,
  FrameKind,
  decodeUtf8,
  encodeData,
  encodeOpen,
} from '../src/transport/mcp/frame.js';
import { connectVsock } from '../src/transport/vsock.js';
import { McpGateway } from '../src/transport/mcp/gateway.js';
import { RpcCode, type Json } from '../src/transport/mcp/jsonrpc.js';
import { McpSession } from '../src/transport/mcp/session.js';
import { connectFramedTransport } from '../src/transport/mcp/client.js';
import { McpSocketTransport } from '../src/transport/guest/mcp-socket-transport.js';
import {
  fromTinybench,
  summarize,
  writeArtifact,
  type Artifact,
  type AssertionResult,
} from './artifact.js';
import { startMcpBenchGateway } from './mcp-gateway.js';
import { processCpuMs as cpuMs } from './proc.js';

export const E2E_P50_GOAL_MS = 0.3;
export const ECHO_RATIO_GOAL = 1.5;
/** Issue #20's goal for the gateway's CPU per allowed echo (user + system, from /proc). */
export const ECHO_CPU_GOAL_MS = 0.35;
/**
 * Unmeasured echoes on every path before the measured ones. The gateway's JIT is not settled after
 * a few hundred: `--trace-opt` shows TurboFan compiling its echo path until about the 1,750th echo
 * (~0.35 s of compiling in all), and the relay processes are not warm either; 2,000 reach the
 * steady state (as the guest MCP lane's MCP_CLIENT_WARM_CALLS).
 */
export const ECHO_WARMUP = 2_000;
const RULE_ID = 'bench-mcp-deny';
const BLOCKED_TOOL = 'get-sum';
const EVERYTHING_JS = fileURLToPath(
  new URL(
    '../../node_modules/@modelcontextprotocol/server-everything/dist/index.js',
    import.meta.url,
  ),
);
const EVERYTHING = { id: 'everything', command: process.execPath, args: [EVERYTHING_JS, 'stdio'] };
const RULE = {
  id: RULE_ID,
  description: 'benchmark: deny one tool',
  condition: `mcp.request.tool_name == "${BLOCKED_TOOL}"`,
  action: 'block' as const,
  reason: 'benchmark denial',
};

/**
 * A bare relay process (diagnostic floor): spawns the server and copies bytes both ways, parsing
 * nothing. `node -e RELAY_JS <server args…>`.
 */
const RELAY_JS = `const { spawn } = require('node:child_process');
const c = spawn(process.execPath, process.argv.slice(1), { stdio: ['pipe', 'pipe', 'ignore'] });
process.stdin.on('data', (d) => c.stdin.write(d));
c.stdout.on('data', (d) => process.stdout.write(d));
process.stdin.on('end', () => c.stdin.end());
c.on('exit', () => process.exit(0));`;

/**
 * The same bare relay reached over a Unix socket (the transport the gateway's guest side uses here)
 * instead of a pipe: `node -e SOCKET_RELAY_JS <socket path> <server args…>`. It drops the client's
 * `\0META` preamble line and copies bytes both ways, parsing nothing (diagnostic floor).
 */
const SOCKET_RELAY_JS = `const { spawn } = require('node:child_process');
const net = require('node:net');
const [path, ...args] = process.argv.slice(1);
const c = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'ignore'] });
const srv = net.createServer((s) => {
  let head = true;
  s.on('data', (d) => {
    if (head && d[0] === 0) { const nl = d.indexOf(10); if (nl === -1) return; d = d.subarray(nl + 1); }
    head = false;
    if (d.length > 0) c.stdin.write(d);
  });
  c.stdout.on('data', (d) => s.write(d));
  s.on('close', () => process.exit(0));
});
srv.listen(path, () => process.stdout.write('ready\\n'));
c.on('exit', () => process.exit(0));`;

/** Starts SOCKET_RELAY_JS and resolves once it listens. */
async function startSocketRelay(path: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['-e', SOCKET_RELAY_JS, path, ...EVERYTHING.args], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`socket relay exited (${code})`)));
  });
  return child;
}

/** 1. The sans-io + decide path of one blocked tools/call, no sockets. */
export async function benchPipeline(): Promise<Artifact> {
  const registry = new RuleRegistry();
  const installed = registry.install({
    ...RULE,
    priority: 0,
    mode: 'enforce',
    enabled: true,
    severity: null,
    tags: [],
    pack_id: 'bench',
    kind: 'enforcement',
  });
  if (!installed.ok) throw new Error(JSON.stringify(installed.issues));
  const gw = new McpGateway(
    { upstreams: [], origin: { session_id: 'bench' } },
    { decider: new PolicyEngine(registry), sink: NULL_SINK, rules: registry },
  );
  let wake: () => void = () => {};
  let last: Json = null;
  const session = new McpSession(gw, 'bench', (m) => {
    last = m;
    wake();
  });
  const roundTrip = async (frame: Buffer, decoder: FrameDecoder): Promise<Buffer> => {
    const replied = new Promise<void>((r) => (wake = r));
    const f = decoder.push(frame).frames[0];
    if (f?.kind !== FrameKind.DATA) throw new Error('no DATA frame decoded');
    session.handlePayload(decodeUtf8(f.payload)!);
    await replied;
    return encodeData(1, JSON.stringify(last));
  };
  const decoder = new FrameDecoder();
  await roundTrip(
    encodeData(
      1,
      JSON.stringify({
        jsonrpc: '2.0',
        id: 0,
        method: 'initialize',
        params: {
          protocolVersion: '2025-06-18',
          capabilities: {},
          clientInfo: { name: 'b', version: '1' },
        },
      }),
    ),
    decoder,
  );
  const call = encodeData(
    1,
    JSON.stringify({
      jsonrpc: '2.0',
      id: 42,
      method: 'tools/call',
      params: { name: `everything__${BLOCKED_TOOL}`, arguments: { a: 1, b: 2 } },
    }),
  );
  const check = JSON.parse((await roundTrip(call, decoder)).subarray(14).toString('utf8'));
  const assertions: AssertionResult[] = [
    {
      name: 'reply is a policy denial for the same id',
      ok: check.id === 42 && check.error?.code === RpcCode.POLICY_BLOCKED,
    },
    {
      name: 'denial names the rule',
      ok: check.error?.data?.rule_id === RULE_ID,
      detail: JSON.stringify(check.error?.data),
    },
  ];
  const bench = new Bench({ time: 1_000, warmupTime: 200, retainSamples: true });
  bench.add('decode+decide+encode blocked tools/call', () =>
    roundTrip(call, decoder).then(() => undefined),
  );
  await bench.run();
  return writeArtifact({
    kind: 'micro',
    name: 'mcp-blocked-call-pipeline',
    results: fromTinybench(bench.tasks),
    assertions,
  });
}

async function timed<T>(
  fn: () => Promise<T>,
): Promise<{ ms: number; value: T | undefined; error: unknown }> {
  const t = performance.now();
  try {
    const value = await fn();
    return { ms: performance.now() - t, value, error: undefined };
  } catch (error) {
    return { ms: performance.now() - t, value: undefined, error };
  }
}

/** A raw framed stream (no SDK): one blocked tools/call at a time, frame out, wait for the reply. */
async function rawClient(
  udsBase: string,
): Promise<{ blocked(i: number): Promise<{ ms: number; reply: any }>; close(): void }> {
  const socket = await connectVsock({ mode: 'uds', udsBase, port: 5003 });
  const decoder = new FrameDecoder();
  let waiting: ((payload: Buffer) => void) | null = null;
  socket.on('data', (chunk: Buffer) => {
    for (const f of decoder.push(chunk).frames) if (f.kind === FrameKind.DATA) waiting?.(f.payload);
  });
  const call = (msg: unknown) =>
    new Promise<any>((resolve) => {
      waiting = (p) => resolve(JSON.parse(p.toString('utf8')));
      socket.write(encodeData(1, JSON.stringify(msg)));
    });
  socket.write(encodeOpen(1, 'bench-raw'));
  await call({
    jsonrpc: '2.0',
    id: 0,
    method: 'initialize',
    params: {
      protocolVersion: '2025-06-18',
      capabilities: {},
      clientInfo: { name: 'raw', version: '1' },
    },
  });
  socket.write(
    encodeData(1, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' })),
  );
  return {
    async blocked(i) {
      const t = performance.now();
      const reply = await call({
        jsonrpc: '2.0',
        id: i,
        method: 'tools/call',
        params: { name: `everything__${BLOCKED_TOOL}`, arguments: { a: i, b: 1 } },
      });
      return { ms: performance.now() - t, reply };
    },
    close: () => socket.destroy(),
  };
}

/**
 * The SDK client alone: an in-memory Transport that answers every tools/call with the very denial
 * celgate sent (no socket, no gateway). This is the floor the SDK itself puts under the e2e number.
 */
async function sdkOnlyDenials(denial: unknown, n: number): Promise<number[]> {
  const transport = {
    onmessage: undefined as ((m: unknown) => void) | undefined,
    onclose: undefined as (() => void) | undefined,
    async start() {},
    async close() {
      this.onclose?.();
    },
    async send(m: { id?: number; method?: string }) {
      const reply =
        m.method === 'initialize'
          ? {
              jsonrpc: '2.0',
              id: m.id,
              result: {
                protocolVersion: '2025-06-18',
                capabilities: { tools: {} },
                serverInfo: { name: 'mem', version: '1' },
              },
            }
          : m.id === undefined
            ? null
            : { jsonrpc: '2.0', id: m.id, error: denial };
      if (reply) queueMicrotask(() => this.onmessage?.(reply));
    },
  };
  const client = new Client({ name: 'bench-sdk-only', version: '1' });
  await client.connect(transport as never);
  const ms: number[] = [];
  for (let i = 0; i < n + 50; i++) {
    const r = await timed(() =>
      client.callTool({ name: `everything__${BLOCKED_TOOL}`, arguments: { a: i, b: 1 } }),
    );
    if (!(r.error instanceof McpError))
      throw new Error('the in-memory denial did not surface as McpError');
    if (i >= 50) ms.push(r.ms);
  }
  await client.close();
  return ms;
}

/** 2 + 3. The real gateway, the SDK client through frames, and the direct baseline. */
export async function benchEndToEnd(calls: number): Promise<Artifact[]> {
  const loadAtStart = os.loadavg();
  const work = mkdtempSync(join(tmpdir(), 'celgate-bench-mcp-'));
  const gw = await startMcpBenchGateway(work, { servers: [EVERYTHING] });
  const artifacts: Artifact[] = [];
  let client: Client | undefined;
  let direct: Client | undefined;
  let relayed: Client | undefined;
  let socketRelayed: Client | undefined;
  let socketRelay: ChildProcess | undefined;
  try {
    const put = await gw.api('PUT', `/v1/rules/${RULE_ID}`, RULE);
    if (put.status >= 300) throw new Error(`rule install failed: ${put.text}`);
    client = new Client({ name: 'bench-mcp', version: '1' });
    await client.connect(
      await connectFramedTransport(
        { mode: 'uds', udsBase: gw.udsBase, port: 5003 },
        { processName: 'bench-mcp' },
      ),
    );
    direct = new Client({ name: 'bench-direct', version: '1' });
    await direct.connect(
      new StdioClientTransport({
        command: EVERYTHING.command,
        args: EVERYTHING.args,
        stderr: 'ignore',
      }),
    );
    const relayTransport = new StdioClientTransport({
      command: process.execPath,
      args: ['-e', RELAY_JS, ...EVERYTHING.args],
      stderr: 'ignore',
    });
    relayed = new Client({ name: 'bench-relayed', version: '1' });
    await relayed.connect(relayTransport);
    socketRelay = await startSocketRelay(join(work, 'relay.sock'));
    socketRelayed = new Client({ name: 'bench-socket-relayed', version: '1' });
    await socketRelayed.connect(
      new McpSocketTransport({
        socketPath: join(work, 'relay.sock'),
        processName: 'bench-socket-relayed',
      }),
    );

    // 2. blocked calls, interleaved with a ping on the same session (diagnostic floor: a request
    // celgate decides and answers itself), after WARMUP calls of each so both run JIT-warm.
    // The raw frame client (no SDK) makes the same blocked call in the same loop: a diagnostic.
    const WARMUP = 300;
    const blockedMs: number[] = [];
    const pingMs: number[] = [];
    const rawMs: number[] = [];
    let deniedWithRule = 0;
    let sdkDeniedAll = 0;
    const raw = { denied: 0, deniedAll: 0, denial: null as unknown };
    const rc = await rawClient(gw.udsBase);
    for (let i = 0; i < calls + WARMUP; i++) {
      const r = await timed(() =>
        client!.callTool({ name: `everything__${BLOCKED_TOOL}`, arguments: { a: i, b: 1 } }),
      );
      const e = r.error;
      const ok =
        e instanceof McpError &&
        e.code === RpcCode.POLICY_BLOCKED &&
        (e.data as { rule_id?: string })?.rule_id === RULE_ID;
      if (ok) sdkDeniedAll++;
      const p = await timed(() => client!.ping());
      const q = await rc.blocked(i + 1);
      const rawOk =
        q.reply.id === i + 1 &&
        q.reply.error?.code === RpcCode.POLICY_BLOCKED &&
        q.reply.error?.data?.rule_id === RULE_ID;
      if (rawOk) {
        raw.deniedAll++;
        raw.denial = q.reply.error;
      } else if (process.env.CELGATE_BENCH_DEBUG)
        console.error('unexpected raw reply', i + 1, JSON.stringify(q.reply).slice(0, 300));
      if (i >= WARMUP) {
        blockedMs.push(r.ms);
        pingMs.push(p.ms);
        rawMs.push(q.ms);
        if (ok) deniedWithRule++;
        if (rawOk) raw.denied++;
      }
    }
    rc.close();
    // Diagnostic (no gate): the SDK client alone, answered in memory with the same denial.
    const sdkOnly = raw.denial === null ? [] : await sdkOnlyDenials(raw.denial, calls);
    // 3. allowed echo, interleaved with the direct baseline and the bare-relay floor
    const viaMs: number[] = [];
    const directMs: number[] = [];
    const relayMs: number[] = [];
    const socketRelayMs: number[] = [];
    let echoOk = 0;
    let relayOk = 0;
    let socketRelayOk = 0;
    const echoCalls = Math.max(100, Math.floor(calls / 2));
    let cpu = { gw: Number.NaN, relay: Number.NaN, socketRelay: Number.NaN };
    for (let i = 0; i < echoCalls + ECHO_WARMUP; i++) {
      if (i === ECHO_WARMUP)
        cpu = {
          gw: cpuMs(gw.pid),
          relay: cpuMs(relayTransport.pid),
          socketRelay: cpuMs(socketRelay.pid),
        };
      const a = await timed(() =>
        client!.callTool({ name: 'everything__echo', arguments: { message: `m${i}` } }),
      );
      const b = await timed(() =>
        direct!.callTool({ name: 'echo', arguments: { message: `m${i}` } }),
      );
      const c = await timed(() =>
        relayed!.callTool({ name: 'echo', arguments: { message: `m${i}` } }),
      );
      const d = await timed(() =>
        socketRelayed!.callTool({ name: 'echo', arguments: { message: `m${i}` } }),
      );
      const content = (r: { value: unknown }) =>
        JSON.stringify((r.value as { content?: unknown })?.content);
      const same = content(a) === content(b);
      if (i >= ECHO_WARMUP) {
        viaMs.push(a.ms);
        directMs.push(b.ms);
        relayMs.push(c.ms);
        socketRelayMs.push(d.ms);
        if (same && a.error === undefined && b.error === undefined) echoOk++;
        if (content(c) === content(b) && c.error === undefined) relayOk++;
        if (content(d) === content(b) && d.error === undefined) socketRelayOk++;
      }
    }
    const fmtMs = (x: number) => `${x.toFixed(3)} ms`;
    const cpuPerCall = {
      gateway_cpu_ms_per_echo: (cpuMs(gw.pid) - cpu.gw) / echoCalls,
      bare_relay_cpu_ms_per_echo: (cpuMs(relayTransport.pid) - cpu.relay) / echoCalls,
      socket_relay_cpu_ms_per_echo: (cpuMs(socketRelay.pid) - cpu.socketRelay) / echoCalls,
    };
    await client.close();
    client = undefined;
    await gw.stop();
    const rows = gw.blockedRows(RULE_ID);
    const echoRows = {
      request: gw.allowedRows('everything', 'echo', 'request'),
      response: gw.allowedRows('everything', 'echo', 'response'),
    };
    const echoDecisions = gw
      .logs()
      .filter(
        (l) => l.msg === 'decision' && l.decision === 'allow' && l.event_type === 'mcp.response',
      ).length;
    const logLines = gw
      .logs()
      .filter(
        (l) => l.msg === 'decision' && l.rule_id === RULE_ID && l.decision === 'block',
      ).length;
    const blocked = summarize(blockedMs);
    artifacts.push(
      writeArtifact({
        kind: 'guest',
        name: 'mcp-blocked-call-e2e',
        notes: {
          loadavg_at_start: loadAtStart,
          loadavg_at_end: os.loadavg(),
          cores: os.cpus().length,
        },
        results: {
          'blocked tools/call, SDK client → celgate (uds frames)': blocked,
          'ping, SDK client → celgate (floor, no gate)': summarize(pingMs),
          'blocked tools/call, raw frame client (no SDK, no gate)': summarize(rawMs),
          ...(sdkOnly.length > 0
            ? { 'SDK client alone, in-memory denial (floor, no gate)': summarize(sdkOnly) }
            : {}),
        },
        assertions: [
          {
            name: `every call denied with rule ${RULE_ID}`,
            ok: deniedWithRule === calls,
            detail: `${deniedWithRule}/${calls}`,
          },
          {
            name: 'every raw-frame call denied with the rule',
            ok: raw.denied === calls,
            detail: `${raw.denied}/${calls}`,
          },
          {
            name: 'session.db holds a block row per denied call',
            ok: rows === sdkDeniedAll + raw.deniedAll,
            detail: `${rows} rows / ${sdkDeniedAll + raw.deniedAll} denials`,
          },
          {
            name: 'a decision log line names the rule for every denied call',
            ok: logLines === sdkDeniedAll + raw.deniedAll,
            detail: `${logLines} lines`,
          },
          {
            name: `goal: blocked call p50 ≤ ${E2E_P50_GOAL_MS} ms`,
            ok: blocked.median <= E2E_P50_GOAL_MS,
            detail: `${blocked.median.toFixed(3)} ms`,
          },
        ],
      }),
    );
    const via = summarize(viaMs);
    const base = summarize(directMs);
    const floor = summarize(relayMs);
    const socketFloor = summarize(socketRelayMs);
    const ratio = via.median / base.median;
    artifacts.push(
      writeArtifact({
        kind: 'guest',
        name: 'mcp-echo-overhead',
        results: {
          'echo via celgate': via,
          'echo direct (stdio)': base,
          'echo through a bare relay process (floor: one extra hop, no gate)': floor,
          'echo through a bare relay on a Unix socket (floor: the hop on the guest-side transport, no gate)':
            socketFloor,
        },
        assertions: [
          {
            name: 'every echo returned the same result both ways',
            ok: echoOk === echoCalls,
            detail: `${echoOk}/${echoCalls}`,
          },
          {
            name: 'every echo through the bare relay returned the same result',
            ok: relayOk === echoCalls,
            detail: `${relayOk}/${echoCalls}`,
          },
          {
            name: 'every echo through the socket relay returned the same result',
            ok: socketRelayOk === echoCalls,
            detail: `${socketRelayOk}/${echoCalls}`,
          },
          {
            // every echo through celgate (warm-up included) was decided and recorded both ways
            name: 'session.db holds an allowed request row and response row per echo via celgate',
            ok:
              echoRows.request === echoCalls + ECHO_WARMUP &&
              echoRows.response === echoCalls + ECHO_WARMUP,
            detail: `${echoRows.request} request / ${echoRows.response} response rows for ${echoCalls + ECHO_WARMUP} echoes`,
          },
          {
            name: 'an allowed mcp.response decision was logged per echo via celgate',
            ok: echoDecisions === echoCalls + ECHO_WARMUP,
            detail: `${echoDecisions} lines`,
          },
          {
            name: `goal: echo via celgate ≤ ${ECHO_RATIO_GOAL}× direct (median ratio)`,
            ok: ratio <= ECHO_RATIO_GOAL,
            detail: ratio.toFixed(3),
          },
          {
            name: `goal: gateway CPU ≤ ${ECHO_CPU_GOAL_MS} ms per echo`,
            ok: cpuPerCall.gateway_cpu_ms_per_echo <= ECHO_CPU_GOAL_MS,
            detail:
              `${fmtMs(cpuPerCall.gateway_cpu_ms_per_echo)} (bare relays ` +
              `${fmtMs(cpuPerCall.bare_relay_cpu_ms_per_echo)} / ` +
              `${fmtMs(cpuPerCall.socket_relay_cpu_ms_per_echo)}; /proc, 10 ms ticks)`,
          },
        ],
        notes: {
          ratio,
          bare_relay_ratio: floor.median / base.median,
          socket_relay_ratio: socketFloor.median / base.median,
          ...cpuPerCall,
          loadavg_at_start: loadAtStart,
          loadavg_at_end: os.loadavg(),
          cores: os.cpus().length,
        },
      }),
    );
  } finally {
    await client?.close().catch(() => {});
    await direct?.close().catch(() => {});
    await relayed?.close().catch(() => {});
    await socketRelayed?.close().catch(() => {});
    socketRelay?.kill();
    await gw.stop().catch(() => {});
    rmSync(work, { recursive: true, force: true });
  }
  return artifacts;
}

export async function run(calls = 1_000): Promise<Artifact[]> {
  return [await benchPipeline(), ...(await benchEndToEnd(calls))];
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const i = process.argv.indexOf('--calls');
  const calls = i === -1 ? 1_000 : Number(process.argv[i + 1]);
  const artifacts = await run(calls);
  for (const a of artifacts) {
    console.log(`\n${a.kind}/${a.name}: ${a.status}`);
    if (a.notes?.loadavg_at_start)
      console.log(
        `  (load average at start ${(a.notes.loadavg_at_start as number[]).map((x) => x.toFixed(1)).join(' ')} on ${os.cpus().length} cores)`,
      );
    for (const [name, s] of Object.entries(a.results)) {
      console.log(
        `  ${name}: n=${s.n} mean=${s.mean.toFixed(4)} p50=${s.median.toFixed(4)} p95=${s.p95.toFixed(4)} p99=${s.p99.toFixed(4)} ms`,
      );
    }
    for (const [k, v] of Object.entries(a.notes ?? {}))
      if (k.endsWith('_per_echo') || k.endsWith('ratio'))
        console.log(`  ${k}: ${(v as number).toFixed(3)}`);
    for (const x of a.assertions)
      console.log(`  [${x.ok ? 'ok' : 'FAIL'}] ${x.name}${x.detail ? ` (${x.detail})` : ''}`);
  }
  process.exitCode = artifacts.every((a) => a.status === 'passed') ? 0 : 1;
}
