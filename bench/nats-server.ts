/**
 * Real `nats-server -js` processes for the fleet tests (Debian's nats-server, installed by .ci/run):
 * one server, or a three-node JetStream cluster on loopback ports, each with its own store dir, so a
 * server can be stopped and started again on the same port with its data.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const HAVE_NATS = spawnSync('nats-server', ['--version']).status === 0;

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => {
        c.destroy();
        resolve(true);
      });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline)
      throw new Error(`nats-server did not listen on ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export class NatsServer {
  private proc: ChildProcess | null = null;
  log = '';
  constructor(
    readonly name: string,
    readonly port: number,
    private readonly configFile: string,
  ) {}

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.proc = spawn('nats-server', ['-c', this.configFile], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc.stderr!.on('data', (d: Buffer) => (this.log += d.toString()));
    this.proc.stdout!.on('data', (d: Buffer) => (this.log += d.toString()));
    await waitForPort(this.port, 10_000);
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (p === null || p.exitCode !== null) return;
    this.proc = null;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGTERM');
      setTimeout(() => p.kill('SIGKILL'), 5_000).unref();
    });
  }
}

/** One JetStream server with a file store. */
export async function startNats(): Promise<NatsServer> {
  const dir = mkdtempSync(join(tmpdir(), 'nats-'));
  const port = await freePort();
  const file = join(dir, 'nats.conf');
  writeFileSync(
    file,
    `server_name: n1\nlisten: 127.0.0.1:${port}\njetstream { store_dir: "${join(dir, 'js')}" }\n`,
  );
  const s = new NatsServer('n1', port, file);
  await s.start();
  return s;
}

/** A three-node JetStream cluster on loopback. */
export async function startNatsCluster(): Promise<NatsServer[]> {
  const dir = mkdtempSync(join(tmpdir(), 'nats-cluster-'));
  const nodes = await Promise.all(
    [0, 1, 2].map(async (i) => ({ i, port: await freePort(), cluster: await freePort() })),
  );
  const servers = nodes.map((n) => {
    const store = join(dir, `n${n.i}`);
    mkdirSync(store, { recursive: true });
    const routes = nodes
      .filter((o) => o.i !== n.i)
      .map((o) => `nats-route://127.0.0.1:${o.cluster}`);
    const file = join(dir, `n${n.i}.conf`);
    writeFileSync(
      file,
      [
        `server_name: n${n.i}`,
        `listen: 127.0.0.1:${n.port}`,
        `jetstream { store_dir: "${store}" }`,
        `cluster { name: celgate-test, listen: 127.0.0.1:${n.cluster}, routes: [${routes.map((r) => `"${r}"`).join(', ')}] }`,
        '',
      ].join('\n'),
    );
    return new NatsServer(`n${n.i}`, n.port, file);
  });
  await Promise.all(servers.map((s) => s.start()));
  return servers;
}
