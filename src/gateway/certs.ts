/** The interception certificates the gateway loads at start, and the lines it prints once ready. */
import { resolve } from 'node:path';
import { CertificateAuthority, LeafCache } from '../certs/index.js';

/** The interception CA and the one leaf cache shared by the vsock HTTP service and the proxy. */
export async function loadInterceptionCerts(
  caDir: string,
): Promise<{ ca: CertificateAuthority; certs: LeafCache }> {
  const ca = await CertificateAuthority.loadOrCreate(resolve(caDir));
  return { ca, certs: new LeafCache(ca) };
}

/**
 * The three things a user needs after `celgate start` (printed to stderr, so stdout stays JSON
 * log lines): how to trust the CA, where the explicit proxy listens, where the ledger is.
 */
export function startupLines(o: {
  caCertPath: string | null;
  proxy: string | null;
  sessionDb: string;
}): string[] {
  const trust =
    o.caCertPath === null
      ? 'celgate: TLS interception CA not loaded'
      : `celgate: trust the CA:  export NODE_EXTRA_CA_CERTS=${o.caCertPath} SSL_CERT_FILE=${o.caCertPath} REQUESTS_CA_BUNDLE=${o.caCertPath}   (more: celgate ca export)`;
  const proxy =
    o.proxy === null
      ? 'celgate: explicit proxy off (set http.proxy to enable)'
      : `celgate: explicit proxy: export HTTPS_PROXY=http://${o.proxy} HTTP_PROXY=http://${o.proxy}`;
  return [trust, proxy, `celgate: ledger: ${o.sessionDb}`];
}
