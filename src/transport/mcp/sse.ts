/**
 * Server-Sent Events (text/event-stream) framing for MCP over HTTPS: a sans-io decoder that cuts a
 * byte stream into events (each with its exact bytes, so an event passed on unchanged is relayed
 * byte for byte) and an encoder for the events celgate writes itself. No sockets, no clock.
 *
 * Bounded: one event may hold at most `MAX_SSE_EVENT_BYTES`; a longer one is an error (the caller
 * closes the stream rather than buffer without end).
 */

/** Largest single SSE event (one JSON-RPC message) held while it is judged. */
export const MAX_SSE_EVENT_BYTES = 4 * 1024 * 1024;

export interface SseEvent {
  /** The `event:` field ('' when absent: the default `message`). */
  event: string;
  /** The `data:` lines joined by "\n" (null when the block had no data line: comments, retry). */
  data: string | null;
  /** The `id:` field, or null. */
  id: string | null;
  /** The block exactly as received, including its blank-line terminator. */
  raw: Buffer;
}

/** Splits a stream into events. `push` returns the events completed by `chunk`. */
export class SseDecoder {
  private buf: Buffer = Buffer.alloc(0);
  private scanned = 0;

  push(chunk: Buffer): { events: SseEvent[]; error: 'oversize' | null } {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const events: SseEvent[] = [];
    let start = 0;
    for (let i = Math.max(start, this.scanned); i < this.buf.length; i++) {
      const c = this.buf[i];
      if (c !== 0x0a && c !== 0x0d) continue;
      // A line ends at \n, \r\n or \r; a block ends at an empty line.
      let next = i + 1;
      if (c === 0x0d) {
        if (next >= this.buf.length) break; // wait: \r may be followed by \n
        if (this.buf[next] === 0x0a) next++;
      }
      const n = this.buf[next];
      if (n === 0x0a || n === 0x0d) {
        let end = next + 1;
        if (n === 0x0d) {
          if (end >= this.buf.length) break;
          if (this.buf[end] === 0x0a) end++;
        }
        events.push(parseBlock(this.buf.subarray(start, end)));
        start = end;
        i = end - 1;
      } else if (next >= this.buf.length) break;
    }
    this.buf = start === 0 ? this.buf : Buffer.from(this.buf.subarray(start));
    this.scanned = Math.max(0, this.buf.length - 3);
    if (this.buf.length > MAX_SSE_EVENT_BYTES) return { events, error: 'oversize' };
    return { events, error: null };
  }

  /** Bytes of an unfinished event when the stream ends (passed on as they came). */
  rest(): Buffer {
    return this.buf;
  }
}

function parseBlock(raw: Buffer): SseEvent {
  const text = raw.toString('utf8');
  let event = '';
  let id: string | null = null;
  const data: string[] = [];
  for (const line of text.split(/\r\n|\r|\n/)) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
    else if (field === 'id') id = value;
  }
  return { event, data: data.length === 0 ? null : data.join('\n'), id, raw };
}

/** One SSE event block (`event`, `id`, then each line of `data`), blank-line terminated. */
export function encodeSseEvent(e: { event?: string; id?: string | null; data: string }): Buffer {
  let out = '';
  if (e.event !== undefined && e.event !== '') out += `event: ${e.event}\n`;
  if (e.id !== undefined && e.id !== null) out += `id: ${e.id}\n`;
  for (const line of e.data.split(/\r\n|\r|\n/)) out += `data: ${line}\n`;
  return Buffer.from(`${out}\n`);
}
