/**
 * Best-effort "which guest process opened this connection?" for the TCP forwarder, so the host
 * gets a `\0META {"process_name","pid"}` preamble for redirected HTTP(S). Linux only: the client's
 * socket is found in /proc/net/tcp{,6} by its port (the forwarder sees it as the peer port), then
 * its inode in /proc/<pid>/fd. Off by default (`--identify-processes`): the scan costs a few ms
 * per connection. `parseProcNetTcp` is pure; `identifyPeer` reads /proc and never throws.
 *
 * Owns: that lookup and its bounds. Must not: block the relay on failure (unknown → no preamble).
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import type net from 'node:net';
import type { GuestMeta } from '../vsock.js';

/** Processes scanned at most per lookup. */
export const MAX_PROC_SCAN = 4096;
/** File descriptors looked at per process at most. */
export const MAX_FDS_PER_PROC = 4096;

/**
 * The inode of the one non-listening socket whose LOCAL port is `port` in a /proc/net/tcp{,6}
 * text (the client's end of a redirected connection). Null when absent or ambiguous.
 */
export function parseProcNetTcp(text: string, port: number): number | null {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const found = new Set<number>();
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const local = f[1]!;
    if (!local.endsWith(`:${hexPort}`) || f[3] === '0A') continue; // 0A = LISTEN
    const inode = Number(f[9]);
    if (Number.isSafeInteger(inode) && inode > 0) found.add(inode);
  }
  return found.size === 1 ? [...found][0]! : null;
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** The process holding the other end of `socket` (a loopback connection in this namespace). */
export function identifyPeer(socket: net.Socket): GuestMeta | undefined {
  const port = socket.remotePort;
  if (port === undefined || process.platform !== 'linux') return undefined;
  const inode =
    parseProcNetTcp(readText('/proc/net/tcp'), port) ??
    parseProcNetTcp(readText('/proc/net/tcp6'), port);
  if (inode === null) return undefined;
  const target = `socket:[${inode}]`;
  let pids: string[];
  try {
    pids = readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .slice(0, MAX_PROC_SCAN);
  } catch {
    return undefined;
  }
  for (const pid of pids) {
    if (Number(pid) === process.pid) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`).slice(0, MAX_FDS_PER_PROC);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let link: string;
      try {
        link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      if (link === target) {
        const name = readText(`/proc/${pid}/comm`).trim();
        return name === '' ? { pid: Number(pid) } : { process_name: name, pid: Number(pid) };
      }
    }
  }
  return undefined;
}
