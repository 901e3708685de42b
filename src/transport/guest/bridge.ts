/**
 * The guest bridge (DESIGN §3): the one program that runs inside the guest. It starts the TCP
 * forwarder (redirected 443/80 → host 5002), the DNS stub (127.0.0.1:53 → host 5007), the MCP
 * relay (Unix socket → host 5003) and the exec service (guest port 5000: behind the hybrid-vsock
 * base socket in uds mode, a TCP listener in tcp mode). Each part can be switched off.
 *
 * Owns: composing the parts and their addresses. Must not: decide, parse protocols, or open any
 * path to the outside other than the vsock transport.
 */
import type { VsockEndpoint, VsockMode } from '../vsock.js';
import { serveExecConnection } from './exec-service.js';
import { startDnsStub } from './dns-stub.js';
import { startForwarder } from './forwarder.js';
import { listenGuestTcp, listenHybridBase } from './hybrid-endpoint.js';
import { startMcpRelay } from './mcp-relay.js';
import { identifyPeer } from './process-id.js';

export const DEFAULT_GUEST_PORTS = { http: 5002, mcp: 5003, dns: 5007, exec: 5000 } as const;
export const DEFAULT_FORWARD_PORT = 15001;

export interface HostPort {
  host: string;
  port: number;
}

export interface BridgeOptions {
  mode: VsockMode;
  /** tcp mode: the host's address. */
  host: string;
  /** uds mode: hybrid-vsock base path (host ports at `<base>_<P>`, guest ports behind `<base>`). */
  udsBase: string | null;
  ports: { http: number; mcp: number; dns: number; exec: number };
  forward: HostPort | null;
  dns: HostPort | null;
  mcpSocket: string | null;
  /** process_name for MCP clients that send no preamble. */
  mcpProcessName: string;
  /** tcp mode: where the exec service listens (must be reachable from the host); null = off. */
  execListen: HostPort | null;
  /** uds mode: serve guest port `ports.exec` behind `<udsBase>`. */
  exec: boolean;
  /** Look up the client process of each forwarded connection in /proc (a few ms each). */
  identifyProcesses?: boolean;
  onError?: (what: string, err: unknown) => void;
}

export interface BridgeHandle {
  addresses: Record<string, string>;
  close(): Promise<void>;
}

export async function startBridge(o: BridgeOptions): Promise<BridgeHandle> {
  const endpoint = (port: number): VsockEndpoint =>
    o.mode === 'uds'
      ? { mode: 'uds', port, udsBase: o.udsBase ?? '' }
      : { mode: 'tcp', host: o.host, port };
  const closers: Array<() => Promise<void>> = [];
  const addresses: Record<string, string> = {};
  const close = async () => {
    await Promise.allSettled(closers.reverse().map((c) => c()));
  };
  try {
    if (o.forward !== null) {
      const f = await startForwarder({
        ...o.forward,
        upstream: endpoint(o.ports.http),
        onError: o.onError,
        ...(o.identifyProcesses === true ? { identify: identifyPeer } : {}),
      });
      closers.push(f.close);
      addresses.forward = f.address;
      // IPv6: ip6tables REDIRECTs to [::1] (docs/guest.md); a loopback forwarder gets a twin there
      // on the same port, so the guest's IPv6 traffic reaches the gateway too instead of escaping.
      if (o.forward.host === '127.0.0.1') {
        try {
          const f6 = await startForwarder({
            host: '::1',
            port: f.port,
            upstream: endpoint(o.ports.http),
            onError: o.onError,
            ...(o.identifyProcesses === true ? { identify: identifyPeer } : {}),
          });
          closers.push(f6.close);
          addresses.forward6 = f6.address;
        } catch (err) {
          // No IPv6 loopback in this guest: nothing can leave over IPv6 either.
          o.onError?.('forwarder [::1]', err);
        }
      }
    }
    if (o.dns !== null) {
      const d = await startDnsStub({
        ...o.dns,
        upstream: endpoint(o.ports.dns),
        onError: o.onError,
      });
      closers.push(d.close);
      addresses.dns_udp = d.udpAddress;
      addresses.dns_tcp = d.tcpAddress;
    }
    if (o.mcpSocket !== null) {
      const m = await startMcpRelay({
        socketPath: o.mcpSocket,
        upstream: endpoint(o.ports.mcp),
        defaultProcessName: o.mcpProcessName,
        onError: o.onError,
      });
      closers.push(m.close);
      addresses.mcp = m.address;
    }
    if (o.mode === 'uds' && o.exec) {
      const h = await listenHybridBase(
        o.udsBase ?? '',
        new Map([[o.ports.exec, serveExecConnection]]),
      );
      closers.push(h.close);
      addresses.exec = `${h.address} (CONNECT ${o.ports.exec})`;
    } else if (o.mode === 'tcp' && o.execListen !== null) {
      const t = await listenGuestTcp(o.execListen.host, o.execListen.port, serveExecConnection);
      closers.push(t.close);
      addresses.exec = t.address;
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { addresses, close };
}
