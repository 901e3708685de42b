/**
 * Sans-io sniffing of the first bytes a guest sends on the HTTP port: TLS or plain HTTP/1.1, and
 * the server name (SNI) of a TLS ClientHello, reassembled across records.
 *
 * Owns: byte-level parsing only. Must not: touch sockets, keep state between calls, log or decide.
 * Errors are CelgateError E_PARSE (malformed) or E_LIMIT (bounds).
 */
import { CelgateError } from '../../errors.js';

/** Largest ClientHello handshake message we reassemble (real ones are < 2 KiB; PQ ones < 4 KiB). */
export const MAX_CLIENT_HELLO_BYTES = 64 * 1024;
/** RFC 6066: a host_name is at most 255 bytes; DNS names at most 253. */
export const MAX_SNI_LENGTH = 253;

const TLS_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 0x01;
const EXT_SERVER_NAME = 0x0000;
const EXT_ALPN = 0x0010;
const SNI_HOST_NAME = 0x00;

export type Protocol = 'tls' | 'http' | 'unknown';

/** Classifies a connection by its first byte: 0x16 is a TLS handshake, an upper-case ASCII letter an HTTP method. */
export function sniffProtocol(first: number): Protocol {
  if (first === TLS_HANDSHAKE) return 'tls';
  if (first >= 0x41 && first <= 0x5a) return 'http';
  return 'unknown';
}

export type ClientHelloResult =
  | { status: 'need_more' }
  /** `sni` is the lower-cased host_name, or null when the ClientHello carries none; `alpn` the
   * protocols the client offers (application_layer_protocol_negotiation), in its order. */
  | { status: 'ok'; sni: string | null; alpn: string[] };

const parseError = (message: string) => new CelgateError('E_PARSE', `TLS ClientHello: ${message}`);

/** Joins the fragments of the handshake records at the start of `buf`; null when more bytes are needed. */
function reassembleHandshake(buf: Buffer): Buffer | null {
  const fragments: Buffer[] = [];
  let have = 0;
  let need = -1;
  let off = 0;
  for (;;) {
    if (need >= 0 && have >= need) return Buffer.concat(fragments).subarray(0, need);
    if (buf.length < off + 5) return null;
    if (buf[off] !== TLS_HANDSHAKE)
      throw parseError(`expected a handshake record, got content type ${buf[off]}`);
    if (buf[off + 1] !== 0x03) throw parseError('unsupported record version');
    const len = buf.readUInt16BE(off + 3);
    if (len === 0 || len > 16384 + 2048) throw parseError(`invalid record length ${len}`);
    if (buf.length < off + 5 + len) return null;
    fragments.push(buf.subarray(off + 5, off + 5 + len));
    have += len;
    off += 5 + len;
    if (need < 0 && have >= 4) {
      const head = Buffer.concat(fragments);
      if (head[0] !== HANDSHAKE_CLIENT_HELLO)
        throw parseError(`expected ClientHello, got handshake type ${head[0]}`);
      const bodyLen = head.readUIntBE(1, 3);
      if (bodyLen + 4 > MAX_CLIENT_HELLO_BYTES) {
        throw new CelgateError(
          'E_LIMIT',
          `TLS ClientHello larger than ${MAX_CLIENT_HELLO_BYTES} bytes`,
        );
      }
      need = bodyLen + 4;
    }
    if (off > MAX_CLIENT_HELLO_BYTES + 5 * 8)
      throw new CelgateError('E_LIMIT', 'TLS ClientHello spread over too many records');
  }
}

/** A bounds-checked cursor over one handshake message. */
class Cursor {
  constructor(
    private readonly b: Buffer,
    public off = 0,
    private readonly end = b.length,
  ) {}
  need(n: number, what: string): void {
    if (this.off + n > this.end) throw parseError(`truncated ${what}`);
  }
  u8(what: string): number {
    this.need(1, what);
    return this.b[this.off++]!;
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.b.readUInt16BE(this.off);
    this.off += 2;
    return v;
  }
  bytes(n: number, what: string): Buffer {
    this.need(n, what);
    const v = this.b.subarray(this.off, this.off + n);
    this.off += n;
    return v;
  }
  sub(n: number, what: string): Cursor {
    this.need(n, what);
    const c = new Cursor(this.b, this.off, this.off + n);
    this.off += n;
    return c;
  }
  get left(): number {
    return this.end - this.off;
  }
}

const HOST_NAME = /^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?$/;

function parseAlpn(ext: Cursor): string[] {
  const list = ext.sub(ext.u16('ALPN list length'), 'ALPN list');
  const out: string[] = [];
  while (list.left > 0)
    out.push(list.bytes(list.u8('ALPN protocol length'), 'ALPN protocol').toString('latin1'));
  return out;
}

function parseServerName(ext: Cursor): string | null {
  const list = ext.sub(ext.u16('server_name list length'), 'server_name list');
  while (list.left > 0) {
    const type = list.u8('server_name type');
    const name = list.bytes(list.u16('server_name length'), 'server_name');
    if (type !== SNI_HOST_NAME) continue;
    if (name.length === 0 || name.length > MAX_SNI_LENGTH)
      throw parseError(`server_name length ${name.length} out of range`);
    const host = name.toString('latin1').toLowerCase();
    if (!HOST_NAME.test(host)) throw parseError('server_name is not a valid host name');
    return host.endsWith('.') ? host.slice(0, -1) : host;
  }
  return null;
}

/**
 * Parses the ClientHello at the start of `buf` (one or more TLS handshake records) and returns its
 * SNI host name. Pure; never reads past `buf`.
 */
export function parseClientHello(buf: Buffer): ClientHelloResult {
  const msg = reassembleHandshake(buf);
  if (msg === null) return { status: 'need_more' };
  const c = new Cursor(msg, 4);
  c.u16('client_version');
  c.bytes(32, 'random');
  c.bytes(c.u8('session_id length'), 'session_id');
  c.bytes(c.u16('cipher_suites length'), 'cipher_suites');
  c.bytes(c.u8('compression_methods length'), 'compression_methods');
  if (c.left === 0) return { status: 'ok', sni: null, alpn: [] };
  const exts = c.sub(c.u16('extensions length'), 'extensions');
  let sni: string | null = null;
  let alpn: string[] = [];
  while (exts.left > 0) {
    const type = exts.u16('extension type');
    const body = exts.sub(exts.u16('extension length'), 'extension');
    if (type === EXT_SERVER_NAME) sni = parseServerName(body);
    else if (type === EXT_ALPN) alpn = parseAlpn(body);
  }
  return { status: 'ok', sni, alpn };
}
