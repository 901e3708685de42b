/** src/transport/listen.ts: the mechanics every listener shares. */
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  listenOn,
  removeStaleSocket,
  tcpAddress,
  trackSockets,
} from '../../src/transport/listen.js';

const dir = mkdtempSync(join(tmpdir(), 'celgate-listen-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('transport/listen', () => {
  it('close() ends open connections, including added ones, and resolves once the server is closed', async () => {
    const server = net.createServer(() => {});
    const tracked = trackSockets(server);
    await listenOn(server, 0, '127.0.0.1');
    expect(tcpAddress(server)).toMatch(/^127\.0\.0\.1:\d+$/);
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    await new Promise((r) => client.once('connect', r));
    const extra = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    await new Promise((r) => extra.once('connect', r));
    tracked.add(extra);
    const clientClosed = new Promise((r) => client.once('close', r));
    await tracked.close(); // would hang while the accepted sockets stayed open
    await clientClosed;
    expect(extra.destroyed).toBe(true);
  });

  it('removes a stale Unix socket, refuses to remove anything else, and rejects a failed listen', async () => {
    const path = join(dir, 'stale.sock');
    const old = net.createServer();
    await listenOn(old, path);
    old.close(); // on Linux the socket file stays behind
    await new Promise((r) => setTimeout(r, 10));
    const fresh = net.createServer();
    removeStaleSocket(path);
    await listenOn(fresh, path);
    fresh.close();
    const file = join(dir, 'not-a-socket');
    writeFileSync(file, 'x');
    expect(() => removeStaleSocket(file)).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
    expect(existsSync(file)).toBe(true);
    await expect(
      listenOn(net.createServer(), join(dir, 'missing-dir', 'x.sock')),
    ).rejects.toThrow();
  });
});
