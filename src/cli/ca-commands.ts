/**
 * `celgate ca …`: show the local interception CA and how to trust it. `ca export` loads (or, on a
 * fresh clone, generates) the CA in the certs directory and prints its PEM on stdout, with the trust
 * lines on stderr so `celgate ca export > ca.pem` captures only the certificate. Composition only:
 * all certificate logic lives in src/certs.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { CertificateAuthority, LeafCache, trustInstructions } from '../certs/index.js';
import { CelgateError } from '../errors.js';
import { loadConfig } from './config.js';

/** Where the CA lives unless told otherwise (relative to the working directory, like `data/`). */
export const DEFAULT_CERTS_DIR = 'certs';

interface DirOptions {
  dir?: string;
  config?: string;
}

/** --dir wins; else the config file's http.ca_dir; else certs/ (what `celgate start` uses). */
function caDir(opts: DirOptions): string {
  if (opts.dir !== undefined) return resolve(opts.dir);
  if (opts.config !== undefined) return resolve(loadConfig(opts.config).http.ca_dir);
  return resolve(DEFAULT_CERTS_DIR);
}

export function registerCaCommands(program: Command): void {
  const ca = program
    .command('ca')
    .description('the local interception CA: export it, show how to trust it');
  ca.command('export')
    .description('print the CA certificate (PEM, stdout) and the lines to trust it (stderr)')
    .option(
      '--dir <path>',
      `certificate directory (default: http.ca_dir of --config, else ${DEFAULT_CERTS_DIR})`,
    )
    .option('-c, --config <file>', 'gateway config file to read http.ca_dir from')
    .option('--pem-only', 'print only the PEM, no trust lines')
    .action(async (opts: DirOptions & { pemOnly?: boolean }) => {
      try {
        const authority = await CertificateAuthority.loadOrCreate(caDir(opts));
        process.stdout.write(authority.certPem);
        if (opts.pemOnly !== true) {
          const lines = [
            `# CA certificate: ${authority.certPath} (valid until ${authority.x509.validTo})`,
            `# SHA-256 fingerprint: ${authority.x509.fingerprint256}`,
            ...trustInstructions(authority.certPath),
          ];
          process.stderr.write(`${lines.join('\n')}\n`);
        }
      } catch (error) {
        const message =
          error instanceof CelgateError ? `${error.code}: ${error.message}` : String(error);
        process.stderr.write(`celgate ca export: ${message}\n`);
        process.exitCode = 1;
      }
    });
  ca.command('path')
    .description('print the path of the CA certificate file (generating the CA if needed)')
    .option(
      '--dir <path>',
      `certificate directory (default: http.ca_dir of --config, else ${DEFAULT_CERTS_DIR})`,
    )
    .option('-c, --config <file>', 'gateway config file to read http.ca_dir from')
    .action(async (opts: DirOptions) => {
      try {
        const authority = await CertificateAuthority.loadOrCreate(caDir(opts));
        process.stdout.write(`${authority.certPath}\n`);
      } catch (error) {
        const message =
          error instanceof CelgateError ? `${error.code}: ${error.message}` : String(error);
        process.stderr.write(`celgate ca path: ${message}\n`);
        process.exitCode = 1;
      }
    });
}

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
