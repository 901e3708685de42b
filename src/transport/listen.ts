/**
 * What every transport listener (host ports, the DNS and MCP listeners, the guest bridge's
 * forwarder, stub and relay) does the same way: remember its open sockets so that closing it also
 * ends the connections that would otherwise keep it open, clear a stale Unix socket file before
 * binding, wait for `listen` with its error, and format a TCP address.
 *
 * Owns: those mechanics. Must not: read or write any protocol bytes.
 */
import { lstatSync, unlinkSync } from 'node:fs';
import type net from 'node:net';
import { CelgateError } from '../errors.js';

export interface TrackedSockets {
  /** Tracks a socket the server did not accept itself (e.g. a relay's host-side connection). */
  add(socket: net.Socket): void;
  /** Stops listening and destroys every tracked socket; resolves when the server has closed. */
  close(): Promise<void>;
}

/** Tracks every connection `server` accepts from now on (and any `add`ed), until it closes. */
export function trackSockets(server: net.Server): TrackedSockets {
  const sockets = new Set<net.Socket>();
  const add = (s: net.Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };
  server.on('connection', add);
  return {
    add,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}

/** Removes a leftover Unix socket at `path`; refuses (E_CONFIG) anything there that is not a socket. */
export function removeStaleSocket(path: string): void {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
    else throw new CelgateError('E_CONFIG', `${path} exists and is not a socket`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** `server.listen(...args)`, resolved when listening, rejected with the bind error. */
export function listenOn(
  server: net.Server,
  ...args: [path: string] | [port: number, host: string]
): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const done = () => {
      server.removeListener('error', reject);
      resolve();
    };
    if (args.length === 1) server.listen(args[0], done);
    else server.listen(args[0], args[1], done);
  });
}

/** `host:port` of a listening TCP server, IPv6 hosts in brackets. */
export function tcpAddress(server: net.Server): string {
  const a = server.address() as net.AddressInfo;
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}
