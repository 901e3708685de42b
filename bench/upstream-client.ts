/**
 * Which upstream client (issue #18, "one upstream client"): the same allowed requests sent to a
 * loopback HTTPS upstream, in the same run and in alternating rounds, by
 *
 *   - `pool`:   celgate's own pool (src/transport/http/upstream-pool.ts: llhttp, one write per head),
 *               by its callbacks, as the direct path and HTTP/2 streams use it,
 *   - `call`:   the same pool through its stream face (src/transport/http/upstream-call.ts: a
 *               Writable request, a Readable response), as the Node path and upgrades use it,
 *   - `undici`: an undici `Pool` whose connector applies the same destination guard lookup, the
 *               same secure context (system roots + extra CA), SNI and keep-alive,
 *   - `agent`:  Node's https.Agent with the same lookup, secure context, SNI and keep-alive (the
 *               client the Node path used before the pool became the only one).
 *
 * Two workloads: 1 KiB GETs and 64 KiB POSTs (the body written after the head), each from 16
 * concurrent callers over 16 kept-alive connections. Every client connects by name (`localhost`)
 * through `DestinationGuard.lookup` with only 127.0.0.0/8 allowed, so the guard runs on each new
 * connection. Asserts, per client and workload: every GET body was 1 KiB, every POST's 64 KiB
 * arrived (the upstream answers with the byte count), and no client opened more than 16 TLS
 * connections (keep-alive held). The upstream runs in this process too, so the rates are lower than
 * through a gateway; read the ratios to `pool`. Artifact `upstream-client` (kind micro).
 *
 * usage: npm run -s build && node dist/bench/upstream-client.js   (exits 1 when an assertion fails)
 *   CELGATE_BENCH_UPSTREAM_MS: time per client per workload in total (default 6000), split in rounds.
 */
import https from 'node:https';
import type net from 'node:net';
import tls from 'node:tls';
import { pathToFileURL } from 'node:url';
import { Pool, buildConnector } from 'undici';
import { makeCerts, startUpstream } from '../support/http-harness.js';
import { summarize, writeArtifact, type AssertionResult, type Summary } from './artifact.js';
import { destinationGuard } from '../src/transport/http/destination.js';
import { Upstream } from '../src/transport/http/upstream.js';
import { UpstreamCall } from '../src/transport/http/upstream-call.js';
import { UpstreamPool, type UpstreamExchange } from '../src/transport/http/upstream-pool.js';

export const CONNECTIONS = 16;
export const GET_BYTES = 1024;
export const POST_BYTES = 64 * 1024;
const ROUNDS = 6;
const HOST = 'localhost';

type Workload = 'get' | 'post';
type ClientName = 'pool' | 'call' | 'undici' | 'agent';
/** One request; resolves with the response body's length in bytes (GET) or the upstream's count (POST). */
type Send = (w: Workload) => Promise<number>;

const POST_BODY = Buffer.alloc(POST_BYTES, 0x61);
const GET_ANSWER = Buffer.alloc(GET_BYTES, 0x62);

function poolClient(pool: UpstreamPool, port: number): Send {
  return (w) =>
    new Promise<number>((resolve, reject) => {
      let status = 0;
      const chunks: Buffer[] = [];
      const ex: UpstreamExchange = {
        head: (s) => void (status = s),
        body: (c) => void chunks.push(c),
        end: () => {
          const body = Buffer.concat(chunks);
          if (status !== 200) reject(new Error(`pool: status ${status}`));
          else resolve(w === 'get' ? body.length : Number(body.toString('latin1')));
        },
        drained: () => {},
        fail: (err) => reject(err),
      };
      const head =
        w === 'get'
          ? `GET /get HTTP/1.1\r\nHost: ${HOST}:${port}\r\n\r\n`
          : `POST /post HTTP/1.1\r\nHost: ${HOST}:${port}\r\nContent-Length: ${POST_BYTES}\r\n\r\n`;
      const h = pool.request(
        {
          scheme: 'https',
          host: HOST,
          port,
          method: w === 'get' ? 'GET' : 'POST',
          head,
          bodyLength: w === 'get' ? 0 : POST_BYTES,
        },
        ex,
      );
      if (w === 'post') {
        h.write(POST_BODY);
        h.endRequest();
      }
    });
}

