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
import { loadConfig } from '../gateway/config.js';

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
