/**
 * `celgate ca …`: show the local interception CA and how to trust it. `ca export` loads (or, on a
 * fresh clone, generates) the CA in the certs directory and prints its PEM on stdout, with the trust
 * lines on stderr so `celgate ca export > ca.pem` captures only the certificate. Composition only:
 * all certificate logic lives in src/certs.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { CertificateAuthority, trustInstructions } from '../certs/index.js';
import { CelgateError } from '../errors.js';

/** Where the CA lives unless told otherwise (relative to the working directory, like `data/`). */
export const DEFAULT_CERTS_DIR = 'certs';

export function registerCaCommands(program: Command): void {
  const ca = program.command('ca').description('the local interception CA: export it, show how to trust it');
  ca.command('export')
    .description('print the CA certificate (PEM, stdout) and the lines to trust it (stderr)')
    .option('--dir <path>', 'certificate directory', DEFAULT_CERTS_DIR)
    .option('--pem-only', 'print only the PEM, no trust lines')
    .action(async (opts: { dir: string; pemOnly?: boolean }) => {
      try {
        const authority = await CertificateAuthority.loadOrCreate(resolve(opts.dir));
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
        const message = error instanceof CelgateError ? `${error.code}: ${error.message}` : String(error);
        process.stderr.write(`celgate ca export: ${message}\n`);
        process.exitCode = 1;
      }
    });
  ca.command('path')
    .description('print the path of the CA certificate file (generating the CA if needed)')
    .option('--dir <path>', 'certificate directory', DEFAULT_CERTS_DIR)
    .action(async (opts: { dir: string }) => {
      try {
        const authority = await CertificateAuthority.loadOrCreate(resolve(opts.dir));
        process.stdout.write(`${authority.certPath}\n`);
      } catch (error) {
        const message = error instanceof CelgateError ? `${error.code}: ${error.message}` : String(error);
        process.stderr.write(`celgate ca path: ${message}\n`);
        process.exitCode = 1;
      }
    });
}
