/**
 * The upstream pool's response parser when llhttp is unavailable (llhttp.ts: `_http_common`
 * missing or changed): a strict HTTP/1.1 response parser on public APIs only, with the same
 * callback slots and results as llhttp's (`execute` returns the bytes parsed or an Error with an
 * HPE_* `code`), so the one upstream client keeps working on the fallback path. Strict where
 * smuggling lives: one Content-Length (repeats must agree), never both it and Transfer-Encoding,
 * no obs-fold, token header names, hex chunk sizes only.
 *
 * Owns: parsing upstream responses without llhttp. Must not: be used while llhttp works (the
 * direct path and the pool use llhttp then).
 */
import type { HTTPParser as Parser, OnHeadersComplete, ParseError } from './llhttp.js';

const K_ON_HEADERS = 1;
const K_ON_HEADERS_COMPLETE = 2;
const K_ON_BODY = 3;
const K_ON_MESSAGE_COMPLETE = 4;

const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: ([^\r\n]*))?$/;
/** A header line; values hold no control characters but tab (checked by `hasControl`). */
const HEADER_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/;

function hasControl(v: string): boolean {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return true;
  }
  return false;
}
const CHUNK_SIZE = /^([0-9a-fA-F]{1,12})[ \t]*(?:;[^\r\n]*)?$/;

type State = 'head' | 'sized' | 'chunk-size' | 'chunk-data' | 'chunk-crlf' | 'trailers' | 'eof';

function parseError(code: string, reason: string, at: number): ParseError {
  return Object.assign(new Error(`Parse Error: ${reason}`), { code, reason, bytesParsed: at });
}

export class FallbackResponseParser {
  [K_ON_HEADERS]: (h: string[]) => void = () => {};
  [K_ON_HEADERS_COMPLETE]: OnHeadersComplete = () => 0;
  [K_ON_BODY]: (b: Buffer) => void = () => {};
  [K_ON_MESSAGE_COMPLETE]: () => void = () => {};
  private state: State = 'head';
  /** Bytes of a line (status line, header, chunk size, trailer) not yet complete. */
  private line = '';
  private headLines: string[] = [];
  private headBytes = 0;
  private left = 0;
  private trailers: string[] = [];
  private maxHeaderSize = 16 * 1024;

  initialize(_type: number, _resource: object, maxHeaderSize: number): void {
    this.maxHeaderSize = maxHeaderSize;
  }

  close(): void {}

  execute(data: Buffer): number | ParseError {
    let i = 0;
    while (i < data.length) {
      const s = this.state;
      if (s === 'sized' || s === 'chunk-data') {
        const n = Math.min(this.left, data.length - i);
        this[K_ON_BODY](data.subarray(i, i + n));
        i += n;
        this.left -= n;
        if (this.left === 0) {
          if (s === 'sized') this.complete();
          else this.state = 'chunk-crlf';
        }
        continue;
      }
      if (s === 'eof') {
        this[K_ON_BODY](data.subarray(i));
        return data.length;
      }
      // A line-oriented state: read up to LF.
      const lf = data.indexOf(10, i);
      const end = lf < 0 ? data.length : lf;
      this.line += data.toString('latin1', i, end);
      this.headBytes += end - i;
      if (this.headBytes > this.maxHeaderSize)
        return parseError('HPE_HEADER_OVERFLOW', 'header overflow', i);
      if (lf < 0) return data.length;
      i = lf + 1;
      if (!this.line.endsWith('\r')) return parseError('HPE_LF_EXPECTED', 'bare LF', i);
      const line = this.line.slice(0, -1);
      this.line = '';
      const r = this.onLine(line, i);
      if (r === 'upgrade') return i;
      if (r !== null) return r;
    }
    return data.length;
  }

  /** The end of input: completes a body delimited by the connection's close, else an error. */
  finish(): ParseError | undefined {
    if (this.state === 'eof') {
      this.complete();
      return undefined;
    }
    if (this.state === 'head' && this.line === '' && this.headLines.length === 0) return undefined;
    return parseError('HPE_INVALID_EOF_STATE', 'connection closed mid-message', 0);
  }

