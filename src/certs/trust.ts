/**
 * The words a user needs to trust the celgate CA: environment variables for Node, OpenSSL-based
 * tools and Python requests, and the Debian/Ubuntu system store. Pure text; no I/O.
 */

/** Lines telling a user how to trust the CA certificate stored at `certPath` (absolute path). */
export function trustInstructions(certPath: string): string[] {
  const q = shellQuote(certPath);
  return [
    '# Trust the celgate CA in the shell that runs your agent:',
    `export NODE_EXTRA_CA_CERTS=${q}`,
    `export SSL_CERT_FILE=${q}`,
    `export REQUESTS_CA_BUNDLE=${q}`,
    '# Or system-wide (Debian/Ubuntu):',
    `sudo cp ${q} /usr/local/share/ca-certificates/celgate.crt && sudo update-ca-certificates`,
  ];
}

function shellQuote(value: string): string {
  return /^[A-Za-z0-9_./:@%+=-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}