function undiciClient(upstream: Upstream, port: number): { send: Send; pool: Pool } {
  const guard = upstream.guard!;
  const connector = buildConnector({
    lookup: guard.lookup as unknown as net.LookupFunction,
    secureContext: upstream.secureContext,
    timeout: upstream.timeoutMs,
    keepAlive: true,
    noDelay: true,
  });
  const pool = new Pool(`https://${HOST}:${port}`, {
    connections: CONNECTIONS,
    connect: (opts, cb) => connector({ ...opts, servername: HOST }, cb),
    headersTimeout: upstream.timeoutMs,
  });
  const send: Send = async (w) => {
    const res = await pool.request(
      w === 'get'
        ? { path: '/get', method: 'GET' }
        : {
            path: '/post',
            method: 'POST',
            body: POST_BODY,
            headers: { 'content-length': String(POST_BYTES) },
          },
    );
    const body = Buffer.from(await res.body.arrayBuffer());
    if (res.statusCode !== 200) throw new Error(`undici: status ${res.statusCode}`);
    return w === 'get' ? body.length : Number(body.toString('latin1'));
  };
  return { send, pool };
}

function callClient(upstream: Upstream, pool: UpstreamPool, port: number): Send {
  return (w) =>
    new Promise<number>((resolve, reject) => {
      const call = new UpstreamCall(
        upstream,
        pool,
        {
          scheme: 'https',
          host: HOST,
          port,
          method: w === 'get' ? 'GET' : 'POST',
          path: w === 'get' ? '/get' : '/post',
          headers:
            w === 'get'
              ? ['host', `${HOST}:${port}`]
              : ['host', `${HOST}:${port}`, 'content-length', String(POST_BYTES)],
          bodyLength: w === 'get' ? 0 : POST_BYTES,
        },
        {
          response: (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('error', reject);
            res.on('end', () => {
              const body = Buffer.concat(chunks);
              if (res.statusCode !== 200) reject(new Error(`call: status ${res.statusCode}`));
              else resolve(w === 'get' ? body.length : Number(body.toString('latin1')));
            });
          },
        },
      );
      call.on('error', reject);
      call.end(w === 'post' ? POST_BODY : undefined);
    });
}

function agentClient(upstream: Upstream, port: number): { send: Send; agent: https.Agent } {
  const agent = new https.Agent({ keepAlive: true, maxSockets: CONNECTIONS, scheduling: 'lifo' });
  const send: Send = (w) =>
    new Promise<number>((resolve, reject) => {
      const req = https.request({
        agent,
        host: HOST,
        port,
        servername: HOST,
        lookup: upstream.guard!.lookup as unknown as net.LookupFunction,
        secureContext: upstream.secureContext,
        checkServerIdentity: (_n, cert) => tls.checkServerIdentity(HOST, cert),
        method: w === 'get' ? 'GET' : 'POST',
        path: w === 'get' ? '/get' : '/post',
        headers:
          w === 'get'
            ? { host: `${HOST}:${port}` }
            : { host: `${HOST}:${port}`, 'content-length': String(POST_BYTES) },
      } as https.RequestOptions);
      req.once('socket', (s) => s.setNoDelay(true));
      req.on('error', reject);
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          if (res.statusCode !== 200) reject(new Error(`agent: status ${res.statusCode}`));
          else resolve(w === 'get' ? body.length : Number(body.toString('latin1')));
        });
      });
      req.end(w === 'post' ? POST_BODY : undefined);
    });
  return { send, agent };
}

/** CONNECTIONS callers, each one request at a time, for `ms`; returns completed requests and bad answers. */
async function load(send: Send, w: Workload, ms: number): Promise<{ done: number; bad: number }> {
  const want = w === 'get' ? GET_BYTES : POST_BYTES;
  const until = performance.now() + ms;
  let done = 0;
  let bad = 0;
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (performance.now() < until) {
        const n = await send(w);
        if (n === want) done++;
        else bad++;
      }
    }),
  );
  return { done, bad };
}

