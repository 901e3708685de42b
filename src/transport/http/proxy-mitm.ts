/**
 * The explicit proxy's adaptation of `http-mitm-proxy` 1.1.0. We keep the library's CONNECT
 * handling (onConnect hooks, the `200` answer with keep-alive headers, first-byte TLS detection) and
 * its per-request context + `onRequest` hooks, and replace the three parts that conflict with
 * celgate's contract (docs/proxy.md):
 *
 * - certificates: the library generates a forge RSA key per host and writes key/cert files under
 *   `.http-mitm-proxy/`; here leaves come from our CA + LeafCache, in memory;
 * - TLS termination: the library starts one HTTPS server per host on a new loopback port and pipes
 *   the tunnel into it; here the tunnel socket is wrapped in a `tls.TLSSocket` in-process, with the
 *   certificate chosen by the ClientHello's SNI (the CONNECT line is only the fallback, for clients
 *   that send no SNI, e.g. IP literals);
 * - forwarding: the library forwards upstream itself, WebSockets included, with no decision; here
 *   no WebSocket server is attached and every request is handed to the shared exchange pipeline.
 *
 * Owns: tunnel → decrypted HTTP stream. Must not: decide, forward, or write files.
 */
import type { Duplex } from 'node:stream';
import type net from 'node:net';
import tls from 'node:tls';
import { Proxy as MitmProxy } from 'http-mitm-proxy';
import { CelgateError } from '../../errors.js';
import { parseClientHello, sniffProtocol } from './clienthello.js';
import type { SecureContextSource } from './service.js';
import type { ExchangeContext } from './target.js';
import type { GuestMeta } from '../vsock.js';
import { gather } from './gather.js';
import { canonicalHost } from '../hostname.js';

/** The host:port of a CONNECT request, validated before the tunnel is answered. */
export interface TunnelTarget {
  host: string;
  port: number;
  /** Agent label from the CONNECT request's proxy credentials (becomes process_name). */
  meta: GuestMeta;
}

export interface TunnelHooks {
  certs: SecureContextSource;
  handshakeTimeoutMs: number;
  /** The CONNECT target recorded for this socket by the onConnect hook; claiming it also stops
   * the wait-for-first-bytes timer the hook armed. */
  claim(socket: Duplex): TunnelTarget | undefined;
  /** A decrypted (or plain) HTTP stream is ready: hand it to the HTTP server. */
  serve(stream: Duplex, ctx: ExchangeContext): void;
  /** A tunnel failed before any request: record it (the socket is destroyed by the caller). */
  refuse(ctx: ExchangeContext, error: string): void;
}


function helloFailure(err: unknown): string {
  const e = err as CelgateError;
  if (e.code === 'E_TIMEOUT') return 'tls_handshake_timeout';
  return e.details?.truncated === true ? 'tls_truncated_client_hello' : 'tls_parse_error';
}

export class CelgateMitmProxy extends MitmProxy {
  private readonly hooks: TunnelHooks;

  constructor(hooks: TunnelHooks) {
    super();
    this.hooks = hooks;
    // The fields the inherited CONNECT and request handlers read; `listen()` (which would create
    // the library's CA on disk and a WebSocket forwarder) is never called.
    this.options = {};
    this.keepAlive = true;
    this.connectRequests = {};
    this.sslServers = {};
    this.sslSemaphores = {};
  }

  /** Replaces the per-host HTTPS server + loopback pipe with in-process TLS termination. */
  override _onHttpServerConnectData(_req: unknown, socket: Duplex, head: Buffer): void {
    socket.pause();
    void this.openTunnel(socket, head);
  }

  private async openTunnel(socket: Duplex, head: Buffer): Promise<void> {
    const target = this.hooks.claim(socket);
    const base: ExchangeContext = { scheme: 'https', sniHost: target?.host ?? '', port: target?.port ?? 443, meta: target?.meta ?? {} };
    if (target === undefined || head.length === 0) {
      this.hooks.refuse(base, 'connect_bad_target');
      socket.destroy();
      return;
    }
    const proto = sniffProtocol(head[0]!);
    if (proto === 'http') {
      socket.unshift(head);
      this.hooks.serve(socket, { ...base, scheme: 'http', sniHost: '' });
      socket.resume();
      return;
    }
    if (proto !== 'tls') {
      this.hooks.refuse(base, 'unknown_protocol');
      socket.destroy();
      return;
    }
    let hello: { value: { sni: string | null }; buf: Buffer };
    try {
      hello = await gather(socket, head, this.hooks.handshakeTimeoutMs, (b) => {
        const r = parseClientHello(b);
        if (r.status === 'ok') return r;
        if (r.status === 'need_more') return null;
        throw new CelgateError('E_PARSE', 'malformed ClientHello');
      }, 'tunnel closed mid-handshake');
    } catch (err) {
      this.hooks.refuse(base, helloFailure(err));
      socket.destroy();
      return;
    }
    // SNI is authoritative: it names the host the client will verify, so it is the host we mint
    // for, judge and connect to. The CONNECT host is used only when the client sent no SNI.
    const sni = hello.value.sni === null ? null : canonicalHost(hello.value.sni);
    if (sni !== null && !sni.ok) {
      this.hooks.refuse({ ...base, sniHost: hello.value.sni! }, 'invalid_sni');
      socket.destroy();
      return;
    }
    const ctx: ExchangeContext = { ...base, sniHost: sni?.host ?? target.host };
    let contextNow: () => tls.SecureContext;
    try {
      contextNow = await this.hooks.certs.contextFor(ctx.sniHost);
    } catch {
      this.hooks.refuse(ctx, 'cert_mint_failed');
      socket.destroy();
      return;
    }
    if (socket.destroyed) return;
    socket.unshift(hello.buf);
    // contextNow() right here: it may load this host's leaf into a shared context (see LeafCache).
    const tlsSocket = new tls.TLSSocket(socket as net.Socket, { isServer: true, secureContext: contextNow(), ALPNProtocols: ['http/1.1'] });
    const timer = setTimeout(() => {
      this.hooks.refuse(ctx, 'tls_handshake_timeout');
      tlsSocket.destroy();
    }, this.hooks.handshakeTimeoutMs);
    let secure = false;
    tlsSocket.on('error', () => {
      if (secure) return; // after the handshake the HTTP layer owns errors
      clearTimeout(timer);
      this.hooks.refuse(ctx, 'tls_handshake');
      tlsSocket.destroy();
    });
    tlsSocket.once('secure', () => {
      secure = true;
      clearTimeout(timer);
      this.hooks.serve(tlsSocket, ctx);
    });
    tlsSocket.once('close', () => {
      clearTimeout(timer);
      socket.destroy();
    });
  }

  /** The library logs every error to the console and answers 504; failures are recorded by the
   * exchange pipeline instead, so only make sure a pending response is not left hanging. */
  override _onError(_kind: string, ctx: { proxyToClientResponse?: { headersSent: boolean; destroy(): void } } | null): void {
    const res = ctx?.proxyToClientResponse;
    if (res !== undefined && !res.headersSent) res.destroy();
  }

  /** Silences the library's console output for client socket errors (resets are normal). */
  override _onSocketError(): void {}
}
