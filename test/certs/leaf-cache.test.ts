import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertificateAuthority, LeafCache } from '../../src/certs/index.js';

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;

let dir: string;
let ca: CertificateAuthority;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'celgate-leaf-'));
  ca = await CertificateAuthority.loadOrCreate(dir);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('LeafCache minting', () => {
  it.each([
    ['api.example.com', 'DNS:api.example.com', 'CN=api.example.com'],
    ['127.0.0.1', 'IP Address:127.0.0.1', 'CN=127.0.0.1'],
    ['[::1]', 'IP Address:0:0:0:0:0:0:0:1', 'CN=::1'],
  ])('mints a leaf for %s with SAN %s, issued and signed by the CA', async (host, san, cn) => {
    const cache = new LeafCache(ca);
    const { cert, key } = await cache.pem(host);
    const x = new X509Certificate(cert);
    expect(x.subjectAltName).toBe(san);
    expect(x.subject).toBe(cn);
    expect(x.ca).toBe(false);
    expect(x.verify(ca.publicKey)).toBe(true);
    expect(x.checkIssued(ca.x509)).toBe(true);
    expect(x.checkPrivateKey((await import('node:crypto')).createPrivateKey(key))).toBe(true);
    expect(
      x.checkHost(host.replace(/^\[|\]$/g, '')) ?? x.checkIP(host.replace(/^\[|\]$/g, '')),
    ).toBeTruthy();
  });

  it('gives every leaf the same key but its own serial number', async () => {
    const cache = new LeafCache(ca);
    const a = await cache.leaf('a.test');
    const b = await cache.leaf('b.test');
    expect(a.key).toBe(b.key);
    expect(new X509Certificate(a.cert).serialNumber).not.toBe(
      new X509Certificate(b.cert).serialNumber,
    );
  });

  it.skipIf(!hasOpenssl)(
    'produces chains that `openssl verify` accepts for names and IPs (needs openssl)',
    async () => {
      const cache = new LeafCache(ca);
      const name = join(dir, 'name.pem');
      const ip = join(dir, 'ip.pem');
      await writeFile(name, (await cache.pem('www.example.org')).cert);
      await writeFile(ip, (await cache.pem('10.1.2.3')).cert);
      const args = ['verify', '-x509_strict', '-purpose', 'sslserver', '-CAfile', ca.certPath];
      expect(
        execFileSync('openssl', [...args, '-verify_hostname', 'www.example.org', name], {
          encoding: 'utf8',
        }),
      ).toContain('OK');
      expect(
        execFileSync('openssl', [...args, '-verify_ip', '10.1.2.3', ip], { encoding: 'utf8' }),
      ).toContain('OK');
      const wrong = spawnSync('openssl', [...args, '-verify_hostname', 'evil.example', name], {
        encoding: 'utf8',
      });
      expect(wrong.status).not.toBe(0);
    },
  );

  it('mints once when many first contacts for one host arrive together', async () => {
    const cache = new LeafCache(ca);
    const leaves = await Promise.all(Array.from({ length: 50 }, () => cache.leaf('busy.example')));
    expect(new Set(leaves.map((l) => l.cert)).size).toBe(1);
    expect(cache.stats().minted).toBe(1);
    const contexts = await Promise.all(
      Array.from({ length: 10 }, () => cache.secureContext('BUSY.example.')),
    );
    expect(new Set(contexts).size).toBe(1);
    expect(cache.stats().minted).toBe(1);
  });

  it('keeps at most `max` hosts, dropping the least recently used', async () => {
    const cache = new LeafCache(ca, { max: 3 });
    for (const host of ['h1.test', 'h2.test', 'h3.test']) await cache.leaf(host);
    await cache.leaf('h1.test'); // h1 is now the most recent; h2 is the oldest
    await cache.leaf('h4.test');
    expect(cache.size).toBe(3);
    expect(cache.stats()).toMatchObject({ minted: 4, evicted: 1 });
    await cache.leaf('h1.test');
    expect(cache.stats().minted).toBe(4); // still cached
    await cache.leaf('h2.test');
    expect(cache.stats().minted).toBe(5); // was evicted, minted again
  });

  it('re-mints a leaf before it expires and serves it from then on', async () => {
    let now = Date.now();
    const hour = 3600_000;
    const cache = new LeafCache(ca, {
      validityMs: 10 * hour,
      renewBeforeMs: 2 * hour,
      now: () => now,
    });
    const first = await cache.leaf('renew.test');
    expect(new Date(new X509Certificate(first.cert).validTo).getTime()).toBeLessThanOrEqual(
      now + 10 * hour,
    );
    now += 7 * hour;
    expect((await cache.leaf('renew.test')).cert).toBe(first.cert);
    now += 2 * hour; // inside the renewal window
    const second = await cache.leaf('renew.test');
    expect(second.cert).not.toBe(first.cert);
    expect(second.notAfter).toBeGreaterThan(first.notAfter);
    expect(cache.stats().minted).toBe(2);
  });

  it('serves a fresh TLS context once the leaf was renewed', async () => {
    let now = Date.now();
    const hour = 3600_000;
    const cache = new LeafCache(ca, {
      validityMs: 10 * hour,
      renewBeforeMs: 2 * hour,
      now: () => now,
    });
    const before = await cache.secureContext('ctx-renew.test');
    expect(await cache.secureContext('ctx-renew.test')).toBe(before);
    now += 9 * hour;
    const after = await cache.secureContext('ctx-renew.test');
    expect(after).not.toBe(before);
    expect(cache.stats().minted).toBe(2);
    cache.close();
  });

  it('refuses an invalid host without minting or caching anything', async () => {
    const cache = new LeafCache(ca);
    await expect(cache.pem('bad host')).rejects.toMatchObject({ code: 'E_PARSE' });
    await expect(cache.secureContext('x'.repeat(5000))).rejects.toMatchObject({ code: 'E_LIMIT' });
    expect(cache.stats()).toMatchObject({ size: 0, minted: 0 });
  });

  it('rejects a non-positive max', () => {
    expect(() => new LeafCache(ca, { max: 0 })).toThrow(
      expect.objectContaining({ code: 'E_CONFIG' }),
    );
  });
});

describe('LeafCache.secureContext in a real TLS handshake', () => {
  it('serves the SNI host its own leaf, and a client trusting only the CA accepts it', async () => {
    const cache = new LeafCache(ca);
    const server = createServer(
      {
        SNICallback: (servername, cb) => {
          cache.secureContext(servername).then(
            (ctx) => cb(null, ctx),
            (error: Error) => cb(error),
          );
        },
      },
      (socket) => socket.end('hello'),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    try {
      for (const servername of ['one.example', 'two.example']) {
        const socket: TLSSocket = connect({ host: '127.0.0.1', port, servername, ca: ca.certPem });
        const text = await new Promise<string>((resolve, reject) => {
          let data = '';
          socket.on('data', (chunk: Buffer) => (data += chunk.toString()));
          socket.on('end', () => resolve(data));
          socket.on('error', reject);
        });
        expect(text).toBe('hello');
        expect(socket.getPeerCertificate().subjectaltname).toBe(`DNS:${servername}`);
      }
    } finally {
      server.close();
    }
  });
});
