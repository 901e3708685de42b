/**
 * Rig for MCP over HTTPS through the real gateway: `@modelcontextprotocol/server-everything` in its
 * Streamable HTTP or SSE mode on loopback, behind a TLS relay whose certificate a test CA signs (the
 * gateway trusts it through `http.extra_ca`), and SDK client transports whose `fetch` goes through
 * the explicit proxy with the gateway's CA trusted.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import tls from 'node:tls';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { ProxyAgent, fetch as undiciFetch } from 'undici';
import type { Certs } from '../../support/http-harness.js';

const require = createRequire(import.meta.url);
export const EVERYTHING_JS = join(
  dirname(require.resolve('@modelcontextprotocol/server-everything/package.json')),
  'dist/index.js',
);

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface Everything {
  /** The TLS relay's port (what `upstream_map` points at). */
  port: number;
  close(): Promise<void>;
}

/** server-everything in `mode` (`streamableHttp` | `sse`) on loopback, behind a TLS relay. */
export async function startEverything(
  certs: Certs,
  mode: 'streamableHttp' | 'sse',
): Promise<Everything> {
  const plain = await freePort();
  const child: ChildProcess = spawn(process.execPath, [EVERYTHING_JS, mode], {
    env: { ...process.env, PORT: String(plain) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`server-everything did not start: ${err}`)),
      20_000,
    );
    child.stderr!.on('data', (c: Buffer) => {
      err += c.toString();
      if (/running on port|listening on port/i.test(err)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server-everything exited ${code}: ${err}`));
    });
  });
  child.stderr!.resume();
  const relay = tls.createServer(
    {
      SNICallback: (name, cb) =>
        void certs.leaves.secureContext(name || 'localhost').then(
          (c) => cb(null, c),
          (e: Error) => cb(e),
        ),
    },
    (sock) => {
      const up = net.connect(plain, '127.0.0.1');
      sock.pipe(up).pipe(sock);
      sock.on('error', () => up.destroy());
      up.on('error', () => sock.destroy());
    },
  );
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  return {
    port: (relay.address() as net.AddressInfo).port,
    close: async () => {
      await new Promise<void>((r) => relay.close(() => r()));
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
    },
  };
}

/** A fetch through the explicit proxy at `proxyPort`, trusting the gateway CA. */
export function proxiedFetch(
  proxyPort: number,
  caPem: string,
): { fetch: typeof fetch; close(): Promise<void> } {
  const agent = new ProxyAgent({ uri: `http://127.0.0.1:${proxyPort}`, requestTls: { ca: caPem } });
  const f = ((url: string | URL, init?: RequestInit) =>
    undiciFetch(url, { ...(init as object), dispatcher: agent })) as unknown as typeof fetch;
  return { fetch: f, close: () => agent.close() };
}
