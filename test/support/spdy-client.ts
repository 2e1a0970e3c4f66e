import { connect, type Socket } from 'node:net';
import { deflateSync } from 'node:zlib';

// A minimal SPDY/3.1 client (draft-mbelshe-httpbis-spdy-00 §2) for tests: the client half of what kubectl and
// the API server speak to a kubelet for exec, attach and port-forward (moby/spdystream on the other side). It
// opens streams (SYN_STREAM), sends DATA, and collects every stream's DATA until FIN or RST. It reads no
// header block: stream ids are all a test needs from the server's SYN_REPLY frames.

// The SPDY/3 header compression dictionary (§2.6.10.1): 65 length-prefixed words, then a plain tail.
const DICTIONARY_WORDS = [
  'options', 'head', 'post', 'put', 'delete', 'trace', 'accept', 'accept-charset', 'accept-encoding', 'accept-language',
  'accept-ranges', 'age', 'allow', 'authorization', 'cache-control', 'connection', 'content-base', 'content-encoding',
  'content-language', 'content-length', 'content-location', 'content-md5', 'content-range', 'content-type', 'date', 'etag',
  'expect', 'expires', 'from', 'host', 'if-match', 'if-modified-since', 'if-none-match', 'if-range', 'if-unmodified-since',
  'last-modified', 'location', 'max-forwards', 'pragma', 'proxy-authenticate', 'proxy-authorization', 'range', 'referer',
  'retry-after', 'server', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'user-agent', 'vary', 'via', 'warning',
  'www-authenticate', 'method', 'get', 'status', '200 OK', 'version', 'HTTP/1.1', 'url', 'public', 'set-cookie', 'keep-alive',
  'origin',
]; // prettier-ignore
const DICTIONARY_TAIL =
  '100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505' +
  '203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized' +
  '403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable' +
  'Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT' +
  'chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,' +
  'text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.';

export const SPDY_DICTIONARY = Buffer.concat([
  ...DICTIONARY_WORDS.flatMap((w) => [u32(w.length), Buffer.from(w, 'latin1')]),
  Buffer.from(DICTIONARY_TAIL, 'latin1'),
]);

const TYPE_SYN_STREAM = 1;
const TYPE_SYN_REPLY = 2;
const TYPE_RST_STREAM = 3;
const TYPE_PING = 6;
const FLAG_FIN = 0x01;
const SYNC_FLUSH_MARKER = Buffer.from([0x00, 0x00, 0x00, 0xff, 0xff]);

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** A stream as the client saw it. */
export interface SpdyStream {
  id: number;
  data: Buffer;
  /** The server sent SYN_REPLY. */
  replied: boolean;
  /** The server half-closed it (FIN) or reset it. */
  ended: boolean;
  rstStatus?: number;
}

/** The SPDY client over a connection whose HTTP upgrade already got its 101. */
export class SpdyTestClient {
  private nextId = 1;
  private compressed = false;
  private pending = Buffer.alloc(0);
  private readonly streams = new Map<number, SpdyStream>();
  /** Settles when the connection is closed. */
  readonly closed: Promise<void>;

  constructor(
    readonly socket: Socket,
    leftover: Buffer,
  ) {
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    if (leftover.length > 0) this.receive(leftover);
  }

  /** SYN_STREAM with these headers; returns the new stream's id. */
  open(headers: Record<string, string>, options: { fin?: boolean } = {}): number {
    const id = this.nextId;
    this.nextId += 2;
    this.streams.set(id, { id, data: Buffer.alloc(0), replied: false, ended: false });
    const block = this.headerBlock(headers);
    const body = Buffer.concat([u32(id), u32(0), Buffer.from([0, 0]), block]);
    this.socket.write(Buffer.concat([controlHeader(TYPE_SYN_STREAM, options.fin ? FLAG_FIN : 0, body.length), body]));
    return id;
  }

  send(id: number, data: Buffer | string, options: { fin?: boolean } = {}): void {
    const payload = Buffer.from(data);
    const head = Buffer.alloc(8);
    head.writeUInt32BE(id & 0x7fffffff, 0);
    head.writeUInt32BE(((options.fin ? FLAG_FIN : 0) << 24) | payload.length, 4);
    this.socket.write(Buffer.concat([head, payload]));
  }

  stream(id: number): SpdyStream {
    return this.streams.get(id)!;
  }

  close(): void {
    this.socket.destroy();
  }

