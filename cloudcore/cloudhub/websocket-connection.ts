// The server half of RFC 6455 that the hub needs, written for memory: an idle connection holds this one object
// and one bound listener. The `ws` library costs ~4.4 KiB per idle connection (a Writable stream receiver, a
// sender, listener arrays), a tenth of the 40 KiB budget per edge; the edge side keeps using `ws` as client.
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Transport } from '../../shared/channel/session.js';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const OP_CONTINUATION = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;

export const WsClose = { normal: 1000, protocol: 1002, tooBig: 1009 } as const;

/** The 101 response for a valid upgrade request, or the reason it is not one (answered with 400). */
export function acceptUpgrade(req: IncomingMessage): { response: string } | { error: string } {
  const key = req.headers['sec-websocket-key'];
  if (req.method !== 'GET') return { error: `method ${req.method} cannot upgrade` };
  if (String(req.headers.upgrade).toLowerCase() !== 'websocket') return { error: 'Upgrade header is not "websocket"' };
  if (req.headers['sec-websocket-version'] !== '13') return { error: 'Sec-WebSocket-Version must be 13' };
  if (typeof key !== 'string' || Buffer.from(key, 'base64').length !== 16) return { error: 'Sec-WebSocket-Key must be 16 bytes in base64' };
  const accept = createHash('sha1')
    .update(key + GUID)
    .digest('base64');
  // No extensions are offered back, so permessage-deflate (and its per-connection zlib state) never starts.
  return { response: `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n` };
}

export interface WebSocketEvents {
  /** One complete message; `text` for a text message, which the channel refuses. */
  onSocketMessage(data: Buffer, text: boolean): void;
  /** The peer broke RFC 6455 (or sent too much); the connection closes with `code` right after. */
  onSocketViolation(code: number, reason: string): void;
  /** Exactly once. `code` is the peer's close code, 1006 for an abrupt end, or ours after a violation. */
  onSocketClose(code: number, reason: string): void;
}

/** A server-side WebSocket over an upgraded socket, implementing the channel's Transport. */
export class WebSocketConnection implements Transport {
  private pending: Buffer | undefined;
  private fragments: Buffer[] | undefined;
  private fragmentBytes = 0;
  private fragmentText = false;
  private closeSent = false;
  private finished = false;
  events: WebSocketEvents | undefined;

  constructor(
    private readonly socket: Duplex,
    private readonly maxMessageBytes: number,
  ) {
    socket.on('data', this.onData);
    socket.on('error', () => this.finish(1006, 'socket error'));
    socket.on('close', () => this.finish(1006, ''));
  }

  send(data: Uint8Array, done: (err?: Error) => void): void {
    if (this.finished || this.closeSent) {
      queueMicrotask(() => done(new Error('websocket is closed')));
      return;
    }
    this.socket.cork();
    this.socket.write(frameHeader(OP_BINARY, data.length));
    this.socket.write(data, (err) => done(err ?? undefined));
    this.socket.uncork();
  }

  close(code: number, reason: string): void {
    this.sendClose(code, reason);
    // The peer answers with its close frame and we end then; don't wait on a peer that never does.
    setTimeout(() => this.socket.destroy(), 5_000).unref();
  }

  terminate(): void {
    this.socket.destroy();
    this.finish(1006, 'terminated');
  }

  private sendClose(code: number, reason: string): void {
    if (this.closeSent || this.finished) return;
    this.closeSent = true;
    const text = Buffer.from(reason.slice(0, 120));
    const payload = Buffer.allocUnsafe(2 + text.length);
    payload.writeUInt16BE(code, 0);
    text.copy(payload, 2);
    this.socket.write(Buffer.concat([frameHeader(OP_CLOSE, payload.length), payload]));
  }

  /** Feeds bytes that arrived with the upgrade request. */
  push(head: Buffer): void {
    if (head.length > 0) this.onData(Buffer.from(head));
  }

  private fail(code: number, reason: string): void {
    this.events?.onSocketViolation(code, reason);
    this.sendClose(code, reason);
    this.socket.end();
    this.finish(code, reason);
  }

  private finish(code: number, reason: string): void {
    if (this.finished) return;
    this.finished = true;
    this.pending = undefined;
    this.fragments = undefined;
    this.events?.onSocketClose(code, reason);
  }

  /** Parses as many complete frames as the buffered bytes hold; keeps the rest for the next chunk. */
  private readonly onData = (chunk: Buffer): void => {
    let buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = undefined;
    while (!this.finished) {
      const frame = parseFrame(buf, this.maxMessageBytes);
      if (frame === undefined) break;
      if ('error' in frame) return this.fail(frame.code, frame.error);
      buf = buf.subarray(frame.length);
      this.handleFrame(frame.opcode, frame.fin, frame.payload);
    }
    if (!this.finished && buf.length > 0) this.pending = Buffer.from(buf);
  };

