/**
 * LeafCache.contextFor: a host's first contact is served from one shared context whose certificate
 * is reloaded per connection, right before the TLS socket is created. Concurrent first contacts
 * to many hosts must each still present their own leaf; a host contacted again gets a context of
 * its own.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CertificateAuthority,
  DEDICATED_AFTER_CONTACTS,
  LeafCache,
} from '../../src/certs/index.js';
import { parseClientHello } from '../../src/transport/http/clienthello.js';

let dir: string;
let ca: CertificateAuthority;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'celgate-shared-ctx-'));
  ca = await CertificateAuthority.loadOrCreate(dir);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A TLS server the way the gateway builds one: read the ClientHello, then contextFor(sni). */
async function gatewayLikeServer(cache: LeafCache): Promise<{ port: number; close(): void }> {
  const server = net.createServer((raw) => {
    raw.on('error', () => {});
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const hello = parseClientHello(head);
      if (hello.status === 'need_more') return;
      raw.removeListener('data', onData);
      raw.pause();
      if (hello.status !== 'ok' || hello.sni === null) return raw.destroy();
      void cache.contextFor(hello.sni).then((contextNow) => {
        raw.unshift(head);
        const s = new tls.TLSSocket(raw, { isServer: true, secureContext: contextNow() });
        s.on('error', () => {});
        s.once('secure', () => s.end('hello'));
      });
    };
    raw.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

function fetchLeaf(port: number, servername: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername, ca: ca.certPem }, () => {
      const san = s.getPeerCertificate().subjectaltname ?? '';
      s.destroy();
      resolve(san);
    });
    s.on('error', reject);
  });
}

describe('LeafCache.contextFor (shared context for first contacts)', () => {
  it('gives 24 concurrent first contacts to distinct hosts each their own leaf', async () => {
    const cache = new LeafCache(ca);
    const srv = await gatewayLikeServer(cache);
    try {
      const hosts = Array.from({ length: 24 }, (_, i) => `h${i}.shared.test`);
      const sans = await Promise.all(hosts.map((h) => fetchLeaf(srv.port, h)));
      expect(sans).toEqual(hosts.map((h) => `DNS:${h}`));
      // Every one of them came from the shared context: no context was built per host.
      expect(cache.stats().contexts_built).toBe(0);
    } finally {
      srv.close();
      cache.close();
    }
  });

  it('gives a host contacted again a context of its own, and keeps serving the right leaf', async () => {
    const cache = new LeafCache(ca);
    const srv = await gatewayLikeServer(cache);
    try {
      const seen: tls.SecureContext[] = [];
      for (let i = 0; i < DEDICATED_AFTER_CONTACTS + 2; i++) {
        const take = await cache.contextFor('again.shared.test');
        seen.push(take());
        // Interleave another host's first contact, which reloads the shared context.
        (await cache.contextFor(`other-${i}.shared.test`))();
      }
      const dedicated = seen[DEDICATED_AFTER_CONTACTS - 1]!;
      expect(seen[0]).not.toBe(dedicated);
      expect(seen.slice(DEDICATED_AFTER_CONTACTS - 1).every((c) => c === dedicated)).toBe(true);
      for (let i = 0; i < 3; i++)
        expect(await fetchLeaf(srv.port, 'again.shared.test')).toBe('DNS:again.shared.test');
      expect(await fetchLeaf(srv.port, 'fresh.shared.test')).toBe('DNS:fresh.shared.test');
    } finally {
      srv.close();
      cache.close();
    }
  });
});
