/**
 * Test harness for the explicit proxy: a gateway CA (what clients trust), a separate upstream CA
 * (what the gateway trusts for upstream TLS), HTTPS + plain upstreams on loopback, and the proxy
 * started in-process on 127.0.0.1:0 with a scripted decider and a recording sink (both from the
 * HTTP pipeline's harness). Reused by bench/certs-proxy.ts.
 */
import { createServer as createHttpsServer } from 'node:https';
import type net from 'node:net';
import type { HttpLimits } from '../src/transport/http/limits.js';
import { parseUpstreamMap } from '../src/transport/http/upstream.js';
import { startExplicitProxy, type ExplicitProxy } from '../src/transport/http/proxy.js';
import {
  makeCerts,
  MemorySink,
  ScriptedDecider,
  startUpstream,
  type Certs,
  type Upstream,
  type UpstreamHandler,
} from './http-harness.js';

export interface ProxyRig {
  gatewayCerts: Certs;
  upstreamCerts: Certs;
  https: Upstream;
  /** Port of the upstream serving the IP literal 127.0.0.2. */
  ipPort: number;
  plain: Upstream;
  proxy: ExplicitProxy;
  /** `http://127.0.0.1:PORT` */
  proxyUrl: string;
  port: number;
  decider: ScriptedDecider;
  sink: MemorySink;
  close(): Promise<void>;
}

export const echo: UpstreamHandler = (req, res, body) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(
    JSON.stringify({
      url: req.url,
      host: req.headers.host,
      method: req.method,
      body: body.toString(),
    }),
  );
};

/** Hosts mapped to the HTTPS upstream (`*.test` names and the 127.0.0.2 IP literal) or the plain one. */
export async function startProxyRig(
  handler: UpstreamHandler = echo,
  limits: Partial<HttpLimits> = {},
): Promise<ProxyRig> {
  const gatewayCerts = await makeCerts();
  const upstreamCerts = await makeCerts();
  const https = await startUpstream(upstreamCerts, handler);
  const plain = await startUpstream(null, handler);
  // Clients send no SNI to an IP literal, so this upstream presents an IP-SAN certificate by default.
  const ipLeaf = await upstreamCerts.leaves.pem('127.0.0.2');
  const ipServer = createHttpsServer({ key: ipLeaf.key, cert: ipLeaf.cert }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handler(req, res, Buffer.concat(chunks)));
  });
  await new Promise<void>((r) => ipServer.listen(0, '127.0.0.1', r));
  const ipPort = (ipServer.address() as net.AddressInfo).port;
  const map = parseUpstreamMap({
    'api.test': `127.0.0.1:${https.port}`,
    'evil.test': `127.0.0.1:${https.port}`,
    'sni.test': `127.0.0.1:${https.port}`,
    '127.0.0.2': `127.0.0.1:${ipPort}`,
    'plain.test': `127.0.0.1:${plain.port}`,
  });
  if (!map.ok) throw new Error(JSON.stringify(map.issues));
  const decider = new ScriptedDecider();
  const sink = new MemorySink();
  const proxy = await startExplicitProxy(
    { listen: '127.0.0.1:0', upstreamMap: map.value, extraCa: [upstreamCerts.caPem], limits },
    { decider, sink, origin: { session_id: 'proxy-test' }, certs: gatewayCerts.leaves },
  );
  const port = Number(proxy.addresses.proxy!.split(':').pop());
  return {
    gatewayCerts,
    upstreamCerts,
    https,
    ipPort,
    plain,
    proxy,
    proxyUrl: `http://127.0.0.1:${port}`,
    port,
    decider,
    sink,
    async close() {
      await proxy.close();
      await https.close();
      ipServer.closeAllConnections();
      await new Promise<void>((r) => ipServer.close(() => r()));
      await plain.close();
      gatewayCerts.cleanup();
      upstreamCerts.cleanup();
    },
  };
}
