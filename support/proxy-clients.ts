/**
 * Raw clients for the explicit proxy tests: a CONNECT tunnel (optionally with TLS on top, with or
 * without SNI), and curl run asynchronously (never execFileSync: the proxy runs in this process).
 */
import { execFile, spawnSync } from 'node:child_process';
import net from 'node:net';
import tls from 'node:tls';
import { Client } from 'undici';

/** Sends `CONNECT target` and resolves with the socket once the proxy answered 2xx. */
export function openTunnel(
  port: number,
  target: string,
  extraHead = '',
): Promise<{ socket: net.Socket; head: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    const onData = (c: Buffer) => {
      buf += c.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.removeListener('data', onData);
      const head = buf.slice(0, end);
      if (!/^HTTP\/1\.1 2\d\d/.test(head)) {
        socket.destroy();
        reject(new Error(`proxy answered: ${head}`));
        return;
      }
      resolve({ socket, head });
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(
      `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\nProxy-Connection: keep-alive\r\n${extraHead}\r\n`,
    );
  });
}

/** TLS over a CONNECT tunnel, trusting only `ca`; `servername` undefined sends no SNI. */
export async function tlsThroughTunnel(
  port: number,
  target: string,
  ca: string,
  servername: string | undefined,
): Promise<tls.TLSSocket> {
  const { socket } = await openTunnel(port, target);
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      socket,
      ca,
      ALPNProtocols: ['http/1.1'],
      ...(servername === undefined ? { checkServerIdentity: () => undefined } : { servername }),
    });
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
}

/** Sends raw bytes to the proxy and collects everything until it closes (or `ms` passes). */
export function rawExchange(port: number, bytes: string | Buffer, ms = 3000): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let out = '';
    const timer = setTimeout(() => socket.destroy(), ms);
    socket.on('data', (c: Buffer) => (out += c.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
    socket.write(bytes);
  });
}

export const hasCurl = spawnSync('curl', ['--version']).status === 0;

export function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', '20', ...args], (err, stdout, stderr) => {
      const code =
        err === null
          ? 0
          : typeof (err as { code?: unknown }).code === 'number'
            ? (err as { code: number }).code
            : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** An undici Client that sends all its requests over one already-open socket (counting connects).
 * undici needs its connect callback called asynchronously. */
export function clientOver(
  origin: string,
  socket: tls.TLSSocket | net.Socket,
): Client & { connects(): number } {
  let n = 0;
  const client = new Client(origin, {
    connect: (_opts, cb) => {
      n += 1;
      setImmediate(() => cb(null, socket));
    },
  }) as Client & { connects(): number };
  client.connects = () => n;
  return client;
}
