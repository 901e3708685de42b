/**
 * X.509 assembly: builds certificates with node-forge's ASN.1 helpers and signs them natively with
 * `node:crypto`. forge's own RSA signature is pure JavaScript (~24 ms per leaf, blocking the event
 * loop); here forge only lays out the TBSCertificate, the native signer does the arithmetic, and
 * this module assembles `Certificate ::= SEQUENCE { tbs, signatureAlgorithm, signature }` itself.
 *
 * Pure computation over keys handed in; no file or socket I/O, no caching (see leaf-cache.ts).
 */
import { createHash, createPublicKey, randomBytes, sign, type KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { CelgateError } from '../errors.js';
import type { LeafSubject } from './hostname.js';
import { MAX_COMMON_NAME_LENGTH } from './hostname.js';

const { asn1 } = forge;
type Asn1 = forge.asn1.Asn1;
/** forge exports getTBSCertificate at runtime but its type definitions omit it. */
const getTBSCertificate = (
  forge.pki as unknown as { getTBSCertificate(cert: forge.pki.Certificate): Asn1 }
).getTBSCertificate;

/** Replaces child `index` of a constructed ASN.1 node (forge types the children as read-only). */
function setChild(node: Asn1, index: number, child: Asn1): void {
  (node.value as Asn1[])[index] = child;
}

const OID_SHA256_WITH_RSA = '1.2.840.113549.1.1.11';
const OID_ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';

/** Positions of the TBSCertificate fields (version [0] is always present: we write v3). */
const TBS_SIGNATURE = 2;
const TBS_ISSUER = 3;
const TBS_SUBJECT = 5;
const TBS_SPKI = 6;

/** forge's getTBSCertificate needs *a* public key; the real SPKI node replaces this one. */
const PLACEHOLDER_KEY = forge.pki.setRsaPublicKey(
  new forge.jsbn.BigInteger('3'),
  new forge.jsbn.BigInteger('3'),
);

/** What a signer needs to know about the issuing CA. */
export interface Issuer {
  /** The CA private key (RSA or EC), used with `crypto.sign`. */
  key: KeyObject;
  /** The CA's subject Name, exactly as encoded in its certificate (becomes the leaf's issuer). */
  subjectName: Asn1;
  /** The CA's subject key identifier (raw bytes); becomes the leaf's authority key identifier. */
  keyId: Buffer;
}

export interface Validity {
  notBefore: Date;
  notAfter: Date;
}

function signatureOid(key: KeyObject): string {
  if (key.asymmetricKeyType === 'rsa') return OID_SHA256_WITH_RSA;
  if (key.asymmetricKeyType === 'ec') return OID_ECDSA_WITH_SHA256;
  throw new CelgateError('E_TLS', `unsupported CA key type ${String(key.asymmetricKeyType)}`);
}

/** AlgorithmIdentifier: RSA PKCS#1 carries NULL parameters; ECDSA carries none (RFC 5758). */
function algorithmIdentifier(oid: string): Asn1 {
  const parts: Asn1[] = [
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(oid).getBytes()),
  ];
  if (oid === OID_SHA256_WITH_RSA)
    parts.push(asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, ''));
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, parts);
}

function fromDer(der: Buffer): Asn1 {
  return asn1.fromDer(forge.util.createBuffer(der.toString('binary')));
}

function toDer(node: Asn1): Buffer {
  return Buffer.from(asn1.toDer(node).getBytes(), 'binary');
}

/** SubjectPublicKeyInfo of a public (or private) key, as forge ASN.1. */
export function spkiOf(key: KeyObject): Asn1 {
  return fromDer(spkiDer(key));
}

function spkiDer(key: KeyObject): Buffer {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  return publicKey.export({ type: 'spki', format: 'der' });
}

/** Key identifier: SHA-1 over the DER SubjectPublicKeyInfo (RFC 7093 allows any stable method). */
export function keyIdOf(key: KeyObject): Buffer {
  return createHash('sha1').update(spkiDer(key)).digest();
}

/** A positive 128-bit serial number as hex (high bit cleared so DER needs no sign byte). */
export function randomSerialHex(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  if (bytes[0] === 0) bytes[0] = 0x01;
  return bytes.toString('hex');
}

/** Native signature on the libuv thread pool (the callback form of `crypto.sign`), so the RSA
 * arithmetic never runs on the event loop. */