  private handleFrame(opcode: number, fin: boolean, payload: Buffer): void {
    switch (opcode) {
      case OP_PING:
        if (!this.closeSent) this.socket.write(Buffer.concat([frameHeader(OP_PONG, payload.length), payload]));
        return;
      case OP_PONG:
        return;
      case OP_CLOSE: {
        const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        if (!this.closeSent) this.sendClose(code === 1005 ? WsClose.normal : code, '');
        this.socket.end();
        return this.finish(code, payload.subarray(2).toString());
      }
      case OP_TEXT:
      case OP_BINARY:
        if (this.fragments) return this.fail(WsClose.protocol, 'new message before the fragmented one ended');
        if (fin) return this.events?.onSocketMessage(payload, opcode === OP_TEXT);
        this.fragments = [Buffer.from(payload)];
        this.fragmentBytes = payload.length;
        this.fragmentText = opcode === OP_TEXT;
        return;
      case OP_CONTINUATION: {
        if (!this.fragments) return this.fail(WsClose.protocol, 'continuation frame without a message');
        this.fragmentBytes += payload.length;
        if (this.fragmentBytes > this.maxMessageBytes) return this.fail(WsClose.tooBig, `message exceeds ${this.maxMessageBytes} bytes`);
        this.fragments.push(Buffer.from(payload));
        if (!fin) return;
        const message = Buffer.concat(this.fragments, this.fragmentBytes);
        this.fragments = undefined;
        return this.events?.onSocketMessage(message, this.fragmentText);
      }
    }
  }
}

type ParsedFrame = { opcode: number; fin: boolean; payload: Buffer; length: number } | { error: string; code: number };

/** One client frame from the front of `buf`: undefined when incomplete, an error for any RFC 6455 violation. */
export function parseFrame(buf: Buffer, maxMessageBytes: number): ParsedFrame | undefined {
  if (buf.length < 2) return undefined;
  const b0 = buf[0]!;
  const b1 = buf[1]!;
  const fin = (b0 & 0x80) !== 0;
  const opcode = b0 & 0x0f;
  if ((b0 & 0x70) !== 0) return { error: 'reserved bits set (no extension was negotiated)', code: WsClose.protocol };
  if (![OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG].includes(opcode)) return { error: `unknown opcode ${opcode}`, code: WsClose.protocol };
  if ((b1 & 0x80) === 0) return { error: 'client frame is not masked', code: WsClose.protocol };
  let length = b1 & 0x7f;
  let offset = 2;
  if (length === 126) {
    if (buf.length < 4) return undefined;
    length = buf.readUInt16BE(2);
    offset = 4;
  } else if (length === 127) {
    if (buf.length < 10) return undefined;
    const high = buf.readUInt32BE(2);
    if (high > 0x1fffff) return { error: 'frame length out of range', code: WsClose.tooBig };
    length = high * 2 ** 32 + buf.readUInt32BE(6);
    offset = 10;
  }
  const control = opcode >= OP_CLOSE;
  if (control && (length > 125 || !fin)) return { error: 'control frame fragmented or longer than 125 bytes', code: WsClose.protocol };
  if (length > maxMessageBytes) return { error: `frame of ${length} bytes exceeds ${maxMessageBytes}`, code: WsClose.tooBig };
  if (buf.length < offset + 4 + length) return undefined;
  const payload = buf.subarray(offset + 4, offset + 4 + length);
  // An all-zero key (edgecore sends one, dial.ts) leaves the payload as it is.
  if (buf.readUInt32BE(offset) !== 0) unmask(payload, buf.subarray(offset, offset + 4));
  return { opcode, fin, payload, length: offset + 4 + length };
}

/** XORs `payload` with the 4-byte `mask` in place: 32 bits at a time over the aligned middle, bytes at the ends. */
export function unmask(payload: Buffer, mask: Buffer): void {
  const length = payload.length;
  // Bytes before the first 4-byte-aligned address, so that a Uint32Array can view the rest.
  const head = Math.min(length, (4 - (payload.byteOffset & 3)) & 3);
  for (let i = 0; i < head; i++) payload[i] = payload[i]! ^ mask[i & 3]!;
  const words = (length - head) >>> 2;
  if (words > 0) {
    // The key rotated to line up with the aligned start, read in the platform's byte order as the view reads.
    const key = new Uint32Array(new Uint8Array([mask[head & 3]!, mask[(head + 1) & 3]!, mask[(head + 2) & 3]!, mask[(head + 3) & 3]!]).buffer)[0]!;
    const view = new Uint32Array(payload.buffer, payload.byteOffset + head, words);
    for (let i = 0; i < words; i++) view[i]! ^= key;
  }
  for (let i = head + words * 4; i < length; i++) payload[i] = payload[i]! ^ mask[i & 3]!;
}

function frameHeader(opcode: number, length: number): Buffer {
  if (length < 126) return Buffer.from([0x80 | opcode, length]);
  if (length < 65536) {
    const header = Buffer.allocUnsafe(4);
    header[0] = 0x80 | opcode;
    header[1] = 126;
    header.writeUInt16BE(length, 2);
    return header;
  }
  const header = Buffer.allocUnsafe(10);
  header[0] = 0x80 | opcode;
  header[1] = 127;
  header.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
  header.writeUInt32BE(length >>> 0, 6);
  return header;
}
