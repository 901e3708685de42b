/**
 * The local certificate authority: generated on first start into a directory (default `certs/`),
 * loaded on every later start. Owns the two files `ca.key.pem` (owner-only, 0600) and `ca.cert.pem`.
 *
 * The CA key is RSA-2048 generated with `node:crypto` on the libuv thread pool (forge's pure-JS
 * keygen takes seconds and blocks); the certificate is laid out with node-forge and signed natively
 * (x509.ts). This module never mints leaves (leaf-cache.ts) and never listens on a socket.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPair,
  randomBytes,
  X509Certificate,
  type KeyObject,
} from 'node:crypto';
import { chmod, link, mkdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CelgateError } from '../errors.js';
import { buildCaCertificate, derToPem, keyIdOf, subjectNameOf, type Issuer } from './x509.js';

export const CA_KEY_FILE = 'ca.key.pem';
export const CA_CERT_FILE = 'ca.cert.pem';
export const CA_COMMON_NAME = 'celgate local interception CA';
export const CA_RSA_BITS = 2048;
/** Ten years: the CA is trusted once by hand, so it should outlive the projects that trust it. */
export const CA_VALIDITY_MS = 10 * 365 * 24 * 3600 * 1000;
/** Backdate notBefore so a guest whose clock runs a little behind still accepts the CA. */
export const CLOCK_SKEW_MS = 24 * 3600 * 1000;

const generateKeyPairAsync = promisify(generateKeyPair);

function isErrno(error: unknown, code: string): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === code;
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return undefined;
    throw new CelgateError('E_CONFIG', `cannot read ${path}`, { cause: error });
  }
}

/** Writes `content` to `path` only if it does not exist yet (atomic: temp file + hard link). Returns
 * false when another process won the race (the caller then loads theirs). */
async function createExclusive(path: string, content: string, mode: number): Promise<boolean> {
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, content, { mode, flag: 'wx' });
  } catch (error) {
    throw new CelgateError('E_CONFIG', `cannot write ${tmp}`, { cause: error });
  }
  await chmod(tmp, mode);
  try {
    await link(tmp, path);
    return true;
  } catch (error) {
    if (isErrno(error, 'EEXIST')) return false;
    throw new CelgateError('E_CONFIG', `cannot create ${path}`, { cause: error });
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

async function loadOrCreateKey(keyPath: string): Promise<KeyObject> {
  let pem = await readIfExists(keyPath);
  if (pem === undefined) {
    const { privateKey } = await generateKeyPairAsync('rsa', { modulusLength: CA_RSA_BITS });
    const created = await createExclusive(
      keyPath,
      privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
      0o600,
    );
    if (created) return privateKey;
    pem = await readFile(keyPath, 'utf8');
  }
  const info = await stat(keyPath);
  if ((info.mode & 0o077) !== 0) {
    throw new CelgateError(
      'E_CONFIG',
      `${keyPath} is readable by group or others (mode ${(info.mode & 0o777).toString(8)}); run: chmod 600 ${keyPath}`,
    );
  }
  try {
    return createPrivateKey(pem);
  } catch (error) {
    throw new CelgateError('E_CONFIG', `${keyPath} does not hold a private key`, { cause: error });
  }
}

export class CertificateAuthority {
  /** The CA certificate, PEM: what users add to their trust store. */
  readonly certPem: string;
  readonly certDer: Buffer;
  readonly certPath: string;
  readonly keyPath: string;
  readonly x509: X509Certificate;
  readonly publicKey: KeyObject;
  /** What the leaf minter needs: private key, subject name, key id. */
  readonly issuer: Issuer;

  private constructor(dir: string, key: KeyObject, certDer: Buffer) {
    this.certPath = join(dir, CA_CERT_FILE);
    this.keyPath = join(dir, CA_KEY_FILE);
    this.certDer = certDer;
    this.certPem = derToPem(certDer);
    this.x509 = new X509Certificate(certDer);
    this.publicKey = createPublicKey(key);
    this.issuer = { key, subjectName: subjectNameOf(certDer), keyId: keyIdOf(this.publicKey) };
  }

  /** When the CA certificate stops being valid (leaves never outlive it). */
  get notAfter(): Date {
    return new Date(this.x509.validTo);
  }

  /**
   * Loads the CA from `dir`, generating key and certificate on first use. Refuses (E_CONFIG) a key
   * readable by others, a certificate that does not belong to the key, or an expired certificate —
   * it never overwrites an existing CA.
   */
  static async loadOrCreate(dir: string): Promise<CertificateAuthority> {
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (error) {
      throw new CelgateError('E_CONFIG', `cannot create the CA directory ${dir}`, { cause: error });
    }
    const keyPath = join(dir, CA_KEY_FILE);
    const certPath = join(dir, CA_CERT_FILE);
    const key = await loadOrCreateKey(keyPath);
    let certPem = await readIfExists(certPath);
    if (certPem === undefined) {
      const now = Date.now();
      const der = await buildCaCertificate(key, CA_COMMON_NAME, {
        notBefore: new Date(now - CLOCK_SKEW_MS),
        notAfter: new Date(now + CA_VALIDITY_MS),
      });
      const created = await createExclusive(certPath, derToPem(der), 0o644);
      if (created) return new CertificateAuthority(dir, key, der);
      certPem = await readFile(certPath, 'utf8');
    }
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(certPem);
    } catch (error) {
      throw new CelgateError('E_CONFIG', `${certPath} is not a PEM certificate`, { cause: error });
    }
    if (!cert.checkPrivateKey(key)) {
      throw new CelgateError('E_CONFIG', `${certPath} does not belong to the key in ${keyPath}`);
    }
    if (Date.parse(cert.validTo) <= Date.now()) {
      throw new CelgateError(
        'E_CONFIG',
        `the CA certificate ${certPath} expired on ${cert.validTo}; move ${dir} away to generate a new CA`,
      );
    }
    return new CertificateAuthority(dir, key, cert.raw);
  }
}
