/**
 * Socket glue for the guest side of the MCP gateway: a framed vsock connection (many streams, one
 * McpSession each) and an NDJSON connection (one session). Thin: bytes go through the sans-io
 * codecs, payloads to the session, replies back as frames/lines. Hostile input closes the stream
 * (or, when framing itself is lost, the connection) and the reason is reported to `onClose`.
 */
import type { Duplex } from 'node:stream';
import {
  FrameDecoder,
  FrameKind,
  MAX_PAYLOAD_BYTES,
  decodeUtf8,
  encodeClose,
  encodeData,
} from './frame.js';
import type { McpGateway } from './gateway.js';
import { RpcCode, errorResponse, isJsonObject, type Json } from './jsonrpc.js';
import { NdjsonDecoder } from './ndjson.js';
import { McpSession } from './session.js';

/** Most concurrently open streams on one connection. */
export const MAX_STREAMS_PER_CONNECTION = 64;
/** How long a started frame may stay incomplete before the connection is closed (`slow_frame`). */
export const FRAME_TIMEOUT_MS = 30_000;
/** Reply bytes a guest may leave unread before celgate stops reading its requests. */
export const MAX_UNREAD_REPLY_BYTES = 4 * 1024 * 1024;
/** Most distinct stream ids one connection may use over its life (ids are not reused). */
export const MAX_STREAM_IDS_PER_CONNECTION = 4096;

export interface StreamClosed {
  streamId: number | null;
  /** Machine reason: a FrameErrorReason, json_too_deep, invalid_utf8, too_many_streams, … */
  reason: string;
  message: string;
  process_name: string;
  /** Whether the guest's protocol error caused it (false for a normal close). */
  hostile: boolean;
}

export type OnStreamClosed = (info: StreamClosed) => void;

/** Serialises one outgoing message; an over-limit reply becomes a -32000 error for the same id. */
function serialise(message: Json): string {
  const text = JSON.stringify(message);
  if (Buffer.byteLength(text) <= MAX_PAYLOAD_BYTES) return text;
  const id =
    isJsonObject(message) && (typeof message.id === 'string' || typeof message.id === 'number')
      ? message.id
      : null;
  return JSON.stringify(
    errorResponse(id, {
      code: RpcCode.SERVER_ERROR,
      message: `the reply exceeds the ${MAX_PAYLOAD_BYTES}-byte frame limit`,
      data: { reason: 'oversize_reply' },
    }),
  );
}

