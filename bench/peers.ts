/**
 * `npm run bench:peers` — celgate against its peers on ALLOWED traffic (issue #7 §5). One local
 * HTTPS upstream, one client (undici), one run, five paths:
 *   direct          client → upstream
 *   celgate-vsock   client → celgate's HTTP port (tcp vsock mode, TLS with SNI) → upstream
 *   celgate-proxy   client → celgate's explicit proxy (CONNECT) → upstream (when configured)
 *   mitmdump        client → Debian's mitmdump as an explicit proxy → upstream
 *   node-floor      client → a bare Node TLS relay (bench/http-floor.ts, no goal) → upstream
 * and with --twin a sixth, celgate-vsock-twin: a second gateway started the same way (no goal).
 * Measured: throughput with 1 and 16 concurrent kept-alive connections (the paths interleaved in
 * THROUGHPUT_ROUNDS slices per point, so load drift hits them alike), and new-connection latency;
 * reported as ratios to direct; per path also CPU per request (this process, the path's process)
 * and the host's busy share. Every response must be a 200 with the expected body before a number
 * is kept. mitmdump is installed with apt when absent; a path that cannot run is reported as skipped.
 *
 * usage: node dist/bench/peers.js [--seconds S] [--latency-runs N] [--no-install] [--twin]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { pathToFileURL } from 'node:url';
import { Agent, ProxyAgent, request, type Dispatcher } from 'undici';
import { CA_CERT_FILE } from '../src/certs/ca.js';
import { flagsOrExit } from './args.js';
import { summarize, writeArtifact, type AssertionResult, type Summary } from './artifact.js';
import { startBenchGateway, type BenchGateway } from './guest-gateway.js';
import { startFloorProxy, type FloorProxy } from './http-floor.js';
import { hostCpu, processCpuMs } from './proc.js';

export const BODY = Buffer.alloc(1024, 'x');
export const CONCURRENCY = [1, 16] as const;
/**
 * Seconds each path runs at a concurrency before its measured slices. Time, not a request count: a
 * change of load (1 → 16 connections) makes V8 deoptimise and re-optimise dozens of the gateway's
 * functions (`--trace-deopt`: "wrong map"), ~150 ms of compiling that 50 requests did not absorb.
 */
export const WARMUP_SECONDS = 1;

interface PathSetup {
  name: string;
  origin: string;
  /** The process that does this path's work besides client and upstream (gateway, relay, proxy). */
  pid: number | null;
  dispatcher(connections: number): Dispatcher;
  /** One fresh connection per request. */
  fresh(): Dispatcher;
}

export const USAGE = `usage: npm run bench:peers -- [options]
       node dist/bench/peers.js [options]

Allowed HTTPS GETs to one local upstream with one client (undici), in one run: direct, through
celgate (vsock port and explicit proxy), through mitmdump as an explicit proxy, and through a bare
Node TLS relay (no goal: the two-hop floor of this host at that moment). Throughput at 1
and 16 kept-alive connections and new-connection latency, as ratios to direct; writes
benchmarks/security-engine/peers-https-get.json.

options:
  --seconds S         seconds of load per path and concurrency (default 3)
  --latency-runs N    new connections timed per path (default 30)
  --no-install        do not apt-get install mitmproxy when mitmdump is absent (its path is skipped)
  --twin              also run a second, identical celgate (celgate-vsock-twin, no goal): how far
                      two copies of the same gateway differ in one run is that run's noise
  --help              this text
`;

