/**
 * Child process for bench/certs.ts and bench/certs-proxy.ts: the TLS client side of a first-contact
 * measurement, run out of process so the server's event loop (and its measured delay) carries only
 * the gateway's own work. Receives {port, ca, hosts, mode, concurrency} over IPC, answers
 * {results: [{ms, ok}], cpuMs} (the client's CPU time for the whole job). mode "direct": TLS to port with SNI = host; mode "proxy": CONNECT host:443
 * through the proxy at port, then TLS with SNI = host.
 */
import net from 'node:net';
import tls from 'node:tls';

interface Job {
  port: number;
  ca: string;
  hosts: string[];
  mode: 'direct' | 'proxy';
  concurrency: number;
}

const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

function tunnel(port: number, host: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    const onData = (c: Buffer) => {
      buf += c.toString('latin1');
      if (!buf.includes('\r\n\r\n')) return;
      s.removeListener('data', onData);
      if (buf.startsWith('HTTP/1.1 2')) resolve(s);
      else reject(new Error(buf.split('\r\n')[0]));
    };
    s.on('data', onData);
    s.once('error', reject);
    s.write(`CONNECT ${host}:443 HTTP/1.1\r\nHost: ${host}:443\r\n\r\n`);
  });
}

/** One client context (trusting only the CA) for the whole job, like a real client keeps one;
 * building it per connection would add ~1 ms of client CPU that is not the gateway's cost. */
let clientContext: tls.SecureContext | undefined;

async function contact(job: Job, host: string): Promise<{ ms: number; ok: boolean }> {
  clientContext ??= tls.createSecureContext({ ca: job.ca });
  const t0 = process.hrtime.bigint();
  try {
    const base =
      job.mode === 'proxy'
        ? { socket: await tunnel(job.port, host) }
        : { host: '127.0.0.1', port: job.port };
    return await new Promise((resolve) => {
      const s = tls.connect({ ...base, servername: host, secureContext: clientContext });
      s.once('secureConnect', () => {
        const took = ms(t0);
        const ok = s.authorized && s.getPeerCertificate().subjectaltname === `DNS:${host}`;
        s.destroy();
        resolve({ ms: took, ok });
      });
      s.once('error', () => resolve({ ms: ms(t0), ok: false }));
    });
  } catch {
    return { ms: ms(t0), ok: false };
  }
}

process.on('message', (job: Job) => {
  void (async () => {
    const results: { ms: number; ok: boolean }[] = new Array(job.hosts.length);
    const cpu0 = process.cpuUsage();
    let next = 0;
    const worker = async () => {
      while (next < job.hosts.length) {
        const i = next++;
        results[i] = await contact(job, job.hosts[i]!);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, job.concurrency) }, worker));
    const cpu = process.cpuUsage(cpu0);
    process.send?.({ results, cpuMs: (cpu.user + cpu.system) / 1000 }, () => process.exit(0));
  })();
});
