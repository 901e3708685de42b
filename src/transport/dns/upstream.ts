/**
 * Forwards an allowed query to the configured upstream resolvers: UDP from a fresh random port with
 * a fresh random id, TCP to the same resolver when the answer comes back truncated, a per-resolver
 * timeout, and the next resolver on timeout, network error, SERVFAIL or REFUSED. Responses that do
 * not answer the question that was asked are ignored. Never decides anything: it is only called for
 * queries the engine allowed. Owns sockets to upstreams only.
 */
import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { CelgateError } from '../../errors.js';
import { FrameReader, frame } from './framing.js';
import { MAX_RESPONSE_BYTES, RCODE, rcodeName } from './limits.js';
import type { DnsQuery } from './parse.js';
import { parseResponse, type UpstreamResponse } from './response.js';

export interface Upstream {
  host: string;
  port: number;
}

/** `1.1.1.1`, `1.1.1.1:5353`, `[2606:4700::1111]:53` or `::1`. */
export function parseUpstream(text: string): Upstream {
  const bracket = /^\[([0-9a-fA-F:.]+)\](?::(\d{1,5}))?$/.exec(text);
  const plain = /^([0-9.]+)(?::(\d{1,5}))?$/.exec(text);
  const m = bracket ?? plain;
  const host = m?.[1] ?? (net.isIPv6(text) ? text : undefined);
  const port = m?.[2] === undefined ? 53 : Number(m[2]);
  if (host === undefined || net.isIP(host) === 0 || port < 1 || port > 65535) {
    throw new CelgateError(
      'E_CONFIG',
      `dns upstream "${text}" must be an IP address with an optional port, e.g. 1.1.1.1:53 or [::1]:53`,
    );
  }
  return { host, port };
}

export const formatUpstream = (u: Upstream): string =>
  u.host.includes(':') ? `[${u.host}]:${u.port}` : `${u.host}:${u.port}`;

export type ForwardResult =
  | { ok: true; bytes: Buffer; response: UpstreamResponse; upstream: string; ms: number }
  | { ok: false; reason: string; ms: number };

type Attempt =
  { ok: true; bytes: Buffer; response: UpstreamResponse } | { ok: false; reason: string };

export class UpstreamForwarder {
  constructor(
    readonly upstreams: readonly Upstream[],
    readonly timeoutMs: number,
  ) {}

  async forward(query: DnsQuery): Promise<ForwardResult> {
    const started = performance.now();
    const failures: string[] = [];
    for (const upstream of this.upstreams) {
      const name = formatUpstream(upstream);
      let attempt = await this.exchange(upstream, query, 'udp');
      if (attempt.ok && attempt.response.truncated)
        attempt = await this.exchange(upstream, query, 'tcp');
      if (
        attempt.ok &&
        (attempt.response.rcode === RCODE.SERVFAIL || attempt.response.rcode === RCODE.REFUSED)
      ) {
        attempt = { ok: false, reason: `answered ${rcodeName(attempt.response.rcode)}` };
      }
      if (attempt.ok) return { ...attempt, upstream: name, ms: performance.now() - started };
      failures.push(`${name} ${attempt.reason}`);
    }
    const reason =
      failures.length === 0
        ? 'no upstream resolvers configured'
        : `all upstreams failed: ${failures.join('; ')}`;
    return { ok: false, reason, ms: performance.now() - started };
  }

  private exchange(upstream: Upstream, query: DnsQuery, via: 'udp' | 'tcp'): Promise<Attempt> {
    const id = randomInt(0, 0x10000);
    const message = Buffer.from(query.raw);
    message.writeUInt16BE(id, 0);
    const accept = (bytes: Buffer): Attempt | null => {
      const parsed = parseResponse(bytes);
      if (!parsed.ok || parsed.response.id !== id || !answersQuery(parsed.response, query))
        return null;
      return { ok: true, bytes, response: parsed.response };
    };
    return via === 'udp'
      ? this.udp(upstream, message, accept)
      : this.tcp(upstream, message, accept);
  }

  private udp(
    upstream: Upstream,
    message: Buffer,
    accept: (b: Buffer) => Attempt | null,
  ): Promise<Attempt> {
    return new Promise((resolve) => {
      const socket = dgram.createSocket(net.isIPv6(upstream.host) ? 'udp6' : 'udp4');
      let done = false;
      const finish = (a: Attempt) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        socket.close();
        resolve(a);
      };
      const timer = setTimeout(
        () => finish({ ok: false, reason: `timed out after ${this.timeoutMs} ms (udp)` }),
        this.timeoutMs,
      );
      socket.on('error', (err) => finish({ ok: false, reason: `udp error: ${err.message}` }));
      socket.on('message', (bytes, rinfo) => {
        // Only the resolver we asked, only an answer to our id and question (spoofing resistance).
        if (rinfo.port !== upstream.port || !sameAddress(rinfo.address, upstream.host)) return;
        const a = accept(bytes);
        if (a !== null) finish(a);
      });
      socket.send(message, upstream.port, upstream.host, (err) => {
        if (err) finish({ ok: false, reason: `udp send failed: ${err.message}` });
      });
    });
  }

  private tcp(
    upstream: Upstream,
    message: Buffer,
    accept: (b: Buffer) => Attempt | null,
  ): Promise<Attempt> {
    return new Promise((resolve) => {
      const socket = net.connect({ host: upstream.host, port: upstream.port });
      const reader = new FrameReader(MAX_RESPONSE_BYTES);
      let done = false;
      const finish = (a: Attempt) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        socket.destroy();
        resolve(a);
      };
      const timer = setTimeout(
        () => finish({ ok: false, reason: `timed out after ${this.timeoutMs} ms (tcp)` }),
        this.timeoutMs,
      );
      socket.on('error', (err) => finish({ ok: false, reason: `tcp error: ${err.message}` }));
      socket.on('close', () =>
        finish({ ok: false, reason: 'tcp connection closed without an answer' }),
      );
      socket.on('connect', () => socket.write(frame(message)));
      socket.on('data', (chunk: Buffer) => {
        const r = reader.push(chunk);
        for (const f of r.frames) {
          const a = accept(f);
          if (a !== null) return finish(a);
        }
        if (!r.ok) finish({ ok: false, reason: `tcp framing: ${r.reason}` });
      });
    });
  }
}

function sameAddress(a: string, b: string): boolean {
  return a === b || a.replace(/^::ffff:/, '') === b.replace(/^::ffff:/, '');
}

/** The response's question section matches the query's (names compared case-insensitively). */
function answersQuery(response: UpstreamResponse, query: DnsQuery): boolean {
  if (response.questions.length !== query.questions.length) return false;
  return query.questions.every((q, i) => {
    const r = response.questions[i]!;
    return r.qname === q.qname && r.typeCode === q.typeCode && r.classCode === q.classCode;
  });
}