export async function main(): Promise<number> {
  const totalMs = Number(process.env.CELGATE_BENCH_UPSTREAM_MS ?? 6000);
  const certs = await makeCerts();
  const up = await startUpstream(
    certs,
    (req, res, body) => {
      const answer = req.method === 'POST' ? Buffer.from(String(body.length)) : GET_ANSWER;
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': answer.length });
      res.end(answer);
    },
    { readBody: true },
  );
  up.server.keepAliveTimeout = 60_000;
  let tlsConnections = 0;
  up.server.on('secureConnection', () => tlsConnections++);
  const upstream = new Upstream({
    extraCa: [certs.caPem],
    timeoutMs: 10_000,
    guard: destinationGuard(['127.0.0.0/8']),
  });
  const ownPool = new UpstreamPool(upstream);
  // A second pool for the stream face, so each client keeps its own 16 connections.
  const callPool = new UpstreamPool(upstream);
  const und = undiciClient(upstream, up.port);
  const agent = agentClient(upstream, up.port);
  const clients: Record<ClientName, Send> = {
    pool: poolClient(ownPool, up.port),
    call: callClient(upstream, callPool, up.port),
    undici: und.send,
    agent: agent.send,
  };
  const names = Object.keys(clients) as ClientName[];
  const results: Record<string, Summary> = {};
  const assertions: AssertionResult[] = [];
  const notes: Record<string, unknown> = { connections: CONNECTIONS, rounds: ROUNDS, totalMs };
  const roundMs = totalMs / ROUNDS;
  try {
    for (const w of ['get', 'post'] as const) {
      const rates: Record<ClientName, number[]> = { pool: [], call: [], undici: [], agent: [] };
      const bad: Record<ClientName, number> = { pool: 0, call: 0, undici: 0, agent: 0 };
      const conns: Record<ClientName, number> = { pool: 0, call: 0, undici: 0, agent: 0 };
      // Warm every client's 16 connections before measuring.
      for (const n of names) {
        const before = tlsConnections;
        await load(clients[n], w, 300);
        conns[n] += tlsConnections - before;
      }
      for (let r = 0; r < ROUNDS; r++) {
        // Rotate the order so drift on the shared machine hits every client alike.
        for (let i = 0; i < names.length; i++) {
          const n = names[(i + r) % names.length]!;
          const before = tlsConnections;
          const t0 = performance.now();
          const { done, bad: b } = await load(clients[n], w, roundMs);
          rates[n].push(done / ((performance.now() - t0) / 1000));
          bad[n] += b;
          conns[n] += tlsConnections - before;
        }
      }
      for (const n of names) {
        results[`${w}_${n}_rps`] = summarize(rates[n], 'req/s');
        assertions.push({
          name: `${w} via ${n}: every answer complete`,
          ok: bad[n] === 0 && rates[n].every((x) => x > 0),
          detail: `${bad[n]} short answers`,
        });
        assertions.push({
          name: `${w} via ${n}: at most ${CONNECTIONS} TLS connections (kept alive)`,
          ok: conns[n] <= CONNECTIONS,
          detail: `${conns[n]} connections`,
        });
      }
      const med = (n: ClientName) => results[`${w}_${n}_rps`]!.median;
      notes[`${w}_call_over_pool`] = med('call') / med('pool');
      notes[`${w}_undici_over_pool`] = med('undici') / med('pool');
      notes[`${w}_agent_over_pool`] = med('agent') / med('pool');
      console.log(
        `${w}: pool ${med('pool').toFixed(0)} req/s, call ${med('call').toFixed(0)} (${(
          med('call') / med('pool')
        ).toFixed(3)}× pool), undici ${med('undici').toFixed(0)} (${(
          med('undici') / med('pool')
        ).toFixed(3)}× pool), https.Agent ${med('agent').toFixed(0)} (${(
          med('agent') / med('pool')
        ).toFixed(3)}× pool); TLS connections ${JSON.stringify(conns)}`,
      );
    }
  } finally {
    ownPool.close();
    callPool.close();
    await und.pool.close();
    agent.agent.destroy();
    await up.close();
    certs.cleanup();
  }
  const a = writeArtifact({ kind: 'micro', name: 'upstream-client', results, assertions, notes });
  for (const x of assertions) if (!x.ok) console.log(`FAILED ${x.name}: ${x.detail}`);
  console.log(`artifact ${a.path ?? ''}`);
  return assertions.every((x) => x.ok) ? 0 : 1;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
