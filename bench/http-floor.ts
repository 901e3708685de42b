/**
 * The floor for bench/http.ts's throughput ratio: a bare Node.js HTTPS pass-through with none of
 * celgate's work (no SNI parse, no event, no decision, no ledger, no log) — TLS termination with a
 * leaf for the SNI, Node's HTTP/1.1 server, a keep-alive `https.Agent` upstream, the response piped
 * back. It runs in its own process, like the gateway, so "floor ÷ direct" in the same run shows how
 * much of the gap to direct is Node's TLS + HTTP machinery on two hops rather than celgate.
 *
 * Owns: that pass-through process. Must not: be mistaken for the gateway (it enforces nothing and
 * is never a goal's subject; it only bounds what any Node-based interceptor can reach here).
 *
 * usage (spawned by bench/http.ts): node dist/bench/http-floor.js <ca-dir> <upstream-port> <upstream-ca-file>
 *   prints `listening <port>` on stdout once ready.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import tls from 'node:tls';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CertificateAuthority, LeafCache } from '../src/certs/index.js';

export const FLOOR_READY_TIMEOUT_MS = 20_000;

export interface FloorProxy {
  port: number;
  pid: number;
  stop(): Promise<void>;
}

/** Starts the pass-through in a child process; `caDir` holds a CA that mints its leaves. */
export async function startFloorProxy(caDir: string, upstreamPort: number, upstreamCaFile: string): Promise<FloorProxy> {
  const child: ChildProcess = spawn(process.execPath, [fileURLToPath(import.meta.url), caDir, String(upstreamPort), upstreamCaFile], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('floor proxy not ready')), FLOOR_READY_TIMEOUT_MS);
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      out += c;
      const m = /listening (\d+)/.exec(out);
      if (m !== null) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once('exit', (code) => reject(new Error(`floor proxy exited with ${code}`)));
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    port,
    pid: child.pid!,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

async function serve(caDir: string, upstreamPort: number, upstreamCaFile: string): Promise<void> {
  const leaves = new LeafCache(await CertificateAuthority.loadOrCreate(caDir));
  const upCa = tls.createSecureContext({ ca: readFileSync(upstreamCaFile, 'utf8') });
  const agent = new https.Agent({ keepAlive: true, maxSockets: 256, scheduling: 'lifo' });
  const server = https.createServer(
    {
      SNICallback: (name, cb) => leaves.secureContext(name).then((c) => cb(null, c), (e: Error) => cb(e)),
      ALPNProtocols: ['http/1.1'],
      keepAliveTimeout: 60_000,
    },
    (req, res) => {
      const host = (req.headers.host ?? '').replace(/:\d+$/, '');
      const options: https.RequestOptions & Pick<tls.ConnectionOptions, 'secureContext'> = {
        host: '127.0.0.1',
        port: upstreamPort,
        method: req.method,
        path: req.url,
        headers: req.rawHeaders as unknown as OutgoingHttpHeaders,
        setHost: false,
        agent,
        servername: host,
        secureContext: upCa,
      };
      const up = https.request(options, (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.rawHeaders);
        upRes.pipe(res);
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    },
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  process.on('SIGTERM', () => process.exit(0));
  process.stdout.write(`listening ${(server.address() as net.AddressInfo).port}\n`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await serve(process.argv[2]!, Number(process.argv[3]), process.argv[4]!);
}
