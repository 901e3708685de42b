/**
 * Runs INSIDE the guest namespace for the HTTP lane's floor measurement: a bare Node HTTPS server
 * (no celgate, no bridge, no policy) on 127.0.0.1:<port> that answers every request with a short
 * 403, like a denial. curl in the same guest, with the same options and a leaf from the same CA,
 * measures what the client and a TLS handshake cost on this machine without the gateway, so the
 * lane can report celgate's share of starttransfer. Prints {"ready":port} when listening; exits
 * on SIGTERM or when stdin closes.
 *
 * usage: node guest-https-floor.js <key.pem> <cert.pem> <port>
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';

const [keyFile, certFile, portText] = process.argv.slice(2);
if (keyFile === undefined || certFile === undefined) {
  process.stderr.write('usage: guest-https-floor <key.pem> <cert.pem> [port]\n');
  process.exit(2);
}
const body = 'Blocked (floor measurement: no gateway on this path)\n';
const server = createServer(
  { key: readFileSync(keyFile), cert: readFileSync(certFile) },
  (req, res) => {
    req.resume();
    res.writeHead(403, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  },
);
server.listen(Number(portText ?? '0'), '127.0.0.1', () => {
  const a = server.address();
  process.stdout.write(
    `${JSON.stringify({ ready: typeof a === 'object' && a !== null ? a.port : null })}\n`,
  );
});
const stop = () => {
  server.close();
  server.closeAllConnections();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.stdin.on('end', stop).resume();