  // A zlib stream that continues over the connection (§2.6.10.1), written as stored blocks: the first block
  // carries the zlib header naming the dictionary (FDICT + its Adler-32); each header block is a stored block
  // followed by an empty one, the marker a compressor's Z_SYNC_FLUSH writes (Go's flate reader hands out the
  // data of a block only once it has read the next block's header, which must be inside the same frame).
  private headerBlock(headers: Record<string, string>): Buffer {
    const pairs = Object.entries(headers).flatMap(([name, value]) => [str(name.toLowerCase()), str(value)]);
    const raw = Buffer.concat([u32(Object.keys(headers).length), ...pairs]);
    const stored = Buffer.alloc(5);
    stored.writeUInt16LE(raw.length, 1);
    stored.writeUInt16LE(~raw.length & 0xffff, 3);
    const prefix = this.compressed ? Buffer.alloc(0) : deflateSync(Buffer.alloc(0), { dictionary: SPDY_DICTIONARY }).subarray(0, 6);
    this.compressed = true;
    return Buffer.concat([prefix, stored, raw, SYNC_FLUSH_MARKER]);
  }

  private receive(chunk: Buffer): void {
    this.pending = Buffer.concat([this.pending, chunk]);
    while (this.pending.length >= 8) {
      const length = this.pending.readUInt32BE(4) & 0xffffff;
      if (this.pending.length < 8 + length) return;
      const frame = this.pending.subarray(0, 8 + length);
      this.pending = this.pending.subarray(8 + length);
      this.frame(frame);
    }
  }

  private frame(frame: Buffer): void {
    const flags = frame[4]!;
    const payload = frame.subarray(8);
    if ((frame[0]! & 0x80) === 0) {
      const s = this.streams.get(frame.readUInt32BE(0) & 0x7fffffff);
      if (!s) return;
      s.data = Buffer.concat([s.data, payload]);
      if (flags & FLAG_FIN) s.ended = true;
      return;
    }
    const type = frame.readUInt16BE(2);
    const s = payload.length >= 4 ? this.streams.get(payload.readUInt32BE(0) & 0x7fffffff) : undefined;
    if (type === TYPE_SYN_REPLY && s) {
      s.replied = true;
      if (flags & FLAG_FIN) s.ended = true;
    } else if (type === TYPE_RST_STREAM && s) {
      s.ended = true;
      s.rstStatus = payload.readUInt32BE(4);
    } else if (type === TYPE_PING) {
      this.socket.write(frame); // a PING is answered with itself
    }
  }
}

function str(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  return Buffer.concat([u32(b.length), b]);
}

function controlHeader(type: number, flags: number, length: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt16BE(0x8000 | 3, 0);
  b.writeUInt16BE(type, 2);
  b.writeUInt32BE((flags << 24) | length, 4);
  return b;
}

/** An HTTP/1.1 response head as read off a raw connection. */
export interface RawResponse {
  status: number;
  headers: Array<[string, string]>;
  /** Bytes after the head (the body, or the first SPDY frames after a 101). */
  rest: Buffer;
  socket: Socket;
}

/**
 * Sends one HTTP/1.1 request on a new connection and reads the response head (nothing else is parsed).
 * `early` is written right after the head, in the same write, as a client that does not wait for the 101.
 */
export function rawRequest(port: number, method: string, path: string, headers: Array<[string, string]>, early = ''): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let received = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      socket.pause();
      const [statusLine, ...lines] = received.subarray(0, end).toString('latin1').split('\r\n');
      const parsed = lines.map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()] as [string, string]);
      resolve({ status: Number(statusLine!.split(' ')[1]), headers: parsed, rest: received.subarray(end + 4), socket });
    };
    socket.on('data', onData);
    socket.on('error', reject);
    socket.once('close', () => reject(new Error(`connection closed before a response head (${received.length} bytes)`)));
    const head = [`${method} ${path} HTTP/1.1`, 'Host: 127.0.0.1', ...headers.map(([n, v]) => `${n}: ${v}`)].join('\r\n');
    socket.write(`${head}\r\n\r\n${early}`);
  });
}

/** The whole body of a response whose connection closes after it. */
export function readToClose(response: RawResponse): Promise<string> {
  return new Promise((resolve) => {
    const chunks = [response.rest];
    response.socket.on('data', (c: Buffer) => chunks.push(c));
    response.socket.once('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
    response.socket.resume();
  });
}
