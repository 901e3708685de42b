/**
 * The floor for bench/http.ts's throughput ratio: a bare Node.js TLS relay with none of celgate's
 * work and no HTTP at all — TLS termination with a leaf for the SNI, one upstream TLS connection per
 * guest connection, bytes relayed as they arrive (no parsing, no event, no decision, no ledger, no
 * log). It runs in its own process, like the gateway, so "floor ÷ direct" in the same run shows how
 * much of the gap to direct is two TLS hops in Node rather than celgate. (Until the direct path,
 * this was Node's HTTPS server with a keep-alive `https.Agent`; celgate now needs less CPU per
 * request than that did.)
 *
 * Owns: that relay process. Must not: be mistaken for the gateway (it enforces nothing and is
 * never a goal's subject; it only bounds what any Node-based TLS interceptor can reach here).
 *
 * usage (spawned by bench/http.ts): node dist/bench/http-floor.js <ca-dir> <upstream-port> <upstream-ca-file>
 *   prints `listening <port>` on stdout once ready.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
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
export async function startFloorProxy(
  caDir: string,
  upstreamPort: number,
  upstreamCaFile: string,
): Promise<FloorProxy> {
  const child: ChildProcess = spawn(
    process.execPath,
    [fileURLToPath(import.meta.url), caDir, String(upstreamPort), upstreamCaFile],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error('floor proxy not ready')),
      FLOOR_READY_TIMEOUT_MS,
    );
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
  const server = tls.createServer(
    {
      SNICallback: (name, cb) =>
        void leaves.secureContext(name).then(
          (c) => cb(null, c),
          (e: Error) => cb(e),
        ),
      ALPNProtocols: ['http/1.1'],
    },
    (guest) => {
      // One upstream TLS connection per guest connection; bytes relayed as they come, unparsed.
      const up = tls.connect({
        host: '127.0.0.1',
        port: upstreamPort,
        servername: (guest as tls.TLSSocket & { servername?: string }).servername || 'localhost',
        secureContext: upCa,
      });
      guest.setNoDelay(true);
      up.setNoDelay(true);
      guest.on('data', (c: Buffer) => void up.write(c));
      up.on('data', (c: Buffer) => void guest.write(c));
      guest.on('end', () => up.end());
      up.on('end', () => guest.end());
      guest.on('error', () => up.destroy());
      up.on('error', () => guest.destroy());
    },
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  process.on('SIGTERM', () => process.exit(0));
  process.stdout.write(`listening ${(server.address() as net.AddressInfo).port}\n`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await serve(process.argv[2]!, Number(process.argv[3]), process.argv[4]!);
}