  private onLine(line: string, at: number): ParseError | 'upgrade' | null {
    switch (this.state) {
      case 'head':
        if (line !== '') {
          this.headLines.push(line);
          return null;
        }
        return this.onHead(at);
      case 'chunk-size': {
        const m = CHUNK_SIZE.exec(line);
        if (m === null) return parseError('HPE_INVALID_CHUNK_SIZE', 'invalid chunk size', at);
        this.left = parseInt(m[1]!, 16);
        this.state = this.left === 0 ? 'trailers' : 'chunk-data';
        this.headBytes = 0;
        return null;
      }
      case 'chunk-crlf':
        if (line !== '') return parseError('HPE_STRICT', 'missing CRLF after chunk', at);
        this.state = 'chunk-size';
        this.headBytes = 0;
        return null;
      case 'trailers':
        if (line !== '') {
          const m = HEADER_LINE.exec(line);
          if (m === null || hasControl(m[2]!))
            return parseError('HPE_INVALID_HEADER_TOKEN', 'invalid trailer', at);
          this.trailers.push(m[1]!, m[2]!);
          return null;
        }
        if (this.trailers.length > 0) this[K_ON_HEADERS](this.trailers);
        this.trailers = [];
        this.complete();
        return null;
      default:
        return null;
    }
  }

  private onHead(at: number): ParseError | 'upgrade' | null {
    const [statusLine, ...lines] = this.headLines;
    this.headLines = [];
    const sm = STATUS_LINE.exec(statusLine ?? '');
    if (sm === null) return parseError('HPE_INVALID_CONSTANT', 'invalid status line', at);
    const minor = Number(sm[1]);
    const status = Number(sm[2]);
    const raw: string[] = [];
    let length: number | null = null;
    let chunked = false;
    let te = false;
    let connection = '';
    for (const l of lines) {
      const m = HEADER_LINE.exec(l);
      if (m === null || hasControl(m[2]!))
        return parseError('HPE_INVALID_HEADER_TOKEN', 'invalid header', at);
      const name = m[1]!.toLowerCase();
      const value = m[2]!;
      raw.push(m[1]!, value);
      if (name === 'content-length') {
        if (!/^\d{1,15}$/.test(value) || (length !== null && length !== Number(value)))
          return parseError('HPE_UNEXPECTED_CONTENT_LENGTH', 'invalid Content-Length', at);
        length = Number(value);
      } else if (name === 'transfer-encoding') {
        te = true;
        chunked = /(?:^|,)\s*chunked\s*$/i.test(value);
      } else if (name === 'connection') connection += `,${value.toLowerCase()}`;
    }
    if (te && length !== null)
      return parseError(
        'HPE_UNEXPECTED_CONTENT_LENGTH',
        'Content-Length with Transfer-Encoding',
        at,
      );
    const tokens = connection.split(',').map((t) => t.trim());
    const upgrade = status === 101;
    const delimited = chunked || length !== null;
    const keepAlive =
      (minor === 1 ? !tokens.includes('close') : tokens.includes('keep-alive')) &&
      (delimited || status < 200 || status === 204 || status === 304);
    const r = this[K_ON_HEADERS_COMPLETE](
      1,
      minor,
      raw,
      null,
      null,
      status,
      sm[3] ?? '',
      upgrade,
      keepAlive,
    );
    this.headBytes = 0;
    if (r === 2 || upgrade) {
      this.complete();
      return 'upgrade';
    }
    if (r === 1 || status < 200 || status === 204 || status === 304) this.complete();
    else if (chunked) this.state = 'chunk-size';
    else if (length !== null) {
      this.left = length;
      if (length === 0) this.complete();
      else this.state = 'sized';
    } else this.state = 'eof';
    return null;
  }

  private complete(): void {
    this.state = 'head';
    this.headBytes = 0;
    this[K_ON_MESSAGE_COMPLETE]();
  }
}

/** The fallback parser in llhttp's shape. */
export function fallbackResponseParser(maxHeaderSize: number): Parser {
  const p = new FallbackResponseParser();
  p.initialize(2, {}, maxHeaderSize);
  return p as unknown as Parser;
}