function makeCert(dir: string): { key: string; cert: string; certPath: string } {
  const r = spawnSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
      '-keyout',
      join(dir, 'up.key'),
      '-out',
      join(dir, 'up.crt'),
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost',
    ],
    { stdio: 'pipe' },
  );
  if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr.toString()}`);
  return {
    key: readFileSync(join(dir, 'up.key'), 'utf8'),
    cert: readFileSync(join(dir, 'up.crt'), 'utf8'),
    certPath: join(dir, 'up.crt'),
  };
}

/** TLS connections the upstream accepted: shows whether a path reuses its upstream connections. */
let upstreamConnections = 0;

async function upstream(key: string, cert: string): Promise<{ server: Server; port: number }> {
  const server = createServer({ key, cert, keepAliveTimeout: 60_000 }, (_req, res) => {
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': BODY.length,
    });
    res.end(BODY);
  });
  server.on('secureConnection', () => upstreamConnections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, port: (server.address() as net.AddressInfo).port };
}

async function one(d: Dispatcher, origin: string): Promise<boolean> {
  const r = await request(`${origin}/peers`, { dispatcher: d });
  const body = Buffer.from(await r.body.arrayBuffer());
  return r.statusCode === 200 && body.equals(BODY);
}

/**
 * Each throughput point is split into this many slices that alternate between the paths, so load
 * drift on a shared machine falls on every path alike instead of on whichever ran during a burst.
 */
export const THROUGHPUT_ROUNDS = 3;

interface Point {
  rps: number;
  bad: number;
  /** Requests measured (warm-up excluded). */
  total: number;
  /** Warm-up requests (answers checked as well). */
  warm: number;
  /** TLS connections the upstream accepted while this path ran (warm-up included). */
  upstreamConnections: number;
  /** CPU µs per measured request of this process (client and upstream) and of the path's process. */
  cpuUs: { bench: number; path: number | null };
  /** Share of the host's CPU time that was busy while this path was measured (0–1). */
  hostBusy: number;
}

/** `c` workers on dispatcher `d` for `seconds`: requests done, bad answers, elapsed seconds. */
async function drive(
  d: Dispatcher,
  origin: string,
  c: number,
  seconds: number,
): Promise<{ total: number; bad: number; elapsed: number }> {
  let bad = 0;
  let total = 0;
  const until = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: c }, async () => {
      while (performance.now() < until) {
        if (!(await one(d, origin))) bad++;
        total++;
      }
    }),
  );
  return { total, bad, elapsed: (performance.now() - t0) / 1000 };
}

/**
 * Requests per second of every path with `c` workers on a pool of `c` kept-alive connections:
 * WARMUP_SECONDS each, then THROUGHPUT_ROUNDS rounds in which each path runs `seconds / rounds`.
 */
async function throughputAll(
  paths: PathSetup[],
  c: number,
  seconds: number,
): Promise<Map<string, Point>> {
  type Acc = Point & {
    elapsed: number;
    benchMs: number;
    pathMs: number;
    busyMs: number;
    allMs: number;
  };
  const out = new Map<string, Acc>();
  const ds = paths.map((p) => p.dispatcher(c));
  const counted = async <T>(name: string, f: () => Promise<T>): Promise<T> => {
    const before = upstreamConnections;
    const r = await f();
    out.get(name)!.upstreamConnections += upstreamConnections - before;
    return r;
  };
  for (const [i, p] of paths.entries()) {
    const acc: Acc = {
      rps: 0,
      bad: 0,
      total: 0,
      warm: 0,
      upstreamConnections: 0,
      cpuUs: { bench: 0, path: null },
      hostBusy: 0,
      elapsed: 0,
      benchMs: 0,
      pathMs: 0,
      busyMs: 0,
      allMs: 0,
    };
    out.set(p.name, acc);
    const warm = await counted(p.name, () => drive(ds[i]!, p.origin, c, WARMUP_SECONDS));
    acc.bad += warm.bad;
    acc.warm = warm.total;
  }
  for (let round = 0; round < THROUGHPUT_ROUNDS; round++) {
    for (const [i, p] of paths.entries()) {
      const [bench0, path0, host0] = [process.cpuUsage(), processCpuMs(p.pid), hostCpu()];
      const t = await counted(p.name, () =>
        drive(ds[i]!, p.origin, c, seconds / THROUGHPUT_ROUNDS),
      );
      const [bench, host] = [process.cpuUsage(bench0), hostCpu()];
      const acc = out.get(p.name)!;
      acc.total += t.total;
      acc.bad += t.bad;
      acc.elapsed += t.elapsed;
      acc.benchMs += (bench.user + bench.system) / 1000;
      acc.pathMs += processCpuMs(p.pid) - path0;
      acc.busyMs += host.busyMs - host0.busyMs;
      acc.allMs += host.totalMs - host0.totalMs;
    }
  }
  await Promise.all(ds.map((d) => d.close()));
  for (const acc of out.values()) {
    acc.rps = acc.total / acc.elapsed;
    const perRequest = (ms: number) => (ms * 1000) / Math.max(1, acc.total);
    acc.cpuUs = {
      bench: perRequest(acc.benchMs),
      path: Number.isNaN(acc.pathMs) ? null : perRequest(acc.pathMs),
    };
    acc.hostBusy = acc.busyMs / acc.allMs;
  }
  return out;
}

async function latency(p: PathSetup, runs: number): Promise<{ values: number[]; bad: number }> {
  const values: number[] = [];
  let bad = 0;
  for (let i = 0; i < runs; i++) {
    const d = p.fresh();
    const t0 = performance.now();
    if (!(await one(d, p.origin))) bad++;
    values.push(performance.now() - t0);
    await d.close();
  }
  return { values, bad };
}

async function waitPort(port: number, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect(port, '127.0.0.1', () => (s.destroy(), r(true)));
      s.on('error', () => r(false));
    });
    if (ok) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

function ensureMitmdump(install: boolean): string | null {
  const has = () =>
    spawnSync('sh', ['-c', 'command -v mitmdump'], { encoding: 'utf8' }).stdout.trim();
  if (has() !== '') return has();
  if (!install) return null;
  process.stdout.write('mitmdump not found: apt-get install -y mitmproxy …\n');
  spawnSync(
    'sh',
    ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mitmproxy'],
    { stdio: 'inherit' },
  );
  return has() === '' ? null : has();
}

async function startMitmdump(
  bin: string,
  dir: string,
): Promise<{ proc: ChildProcess; port: number; ca: string } | null> {
  const port = await new Promise<number>((r) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => r(p));
    });
  });
  const confdir = join(dir, 'mitm');
  const proc = spawn(
    bin,
    [
      '--listen-host',
      '127.0.0.1',
      '--listen-port',
      String(port),
      '--set',
      `confdir=${confdir}`,
      '--set',
      'ssl_insecure=true',
      '-q',
    ],
    { stdio: 'ignore' },
  );
  if (!(await waitPort(port, 20_000))) {
    proc.kill('SIGKILL');
    return null;
  }
  return { proc, port, ca: readFileSync(join(confdir, 'mitmproxy-ca-cert.pem'), 'utf8') };
}

function tlsConnector(host: string, port: number, ca: string): Agent.Options['connect'] {
  return (opts, cb) => {
    const s = tls.connect(
      { host, port, servername: opts.servername ?? 'localhost', ca, ALPNProtocols: ['http/1.1'] },
      () => cb(null, s),
    );
    s.once('error', (e) => cb(e, null));
  };
}

/**
 * A bench gateway in `dir` that maps `localhost` to the upstream and allows it, and its vsock-port
 * path (null when it has no tcp HTTP listener).
 */
async function startCelgate(
  dir: string,
  upstreamPort: number,
  upstreamCa: string,
): Promise<{ gw: BenchGateway; ca: string; pid: number | null; vsock: PathSetup | null }> {
  const gw = await startBenchGateway(
    dir,
    {
      vsock: { mode: 'tcp', host: '127.0.0.1', ports: { http: 0, mcp: 0, dns: 0, exec: 0 } },
      http: {
        ca_dir: join(dir, 'certs'),
        upstream_map: {
          'localhost:443': `127.0.0.1:${upstreamPort}`,
          [`localhost:${upstreamPort}`]: `127.0.0.1:${upstreamPort}`,
        },
        extra_ca: [upstreamCa],
        proxy: '127.0.0.1:0',
      },
    },
    { dropLogsAfterReady: true },
  );
  try {
    const allow = await gw.api('PUT', '/v1/rules/peers.allow-localhost', {
      description: 'bench:peers: allow the local upstream',
      condition: 'http.request.host == "localhost"',
      action: 'allow',
      priority: -1000,
      mode: 'enforce',
      reason: 'bench upstream',
      enabled: true,
    });
    if (allow.status >= 300) throw new Error(`cannot install allow rule: ${allow.text}`);
    const ca = readFileSync(join(dir, 'certs', CA_CERT_FILE), 'utf8');
    const pid = Number((await gw.api('GET', '/v1/health')).json?.pid) || null;
    const httpAddr = gw.listeners.http;
    const vsock =
      httpAddr !== undefined && /:\d+$/.test(httpAddr)
        ? tlsPath('celgate-vsock', Number(httpAddr.slice(httpAddr.lastIndexOf(':') + 1)), ca, pid)
        : null;
    return { gw, ca, pid, vsock };
  } catch (err) {
    await gw.stop();
    throw err;
  }
}

/** Rows as left-aligned columns. */
function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ')).join('\n');
}

/** A path whose client thinks it talks to https://localhost but connects to 127.0.0.1:`port`. */
function tlsPath(name: string, port: number, ca: string, pid: number | null): PathSetup {
  const connect = tlsConnector('127.0.0.1', port, ca);
  return {
    name,
    origin: 'https://localhost',
    pid,
    dispatcher: (c) => new Agent({ connections: c, connect }),
    fresh: () => new Agent({ pipelining: 0, connect }),
  };
}

export async function main(argv: string[]): Promise<number> {
  const parsed = flagsOrExit(
    argv,
    { values: ['--seconds', '--latency-runs'], switches: ['--no-install', '--twin'] },
    USAGE,
  );
  if (typeof parsed === 'number') return parsed;
  const seconds = Number(parsed.values.get('--seconds') ?? 3);
  const latencyRuns = Number(parsed.values.get('--latency-runs') ?? 30);
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 600) {
    process.stderr.write('--seconds must be a number in (0, 600]\n');
    return 2;
  }
  if (!Number.isInteger(latencyRuns) || latencyRuns < 1 || latencyRuns > 10_000) {
    process.stderr.write('--latency-runs must be an integer 1..10000\n');
    return 2;
  }
  const dir = mkdtempSync(join(tmpdir(), 'celgate-peers-'));
  const { key, cert, certPath } = makeCert(dir);
  const up = await upstream(key, cert);
  const paths: PathSetup[] = [];
  const skipped: Record<string, string> = {};
  const direct = `https://localhost:${up.port}`;
  paths.push({
    name: 'direct',
    origin: direct,
    pid: null,
    dispatcher: (c) => new Agent({ connections: c, connect: { ca: cert } }),
    fresh: () => new Agent({ pipelining: 0, connect: { ca: cert } }),
  });
  let gw: BenchGateway | null = null;
  let twin: BenchGateway | null = null;
  let mitm: { proc: ChildProcess; port: number; ca: string } | null = null;
  let floor: FloorProxy | null = null;
  try {
    const celgate = await startCelgate(dir, up.port, certPath);
    gw = celgate.gw;
    const [celgateCa, gwPid] = [celgate.ca, celgate.pid];
    if (celgate.vsock !== null) paths.push(celgate.vsock);
    else skipped['celgate-vsock'] = `no tcp HTTP listener in ${JSON.stringify(gw.listeners)}`;
    const proxyAddr = gw.listeners.proxy ?? gw.listeners.http_proxy;
    if (proxyAddr !== undefined) {
      paths.push({
        name: 'celgate-proxy',
        origin: direct,
        pid: gwPid,
        dispatcher: (c) =>
          new ProxyAgent({
            uri: `http://${proxyAddr}`,
            connections: c,
            requestTls: { ca: celgateCa },
          }),
        fresh: () =>
          new ProxyAgent({
            uri: `http://${proxyAddr}`,
            pipelining: 0,
            requestTls: { ca: celgateCa },
          }),
      });
    } else
      skipped['celgate-proxy'] =
        'the gateway reports no explicit proxy listener (not configured in this build)';
    if (parsed.switches.has('--twin')) {
      mkdirSync(join(dir, 'twin'));
      const second = await startCelgate(join(dir, 'twin'), up.port, certPath);
      twin = second.gw;
      if (second.vsock !== null) paths.push({ ...second.vsock, name: 'celgate-vsock-twin' });
    }
    const bin = ensureMitmdump(!parsed.switches.has('--no-install'));
    mitm = bin === null ? null : await startMitmdump(bin, dir);
    if (mitm !== null) {
      const m = mitm;
      paths.push({
        name: 'mitmdump',
        origin: direct,
        pid: m.proc.pid ?? null,
        dispatcher: (c) =>
          new ProxyAgent({
            uri: `http://127.0.0.1:${m.port}`,
            connections: c,
            requestTls: { ca: m.ca },
          }),
        fresh: () =>
          new ProxyAgent({
            uri: `http://127.0.0.1:${m.port}`,
            pipelining: 0,
            requestTls: { ca: m.ca },
          }),
      });
    } else skipped.mitmdump = bin === null ? 'mitmdump not installed' : 'mitmdump did not start';

    // No goal: a bare Node TLS relay (bench/http-floor.ts) reached like the vsock port, so a run
    // shows how much of the gap to direct two TLS hops in Node cost on this host at that moment.
    floor = await startFloorProxy(join(dir, 'floor-certs'), up.port, certPath);
    const floorCa = readFileSync(join(dir, 'floor-certs', CA_CERT_FILE), 'utf8');
    paths.push(tlsPath('node-floor', floor.port, floorCa, floor.pid));

    const results: Record<string, Summary> = {};
    const assertions: AssertionResult[] = [];
    const rps: Record<string, Record<number, number>> = {};
    const upstreamConns: Record<string, number> = {};
    const requests: Record<string, number> = {};
    const cpuUs: Record<string, Record<number, Point['cpuUs']>> = {};
    const hostBusy: Record<string, Record<number, number>> = {};
    for (const p of paths) {
      rps[p.name] = {};
      cpuUs[p.name] = {};
      hostBusy[p.name] = {};
      requests[p.name] = 0;
      upstreamConns[p.name] = 0;
    }
    for (const c of CONCURRENCY) {
      process.stdout.write(
        `throughput with ${c} connection(s), ${paths.map((p) => p.name).join(' / ')} interleaved…\n`,
      );
      const points = await throughputAll(paths, c, seconds);
      for (const p of paths) {
        const t = points.get(p.name)!;
        assertions.push({
          name: `${p.name} c=${c}: every response 200 with the upstream body`,
          ok: t.bad === 0 && t.total > 0,
          detail: `${t.bad} bad of ${t.total + t.warm}`,
        });
        rps[p.name]![c] = t.rps;
        cpuUs[p.name]![c] = t.cpuUs;
        hostBusy[p.name]![c] = t.hostBusy;
        requests[p.name]! += t.total + t.warm;
        upstreamConns[p.name]! += t.upstreamConnections;
        results[`${p.name}.throughput_c${c}`] = summarize([t.rps], 'req/s');
      }
    }
    for (const p of paths) {
      const connsBefore = upstreamConnections;
      const l = await latency(p, latencyRuns);
      assertions.push({
        name: `${p.name}: new-connection requests all 200`,
        ok: l.bad === 0,
        detail: `${l.bad} bad`,
      });
      results[`${p.name}.new_connection_ms`] = summarize(l.values);
      upstreamConns[p.name]! += upstreamConnections - connsBefore;
      requests[p.name]! += latencyRuns;
    }
    const ratios: Record<string, Record<string, number>> = {};
    for (const p of paths) {
      ratios[p.name] = {
        ...Object.fromEntries(
          CONCURRENCY.map((c) => [`throughput_c${c}`, rps[p.name]![c]! / rps.direct![c]!]),
        ),
        new_connection_latency:
          results[`${p.name}.new_connection_ms`]!.mean / results['direct.new_connection_ms']!.mean,
      };
    }
    const goals: AssertionResult[] = [];
    if (rps['celgate-vsock'] !== undefined) {
      goals.push({
        name: 'goal: celgate (vsock port) ≥ 65 % of direct at 16 connections',
        ok: ratios['celgate-vsock']!.throughput_c16! >= 0.65,
        detail: ratios['celgate-vsock']!.throughput_c16!.toFixed(3),
      });
      if (rps['celgate-proxy'] !== undefined) {
        goals.push({
          name: 'goal: celgate (explicit proxy) ≥ 60 % of direct at 16 connections',
          ok: ratios['celgate-proxy']!.throughput_c16! >= 0.6,
          detail: ratios['celgate-proxy']!.throughput_c16!.toFixed(3),
        });
      }
      if (rps.mitmdump !== undefined) {
        const x = rps['celgate-vsock']![16]! / rps.mitmdump[16]!;
        goals.push({
          name: 'goal: celgate ≥ 5× mitmdump throughput at 16 connections',
          ok: x >= 5,
          detail: `${x.toFixed(2)}×`,
        });
      }
    }
    const allOk = assertions.every((a) => a.ok);
    const twinShare =
      rps['celgate-vsock-twin'] === undefined || rps['celgate-vsock'] === undefined
        ? null
        : rps['celgate-vsock-twin']![16]! / rps['celgate-vsock']![16]!;
    const artifact = writeArtifact({
      kind: 'peers',
      name: 'https-get',
      results: allOk ? results : {},
      assertions,
      runs: latencyRuns,
      notes: {
        seconds,
        throughput_rounds: THROUGHPUT_ROUNDS,
        warmup_seconds: WARMUP_SECONDS,
        body_bytes: BODY.length,
        ratios_to_direct: ratios,
        // The vsock port against the bare relay in the same run (1 = as fast as two bare TLS hops).
        vsock_to_node_floor_c16:
          rps['celgate-vsock'] === undefined
            ? null
            : rps['celgate-vsock']![16]! / rps['node-floor']![16]!,
        // With --twin: the second, identical gateway against the first (1 = no noise between them).
        twin_to_vsock_c16: twinShare,
        requests_per_second: rps,
        // CPU µs per request: `bench` is this process (client and upstream), `path` the path's own
        // process (gateway, relay, mitmdump); host_busy_share is all CPUs' busy share meanwhile.
        cpu_us_per_request: cpuUs,
        host_busy_share: hostBusy,
        upstream_tls_connections: upstreamConns,
        requests,
        goals,
        skipped,
      },
    });
    const rows = [
      [
        'path',
        'c=1 req/s',
        'c=16 req/s',
        'c=1 ×direct',
        'c=16 ×direct',
        'new conn mean ms',
        '×direct',
      ],
    ];
    for (const p of paths) {
      rows.push([
        p.name,
        rps[p.name]![1]!.toFixed(0),
        rps[p.name]![16]!.toFixed(0),
        ratios[p.name]!.throughput_c1!.toFixed(3),
        ratios[p.name]!.throughput_c16!.toFixed(3),
        results[`${p.name}.new_connection_ms`]!.mean.toFixed(3),
        ratios[p.name]!.new_connection_latency!.toFixed(3),
      ]);
    }
    const cpuRows = [['path', 'c=16 client+upstream µs/req', 'path process µs/req', 'host busy']];
    for (const p of paths) {
      const cpu = cpuUs[p.name]![16]!;
      cpuRows.push([
        p.name,
        cpu.bench.toFixed(1),
        cpu.path === null ? '-' : cpu.path.toFixed(1),
        `${(hostBusy[p.name]![16]! * 100).toFixed(0)} %`,
      ]);
    }
    process.stdout.write(`\n${table(rows)}\n\n${table(cpuRows)}\n`);
    for (const p of paths)
      process.stdout.write(
        `${p.name}: ${requests[p.name]} requests used ${upstreamConns[p.name]} upstream TLS connections\n`,
      );
    if (rps['celgate-vsock'] !== undefined) {
      const share = rps['celgate-vsock']![16]! / rps['node-floor']![16]!;
      process.stdout.write(
        `celgate-vsock ÷ node-floor at 16 connections: ${share.toFixed(3)} (no goal)\n`,
      );
    }
    if (twinShare !== null)
      process.stdout.write(
        `celgate-vsock-twin ÷ celgate-vsock at 16 connections: ${twinShare.toFixed(3)} ` +
          "(the same gateway twice: this run's noise, no goal)\n",
      );
    for (const [k, v] of Object.entries(skipped)) process.stdout.write(`skipped ${k}: ${v}\n`);
    for (const g of goals)
      process.stdout.write(`${g.ok ? 'PASS' : 'FAIL'} ${g.name} (${g.detail})\n`);
    for (const a of assertions.filter((x) => !x.ok))
      process.stdout.write(`FAILED ${a.name}: ${a.detail}\n`);
    process.stdout.write(`artifact: ${artifact.path}\n`);
    return allOk && goals.every((g) => g.ok) ? 0 : 1;
  } finally {
    mitm?.proc.kill('SIGTERM');
    await floor?.stop();
    await gw?.stop();
    await twin?.stop();
    up.server.close();
    up.server.closeAllConnections();
    if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`bench:peers crashed: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