/** Serves one framed connection (vsock port 5003). */
export function serveFramed(
  gw: McpGateway,
  socket: Duplex,
  processName: string,
  head: Buffer,
  onClose?: OnStreamClosed,
  frameTimeoutMs: number = FRAME_TIMEOUT_MS,
): void {
  const decoder = new FrameDecoder();
  let slow: NodeJS.Timeout | undefined;
  const streams = new Map<number, McpSession>();
  const used = new Set<number>();
  let dead = false;

  const write = (buf: Buffer) => {
    if (dead || !socket.writable) return;
    // A guest that does not read its replies stops being read (bounded memory), until it drains.
    if (!socket.write(buf) && socket.writableLength > MAX_UNREAD_REPLY_BYTES) socket.pause();
  };
  socket.on('drain', () => socket.resume());
  const open = (id: number, name: string): McpSession | null => {
    if (used.has(id)) return null;
    if (streams.size >= MAX_STREAMS_PER_CONNECTION || used.size >= MAX_STREAM_IDS_PER_CONNECTION) {
      write(encodeClose(id, 'too_many_streams'));
      onClose?.({
        streamId: id,
        reason: 'too_many_streams',
        message: `more than ${MAX_STREAMS_PER_CONNECTION} open streams`,
        process_name: name,
        hostile: true,
      });
      used.add(id);
      return null;
    }
    used.add(id);
    const session = new McpSession(gw, name, (m) => write(encodeData(id, serialise(m))));
    streams.set(id, session);
    return session;
  };
  const closeStream = (
    id: number,
    reason: string,
    message: string,
    hostile: boolean,
    tell: boolean,
  ) => {
    const s = streams.get(id);
    if (!s) return;
    streams.delete(id);
    s.close();
    if (tell) write(encodeClose(id, reason));
    onClose?.({ streamId: id, reason, message, process_name: s.processName, hostile });
  };
  /** Framing is lost: close every stream with the reason (or record it once when none is open). */
  const kill = (reason: string, message: string, streamId: number | null) => {
    clearTimeout(slow);
    if (dead) return;
    const ids = [...streams.keys()];
    for (const id of ids) closeStream(id, reason, message, true, true);
    if (ids.length === 0)
      onClose?.({ streamId, reason, message, process_name: processName, hostile: true });
    dead = true;
    socket.end();
  };

  const onBytes = (chunk: Buffer) => {
    if (dead) return;
    const { frames, error } = decoder.push(chunk);
    for (const f of frames) {
      if (f.kind === FrameKind.OPEN) {
        if (used.has(f.streamId))
          closeStream(
            f.streamId,
            'stream_reopened',
            'OPEN for a stream id already used',
            true,
            true,
          );
        else open(f.streamId, f.processName || processName);
      } else if (f.kind === FrameKind.CLOSE) {
        closeStream(f.streamId, 'closed_by_guest', f.reason, false, false);
      } else {
        const session = streams.get(f.streamId) ?? open(f.streamId, processName);
        if (!session) continue; // a stream closed earlier: its frames are dropped
        const text = decodeUtf8(f.payload);
        if (text === null) {
          closeStream(f.streamId, 'invalid_utf8', 'DATA payload is not valid UTF-8', true, true);
          continue;
        }
        const fatal = session.handlePayload(text);
        if (fatal !== null)
          closeStream(f.streamId, fatal, `payload rejected: ${fatal}`, true, true);
      }
    }
    if (error) return kill(error.reason, error.message, error.streamId);
    // A frame started but not finished must complete within the bound (slow-loris guard); the clock
    // restarts whenever a frame completes, so a busy stream is never cut off.
    if (decoder.buffered === 0 || frames.length > 0) {
      clearTimeout(slow);
      slow = undefined;
    }
    if (decoder.buffered > 0 && slow === undefined) {
      slow = setTimeout(
        () => kill('slow_frame', `a frame stayed incomplete for ${frameTimeoutMs} ms`, null),
        frameTimeoutMs,
      );
      slow.unref();
    }
  };

  socket.on('data', onBytes);
  socket.on('end', () => {
    const err = decoder.end();
    if (err && !dead) kill(err.reason, err.message, err.streamId);
    dead = true;
    for (const id of [...streams.keys()])
      closeStream(id, 'connection_closed', 'the guest closed the connection', false, false);
    socket.end();
  });
  socket.on('close', () => {
    clearTimeout(slow);
    dead = true;
    for (const id of [...streams.keys()])
      closeStream(id, 'connection_closed', 'the connection closed', false, false);
  });
  socket.on('error', () => {});
  if (head.length > 0) onBytes(head);
  (socket as Duplex & { resume?: () => void }).resume?.();
}

/** Serves one newline-delimited JSON-RPC connection (guest-side relay, local tools): one session. */
export function serveNdjson(
  gw: McpGateway,
  socket: Duplex,
  processName: string,
  head: Buffer,
  onClose?: OnStreamClosed,
  lineTimeoutMs: number = FRAME_TIMEOUT_MS,
): void {
  const decoder = new NdjsonDecoder();
  let dead = false;
  let slow: NodeJS.Timeout | undefined;
  const session = new McpSession(gw, processName, (m) => {
    if (dead || !socket.writable) return;
    if (!socket.write(`${serialise(m)}\n`) && socket.writableLength > MAX_UNREAD_REPLY_BYTES)
      socket.pause();
  });
  socket.on('drain', () => socket.resume());
  const stop = (reason: string, message: string, hostile: boolean) => {
    clearTimeout(slow);
    if (dead) return;
    dead = true;
    session.close();
    onClose?.({ streamId: null, reason, message, process_name: processName, hostile });
    socket.end();
  };
  const onBytes = (chunk: Buffer) => {
    if (dead) return;
    const { lines, error } = decoder.push(chunk);
    for (const line of lines) {
      const fatal = session.handlePayload(line);
      if (fatal !== null) return stop(fatal, `payload rejected: ${fatal}`, true);
    }
    if (error) return stop(error.reason, error.message, true);
    if (decoder.buffered === 0 || lines.length > 0) {
      clearTimeout(slow);
      slow = undefined;
    }
    if (decoder.buffered > 0 && slow === undefined) {
      slow = setTimeout(
        () => stop('slow_frame', `a line stayed incomplete for ${lineTimeoutMs} ms`, true),
        lineTimeoutMs,
      );
      slow.unref();
    }
  };
  socket.on('data', onBytes);
  socket.on('end', () => {
    const err = decoder.end();
    if (err) stop(err.reason, err.message, true);
    else stop('connection_closed', 'the client closed the connection', false);
  });
  socket.on('close', () => stop('connection_closed', 'the connection closed', false));
  socket.on('error', () => {});
  if (head.length > 0) onBytes(head);
}
