import { X509Certificate } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CA_CERT_FILE, CA_KEY_FILE, CertificateAuthority } from '../../src/certs/index.js';
import { isCelgateError } from '../../src/errors.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'celgate-ca-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('CertificateAuthority.loadOrCreate', () => {
  it('generates a CA on first start with an owner-only private key', async () => {
    const caDir = join(dir, 'certs');
    const ca = await CertificateAuthority.loadOrCreate(caDir);
    expect((await stat(join(caDir, CA_KEY_FILE))).mode & 0o777).toBe(0o600);
    expect((await stat(caDir)).mode & 0o077).toBe(0);
    const pem = await readFile(join(caDir, CA_CERT_FILE), 'utf8');
    expect(pem).toBe(ca.certPem);
    const x = new X509Certificate(pem);
    expect(x.ca).toBe(true);
    expect(x.verify(x.publicKey)).toBe(true); // self-signed, natively signed signature is valid
    expect(x.subject).toContain('celgate');
  });

  it('loads the same CA on the next start instead of generating a new one', async () => {
    const first = await CertificateAuthority.loadOrCreate(dir);
    const second = await CertificateAuthority.loadOrCreate(dir);
    expect(second.x509.fingerprint256).toBe(first.x509.fingerprint256);
  });

  it('ends up with one CA when two starts race on an empty directory', async () => {
    const [a, b] = await Promise.all([
      CertificateAuthority.loadOrCreate(dir),
      CertificateAuthority.loadOrCreate(dir),
    ]);
    expect(a.x509.fingerprint256).toBe(b.x509.fingerprint256);
    const onDisk = new X509Certificate(await readFile(join(dir, CA_CERT_FILE)));
    expect(onDisk.checkPrivateKey(a.issuer.key)).toBe(true);
  });

  it('refuses a private key that group or others can read', async () => {
    await CertificateAuthority.loadOrCreate(dir);
    await chmod(join(dir, CA_KEY_FILE), 0o644);
    const error = await CertificateAuthority.loadOrCreate(dir).catch((e: unknown) => e);
    expect(isCelgateError(error, 'E_CONFIG')).toBe(true);
    expect(String((error as Error).message)).toMatch(/chmod 600/);
  });

  it('refuses a certificate that does not belong to the key, and does not overwrite it', async () => {
    const other = join(dir, 'other');
    await CertificateAuthority.loadOrCreate(dir);
    const foreign = await CertificateAuthority.loadOrCreate(other);
    await writeFile(join(dir, CA_CERT_FILE), foreign.certPem);
    const error = await CertificateAuthority.loadOrCreate(dir).catch((e: unknown) => e);
    expect(isCelgateError(error, 'E_CONFIG')).toBe(true);
    expect(await readFile(join(dir, CA_CERT_FILE), 'utf8')).toBe(foreign.certPem);
  });

  it('refuses a certificate file that is not PEM', async () => {
    await CertificateAuthority.loadOrCreate(dir);
    await writeFile(join(dir, CA_CERT_FILE), 'not a certificate');
    await expect(CertificateAuthority.loadOrCreate(dir)).rejects.toMatchObject({
      code: 'E_CONFIG',
    });
  });
});
