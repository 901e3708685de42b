import { execFile, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertificateAuthority, LeafCache } from '../../src/certs/index.js';

const hasPython = spawnSync('python3', ['-c', 'import ssl']).status === 0;

// Python 3.13 turns on VERIFY_X509_STRICT by default (it requires e.g. key identifiers and a
// critical basicConstraints on the CA); this client turns it on explicitly.
const CLIENT = `
import socket, ssl, sys
ca, port, name, ip = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
ctx.verify_flags |= ssl.VERIFY_X509_STRICT
with socket.create_connection(("127.0.0.1", port)) as raw:
    with ctx.wrap_socket(raw, server_hostname=name) as s:
        print("name-ok", s.version())
with socket.create_connection(("127.0.0.1", port)) as raw:
    with ctx.wrap_socket(raw, server_hostname=ip) as s:
        print("ip-ok")
`;

let dir: string;
let ca: CertificateAuthority;
let server: Server;
let port: number;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'celgate-py-'));
  ca = await CertificateAuthority.loadOrCreate(dir);
  const cache = new LeafCache(ca);
  // Python sends no SNI for an IP literal: the default context then serves the IP leaf.
  server = createServer(
    {
      ...(await cache.pem('127.0.0.1')),
      SNICallback: (n, cb) =>
        void void cache.secureContext(n).then(
          (c) => cb(null, c),
          (e: Error) => cb(e),
        ),
    },
    (s) => s.end(),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
});
afterAll(async () => {
  server?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('leaves verified by a strict third-party TLS client', () => {
  it.skipIf(!hasPython)(
    'Python ssl with VERIFY_X509_STRICT accepts a name leaf and an IP leaf (needs python3)',
    async () => {
      const out = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(
          'python3',
          ['-c', CLIENT, ca.certPath, String(port), 'strict.example', '127.0.0.1'],
          (err, stdout, stderr) => resolve({ code: err === null ? 0 : 1, stdout, stderr }),
        );
      });
      expect(out.stderr).toBe('');
      expect(out.stdout).toMatch(/name-ok TLSv1\.3/);
      expect(out.stdout).toMatch(/ip-ok/);
    },
  );
});
