/**
 * The guest namespace harness (tests and benchmarks; test/support/netns.ts re-exports it): an isolated network namespace whose only way
 * out is the celgate guest bridge.
 *
 *   - `ip netns add cg7-<pid>-<n>`; inside: `lo` up and a veth pair whose BOTH ends live inside
 *     (so there is a default route, yet nothing can leave the namespace);
 *   - iptables (nat OUTPUT) REDIRECT of TCP 443 and 80 to the bridge's forwarder port;
 *   - /etc/netns/<name>/resolv.conf → `nameserver 127.0.0.1` (bind-mounted by `ip netns exec`);
 *   - the bridge started inside (`ip netns exec <name> node dist/src/transport/guest/standalone.js`,
 *     the same code as `celgate guest-bridge` and the single-file bundle),
 *     reaching the host gateway over uds-mode vsock (Unix sockets cross the netns boundary
 *     because the filesystem is shared).
 *
 * Everything is torn down by `destroy()`, on process exit, and stale namespaces of dead runs are
 * swept at the next create. Where namespaces are unavailable `netnsAvailability()` says why and
 * callers skip — the harness never falls back to running clients on the host.
 */
import { execFileSync, spawnSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './artifact.js';

/** The built CLI; the same file whether this module runs from bench/ (vitest) or dist/bench/. */
export const MAIN_JS = join(repoRoot(), 'dist', 'src', 'cli', 'main.js');
/**
 * What runs inside the guest: the bridge's own entry (the code of the single-file bundle and of
 * `celgate guest-bridge`), which loads only the bridge — not the whole CLI — so it starts fast.
 */
export const BRIDGE_JS = join(repoRoot(), 'dist', 'src', 'transport', 'guest', 'standalone.js');
export const NAME_PREFIX = 'cg7-';
export const FORWARD_PORT = 15001;
/** Fake "internet" address the guest's default route points at; REDIRECT catches it first. */
export const GUEST_ADDR = '10.203.0.1';
export const GATEWAY_ADDR = '10.203.0.2';
/** The guest's IPv6 address and default route (a unique-local prefix; nothing routes it anywhere). */
export const GUEST_ADDR6 = 'fd00:cb::1';
export const GATEWAY_ADDR6 = 'fd00:cb::2';
/** Whether ip6tables exists: then the guest's IPv6 is redirected too (docs/guest.md). */
export const HAVE_IP6TABLES =
  spawnSync('ip6tables', ['--version'], { stdio: 'ignore' }).status === 0;
export const BRIDGE_READY_TIMEOUT_MS = 15_000;

export interface Availability {
  ok: boolean;
  reason: string;
}

let cached: Availability | undefined;

function tryRun(cmd: string, args: string[]): string | null {
  try {
    execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
    return null;
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    return (e.stderr?.toString().trim() || e.message).split('\n')[0]!;
  }
}

/** Can this machine run guest namespaces? Checks root, `ip`, `iptables`, and a real probe namespace. */
export function netnsAvailability(): Availability {
  if (cached !== undefined) return cached;
  const fail = (reason: string) =>
    (cached = { ok: false, reason: `guest namespaces unavailable: ${reason}` });
  if (process.env.CELGATE_GUEST_NETNS === 'off') return fail('disabled by CELGATE_GUEST_NETNS=off');
  if (process.platform !== 'linux') return fail(`platform is ${process.platform}, not linux`);
  if (process.getuid?.() !== 0) return fail('not running as root (ip netns needs CAP_SYS_ADMIN)');
  for (const tool of ['ip', 'iptables']) {
    if (tryRun('sh', ['-c', `command -v ${tool}`]) !== null)
      return fail(`"${tool}" is not installed (.ci/run installs it)`);
  }
  for (const f of [MAIN_JS, BRIDGE_JS])
    if (!existsSync(f)) return fail(`${f} is missing (build first)`);
  const probe = `${NAME_PREFIX}probe-${process.pid}`;
  const err =
    tryRun('ip', ['netns', 'add', probe]) ??
    tryRun('ip', ['netns', 'exec', probe, 'ip', 'link', 'set', 'lo', 'up']) ??
    tryRun('ip', ['netns', 'exec', probe, 'iptables', '-t', 'nat', '-L', 'OUTPUT', '-n']);
  tryRun('ip', ['netns', 'del', probe]);
  if (err !== null) return fail(err);
  return (cached = { ok: true, reason: '' });
}

/** Forgets the cached answer (tests that flip CELGATE_GUEST_NETNS). */
export function resetNetnsAvailability(): void {
  cached = undefined;
}

const live = new Set<string>();
let counter = 0;

function removeNamespace(name: string): void {
  tryRun('ip', ['netns', 'del', name]);
  rmSync(`/etc/netns/${name}`, { recursive: true, force: true });
  live.delete(name);
}

process.once('exit', () => {
  for (const name of [...live]) removeNamespace(name);
});

/** Deletes namespaces left behind by runs whose process is gone. */
export function sweepStaleNamespaces(): void {
  let names: string[] = [];
  try {
    names = readdirSync('/var/run/netns');
  } catch {
    return;
  }
  for (const name of names) {
    const m = /^cg7-(?:probe-)?(\d+)(?:-\d+)?$/.exec(name);
    if (m === null) continue;
    const pid = Number(m[1]);
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch {
      alive = false;
    }
    if (!alive) removeNamespace(name);
  }
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Wall time of the whole command, ms. */
  ms: number;
}

export interface GuestOptions {
  /** hybrid-vsock base path shared with the gateway (`vsock.uds_base`). */
  udsBase: string;
  /** Scratch dir for the MCP socket and bridge logs. */
  workDir: string;
  ports?: { http?: number; mcp?: number; dns?: number; exec?: number };
  /** Extra `guest-bridge` arguments. */
  bridgeArgs?: string[];
}

export class GuestNamespace {
  readonly mcpSocket: string;
  private bridgeStderr = '';

  private constructor(
    readonly name: string,
    readonly workDir: string,
    private bridge: ChildProcess | null = null,
    public addresses: Record<string, string> = {},
  ) {
    this.mcpSocket = join(workDir, 'mcp.sock');
  }

  /** Creates the namespace and starts the bridge in it. Cleans up after itself if any step fails. */
  static async create(opts: GuestOptions): Promise<GuestNamespace> {
    const avail = netnsAvailability();
    if (!avail.ok) throw new Error(avail.reason);
    sweepStaleNamespaces();
    const name = `${NAME_PREFIX}${process.pid}-${++counter}`;
    mkdirSync(opts.workDir, { recursive: true });
    const g = new GuestNamespace(name, opts.workDir);
    live.add(name);
    try {
      const ns = (...args: string[]) =>
        execFileSync('ip', ['netns', 'exec', name, ...args], {
          stdio: ['ignore', 'ignore', 'pipe'],
        });
      execFileSync('ip', ['netns', 'add', name], { stdio: ['ignore', 'ignore', 'pipe'] });
      ns('ip', 'link', 'set', 'lo', 'up');
      ns('ip', 'link', 'add', 'cgv0', 'type', 'veth', 'peer', 'name', 'cgv1');
      ns('ip', 'addr', 'add', `${GUEST_ADDR}/24`, 'dev', 'cgv0');
      ns('ip', 'link', 'set', 'cgv0', 'up');
      ns('ip', 'link', 'set', 'cgv1', 'up');
      ns('ip', 'route', 'add', 'default', 'via', GATEWAY_ADDR, 'dev', 'cgv0');
      ns(
        'iptables',
        '-t',
        'nat',
        '-A',
        'OUTPUT',
        '-p',
        'tcp',
        '-m',
        'multiport',
        '--dports',
        '80,443',
        '-j',
        'REDIRECT',
        '--to-ports',
        String(FORWARD_PORT),
      );
      if (HAVE_IP6TABLES) {
        // IPv6 too: an address and a route (so a v6 connect gets as far as the nat hook) and the same
        // REDIRECT, to the bridge's [::1] forwarder. Without it AAAA answers would be a way out.
        ns('ip', '-6', 'addr', 'add', `${GUEST_ADDR6}/64`, 'dev', 'cgv0', 'nodad');
        ns('ip', '-6', 'route', 'add', 'default', 'via', GATEWAY_ADDR6, 'dev', 'cgv0');
        ns(
          'ip6tables',
          '-t',
          'nat',
          '-A',
          'OUTPUT',
          '-p',
          'tcp',
          '-m',
          'multiport',
          '--dports',
          '80,443',
          '-j',
          'REDIRECT',
          '--to-ports',
          String(FORWARD_PORT),
        );
      }
      mkdirSync(`/etc/netns/${name}`, { recursive: true });
      writeFileSync(
        `/etc/netns/${name}/resolv.conf`,
        'nameserver 127.0.0.1\noptions timeout:2 attempts:1\n',
      );
      await g.startBridge(opts);
      return g;
    } catch (err) {
      await g.destroy();
      throw err;
    }
  }

  private async startBridge(opts: GuestOptions): Promise<void> {
    const p = { http: 5002, mcp: 5003, dns: 5007, exec: 5000, ...opts.ports };
    const args = [
      'netns',
      'exec',
      this.name,
      process.execPath,
      BRIDGE_JS,
      '--mode',
      'uds',
      '--uds-base',
      opts.udsBase,
      '--port-http',
      String(p.http),
      '--port-mcp',
      String(p.mcp),
      '--port-dns',
      String(p.dns),
      '--port-exec',
      String(p.exec),
      '--forward',
      `127.0.0.1:${FORWARD_PORT}`,
      '--dns',
      '127.0.0.1:53',
      '--mcp-socket',
      this.mcpSocket,
      ...(opts.bridgeArgs ?? []),
    ];
    const child = spawn('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.bridge = child;
    child.stderr!.setEncoding('utf8').on('data', (c: string) => {
      this.bridgeStderr = (this.bridgeStderr + c).slice(-8192);
    });
    this.addresses = await new Promise<Record<string, string>>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `guest bridge not ready after ${BRIDGE_READY_TIMEOUT_MS} ms: ${this.bridgeStderr}`,
            ),
          ),
        BRIDGE_READY_TIMEOUT_MS,
      );
      child.stdout!.setEncoding('utf8').on('data', (c: string) => {
        out += c;
        const line = out.split('\n').find((l) => l.includes('"ready"'));
        if (line !== undefined) {
          clearTimeout(timer);
          resolve(JSON.parse(line).addresses);
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`guest bridge exited with ${code}: ${this.bridgeStderr}`));
      });
    });
  }

  /** What the bridge wrote to stderr (its warnings), last 8 KiB. */
  bridgeLog(): string {
    return this.bridgeStderr;
  }

  /** Runs a command inside the namespace and collects its output. Never rejects for a non-zero exit. */
  run(
    argv: string[],
    opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string } = {},
  ): Promise<RunResult> {
    const started = performance.now();
    return new Promise((resolve, reject) => {
      const child = this.spawn(argv, opts.env);
      let stdout = '';
      let stderr = '';
      child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
      child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
      const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
      child.once('error', reject);
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        resolve({
          code: code ?? 128 + (signal === 'SIGKILL' ? 9 : 15),
          stdout,
          stderr,
          ms: performance.now() - started,
        });
      });
      child.stdin!.end(opts.input);
    });
  }

  /** Spawns a command inside the namespace (stdio piped). */
  spawn(argv: string[], env?: NodeJS.ProcessEnv): ChildProcess {
    return spawn('ip', ['netns', 'exec', this.name, ...argv], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
  }

  /** Stops the bridge and removes the namespace and its /etc/netns entry. Safe to call twice. */
  async destroy(): Promise<void> {
    const b = this.bridge;
    this.bridge = null;
    if (b !== null && b.exitCode === null && b.signalCode === null) {
      const gone = new Promise<void>((r) => b.once('exit', () => r()));
      b.kill('SIGTERM');
      const t = setTimeout(() => b.kill('SIGKILL'), 3_000);
      await gone;
      clearTimeout(t);
    }
    removeNamespace(this.name);
  }
}
