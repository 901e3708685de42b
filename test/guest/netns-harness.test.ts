import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execOnGuest } from '../../src/transport/exec/client.js';
import { FrameReader, frame } from '../../src/transport/dns/framing.js';
import { listenVsock, type GuestMeta, type VsockListener } from '../../src/transport/vsock.js';
import { GuestNamespace, netnsAvailability } from '../support/netns.js';

const avail = netnsAvailability();

describe.skipIf(!avail.ok)(
  `guest namespace harness${avail.ok ? '' : ` (skipped: ${avail.reason})`}`,
  () => {
    let dir: string;
    let guest: GuestNamespace;
    const listeners: VsockListener[] = [];
    const httpMeta: GuestMeta[] = [];
    const dnsQueries: string[] = [];

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'celgate-netns-'));
      const udsBase = join(dir, 'vsock');
      // A stand-in host: port 5002 answers any bytes with a fixed HTTP response, 5007 answers NXDOMAIN.
      listeners.push(
        await listenVsock({ mode: 'uds', udsBase, port: 5002 }, ({ socket, meta, head }) => {
          httpMeta.push(meta);
          const answer = () =>
            socket.end(
              'HTTP/1.1 200 OK\r\ncontent-length: 12\r\nconnection: close\r\n\r\nfrom-host-ok',
            );
          if (head.length > 0) answer();
          else socket.once('data', answer);
          socket.resume();
        }),
        await listenVsock({ mode: 'uds', udsBase, port: 5007 }, ({ socket, head }) => {
          const reader = new FrameReader();
          const onBytes = (b: Buffer) => {
            for (const msg of reader.push(b).frames) {
              const q = dnsPacket.decode(msg);
              dnsQueries.push(q.questions?.[0]?.name ?? '');
              socket.write(
                frame(
                  dnsPacket.encode({
                    id: q.id,
                    type: 'response',
                    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | 3,
                    questions: q.questions,
                  }),
                ),
              );
            }
          };
          if (head.length > 0) onBytes(head);
          socket.on('data', onBytes);
          socket.resume();
        }),
      );
      guest = await GuestNamespace.create({
        udsBase,
        workDir: join(dir, 'guest'),
        bridgeArgs: ['--identify-processes'],
      });
    });

    afterAll(async () => {
      await guest?.destroy();
      for (const l of listeners) await l.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it('has only loopback and an inside-only veth pair', async () => {
      const links = await guest.run(['ip', '-o', 'link', 'show']);
      const names = links.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split(':')[1]!.trim().split('@')[0]);
      expect(names.sort()).toEqual(['cgv0', 'cgv1', 'lo']);
    });

    it('redirects TCP 80 to the bridge, which relays it to the host vsock port', async () => {
      const r = await guest.run(['curl', '-sS', '--max-time', '5', 'http://203.0.113.7/anything']);
      expect(r.stdout).toBe('from-host-ok');
      // --identify-processes: the bridge found curl in /proc and said so in the META preamble.
      expect(httpMeta.at(-1)).toMatchObject({ process_name: 'curl' });
    });

    it('cannot reach anything on the host except through the bridge', async () => {
      // TCP 8080 is not redirected: with no route out it must fail, never reach a host service.
      const r = await guest.run(['curl', '-sS', '--max-time', '2', 'http://203.0.113.7:8080/'], {
        timeoutMs: 10_000,
      });
      expect(r.code).not.toBe(0);
    });

    it('resolves through the DNS stub: getaddrinfo sees the host answer (NXDOMAIN)', async () => {
      const r = await guest.run([
        process.execPath,
        '-e',
        "require('dns').lookup('probe.celgate.test',(e,a)=>{console.log(e?e.code:a)})",
      ]);
      expect(r.stdout.trim()).toBe('ENOTFOUND');
      expect(dnsQueries).toContain('probe.celgate.test');
    });

    it('runs exec requests from the host inside the namespace via the hybrid-vsock base socket', async () => {
      const r = await execOnGuest(
        { mode: 'uds', udsBase: join(dir, 'vsock'), port: 5000 },
        {
          v: 1,
          id: 'x1',
          argv: ['cat', '/etc/resolv.conf'],
          cwd: '/',
          env: {},
          timeout_ms: 5000,
          stdin: '',
        },
      );
      expect('error' in r).toBe(false);
      if (!('error' in r))
        expect(Buffer.from(r.stdout, 'base64').toString()).toContain('nameserver 127.0.0.1');
    });

    it('removes the namespace on destroy', async () => {
      const extra = await GuestNamespace.create({
        udsBase: join(dir, 'vsock2'),
        workDir: join(dir, 'guest2'),
        bridgeArgs: ['--no-exec'],
      });
      expect(execFileSync('ip', ['netns', 'list']).toString()).toContain(extra.name);
      await extra.destroy();
      expect(execFileSync('ip', ['netns', 'list']).toString()).not.toContain(extra.name);
    });
  },
);