function signAsync(data: Buffer, key: KeyObject): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    sign('sha256', data, key, (error, signature) => {
      if (error)
        reject(new CelgateError('E_TLS', 'signing a certificate failed', { cause: error }));
      else resolve(signature);
    });
  });
}

/** Signs a TBSCertificate with the issuer key and returns the DER certificate. */
async function signTbs(tbs: Asn1, issuerKey: KeyObject, sigOid: string): Promise<Buffer> {
  setChild(tbs, TBS_SIGNATURE, algorithmIdentifier(sigOid));
  const tbsDer = toDer(tbs);
  const signature = await signAsync(tbsDer, issuerKey);
  const certificate = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    tbs,
    algorithmIdentifier(sigOid),
    asn1.create(
      asn1.Class.UNIVERSAL,
      asn1.Type.BITSTRING,
      false,
      '\x00' + signature.toString('binary'),
    ),
  ]);
  return toDer(certificate);
}

function baseCertificate(serialHex: string, validity: Validity): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.serialNumber = serialHex;
  cert.validity.notBefore = validity.notBefore;
  cert.validity.notAfter = validity.notAfter;
  cert.publicKey = PLACEHOLDER_KEY;
  return cert;
}

function keyIdExtension(name: 'subjectKeyIdentifier', keyId: Buffer): object {
  return {
    name,
    value: asn1.create(
      asn1.Class.UNIVERSAL,
      asn1.Type.OCTETSTRING,
      false,
      keyId.toString('binary'),
    ),
  };
}

/** Builds the self-signed CA certificate for `caKey` (10-year default validity set by the caller). */
export function buildCaCertificate(
  caKey: KeyObject,
  commonName: string,
  validity: Validity,
): Promise<Buffer> {
  const sigOid = signatureOid(caKey);
  const cert = baseCertificate(randomSerialHex(), validity);
  const name = [
    { name: 'commonName', value: commonName },
    { name: 'organizationName', value: 'celgate' },
  ];
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.siginfo.algorithmOid = sigOid;
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    keyIdExtension('subjectKeyIdentifier', keyIdOf(caKey)),
  ]);
  const tbs = getTBSCertificate(cert);
  setChild(tbs, TBS_SPKI, spkiOf(caKey));
  return signTbs(tbs, caKey, sigOid);
}

/** Reads the subject Name node out of a DER certificate (to use as a leaf's issuer, byte-exact). */
export function subjectNameOf(certDer: Buffer): Asn1 {
  const cert = fromDer(certDer);
  const tbs = (cert.value as Asn1[])[0];
  const subject = tbs && (tbs.value as Asn1[])[TBS_SUBJECT];
  if (subject === undefined) throw new CelgateError('E_TLS', 'CA certificate has no subject');
  return subject;
}

/**
 * Builds and signs a server leaf for one host: SAN dNSName or iPAddress, serverAuth, the shared leaf
 * public key, issued by `issuer`. Returns the DER certificate.
 */
export function buildLeafCertificate(
  issuer: Issuer,
  subject: LeafSubject,
  leafSpki: Asn1,
  leafKeyType: 'rsa' | 'ec',
  validity: Validity,
): Promise<Buffer> {
  const sigOid = signatureOid(issuer.key);
  const cert = baseCertificate(randomSerialHex(), validity);
  if (subject.name.length <= MAX_COMMON_NAME_LENGTH)
    cert.setSubject([{ name: 'commonName', value: subject.name }]);
  const altName =
    subject.kind === 'ip' ? { type: 7, ip: subject.name } : { type: 2, value: subject.name };
  cert.siginfo.algorithmOid = sigOid;
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    {
      name: 'keyUsage',
      digitalSignature: true,
      keyEncipherment: leafKeyType === 'rsa',
      critical: true,
    },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: [altName] },
    { name: 'authorityKeyIdentifier', keyIdentifier: issuer.keyId.toString('binary') },
  ]);
  const tbs = getTBSCertificate(cert);
  setChild(tbs, TBS_ISSUER, issuer.subjectName);
  setChild(tbs, TBS_SPKI, leafSpki);
  return signTbs(tbs, issuer.key, sigOid);
}

/** DER → PEM with 64-column lines. */
export function derToPem(der: Buffer, label = 'CERTIFICATE'): string {
  const b64 = der.toString('base64').replace(/.{1,64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}-----END ${label}-----\n`;
}
