import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertificateAuthority, LeafCache } from '../../src/certs/index.js';
import { ContextPool } from '../../src/certs/context-pool.js';

let dir: string;
let ca: CertificateAuthority;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'celgate-pool-'));
  ca = await CertificateAuthority.loadOrCreate(dir);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Serves one handshake with `ctx` and returns the certificate the client saw. */
async function presented(
  ctx: import('node:tls').SecureContext,
  servername: string,
): Promise<{ san: string | undefined; authorized: boolean }> {
  const server = createServer({ SNICallback: (_n, cb) => cb(null, ctx) }, (s) => s.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  try {
    return await new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port, servername, ca: ca.certPem });
      s.once('secureConnect', () => {
        resolve({ san: s.getPeerCertificate().subjectaltname, authorized: s.authorized });
        s.destroy();
      });
      s.once('error', reject);
    });
  } finally {
    server.close();
  }
}

describe('ContextPool', () => {
  it('hands out keyed contexts that present the certificate installed at take()', async () => {
    const cache = new LeafCache(ca, { contextPool: 0 });
    const a = await cache.leaf('pool-a.test');
    const b = await cache.leaf('pool-b.test');
    const pool = new ContextPool(a.key, 2);
    const ctxA = pool.take(a.cert);
    const ctxB = pool.take(b.cert);
    expect(ctxA).not.toBe(ctxB);
    expect(await presented(ctxA, 'pool-a.test')).toEqual({
      san: 'DNS:pool-a.test',
      authorized: true,
    });
    expect(await presented(ctxB, 'pool-b.test')).toEqual({
      san: 'DNS:pool-b.test',
      authorized: true,
    });
    expect(pool.stats().pooled + pool.stats().built).toBe(2);
    pool.close();
  });

  it('builds contexts in full when the pool is empty or disabled, and they work the same', async () => {
    const cache = new LeafCache(ca, { contextPool: 0 });
    const leaf = await cache.leaf('nopool.test');
    const ctx = await cache.secureContext('nopool.test');
    expect(cache.stats()).toMatchObject({ contexts_pooled: 0, contexts_built: 1 });
    expect(await presented(ctx, 'nopool.test')).toEqual({
      san: 'DNS:nopool.test',
      authorized: true,
    });
    expect(new X509Certificate(leaf.cert).subjectAltName).toBe('DNS:nopool.test');
  });

  it('refills in the background so later first contacts use pooled contexts', async () => {
    const cache = new LeafCache(ca, { contextPool: 4 });
    for (let i = 0; i < 200 && cache.stats().contexts_ready < 3; i++)
      await new Promise((r) => setTimeout(r, 25)); // let the refill run
    for (let i = 0; i < 3; i++) await cache.secureContext(`refill-${i}.test`);
    expect(cache.stats().contexts_pooled).toBe(3);
    cache.close();
  });
});

describe('LeafCache under a burst of new hosts', () => {
  it('mints every host exactly once when many arrive at the same moment', async () => {
    const cache = new LeafCache(ca);
    const hosts = Array.from({ length: 40 }, (_, i) => `burst-${i}.test`);
    const leaves = await Promise.all([...hosts, ...hosts].map((h) => cache.leaf(h)));
    expect(cache.stats().minted).toBe(40);
    for (const [i, leaf] of leaves.slice(0, 40).entries()) {
      expect(new X509Certificate(leaf.cert).subjectAltName).toBe(`DNS:${hosts[i]}`);
      expect(leaves[i + 40]).toBe(leaf);
    }
    cache.close();
  });

  it('refuses new hosts with E_LIMIT while too many mints are waiting, then recovers', async () => {
    const cache = new LeafCache(ca, { maxPendingMints: 3 });
    const outcomes = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => cache.leaf(`flood-${i}.test`)),
    );
    const refused = outcomes.filter((o) => o.status === 'rejected');
    expect(refused.length).toBeGreaterThan(0);
    for (const r of refused)
      expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'E_LIMIT' });
    expect(outcomes.filter((o) => o.status === 'fulfilled').length).toBe(cache.stats().minted);
    expect(cache.size).toBe(cache.stats().minted); // refused hosts are not cached
    const later = await cache.leaf('flood-0-later.test');
    expect(new X509Certificate(later.cert).subjectAltName).toBe('DNS:flood-0-later.test');
    cache.close();
  });
});
