import { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { TimeoutError } from '../../shared/errors.js';

const REASONS = { 400: 'Bad Request', 403: 'Forbidden', 502: 'Bad Gateway' } as const;

/**
 * A complete HTTP/1.1 response with a text body, as the plaintext side of a tunnel carries it: the API server reads
 * it as the kubelet's answer. 502 rather than 503, whose body the API server would not show kubectl.
 */
export function relayResponse(status: keyof typeof REASONS, text: string): string {
  const type = 'Content-Type: text/plain; charset=utf-8';
  return `HTTP/1.1 ${status} ${REASONS[status]}\r\n${type}\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`;
}

export interface RelayedStreamOptions {
  /** The connection must be up (TLS done) within this; else it fails as a refused one would. */
  connectTimeoutMs: number;
  /** The body of the 502 the stream reads as when the connection fails before it is up; also where it is logged. */
  failure(err: Error): string;
}

/**
 * One kubelet stream carried by a connection to another replica's relay, as the kubelet front expects a stream:
 * bytes both ways, an end passed on as an end, an abrupt close as a destroy. A connection that fails before it is
 * up (refused, no answer, a certificate not the replica's) reads instead as a `502 Bad Gateway` naming the replica,
 * so kubectl says why rather than seeing the tunnel cut; what the API server writes meanwhile is dropped.
 */
export class RelayedStream extends Duplex {
  private connected = false;
  private failed = false;
  private ended = false;
  /** A write waiting for the socket's drain. */
  private waiting: (() => void) | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly socket: TLSSocket,
    options: RelayedStreamOptions,
  ) {
    super();
    this.timer = setTimeout(() => socket.destroy(new TimeoutError(`no connection within ${options.connectTimeoutMs} ms`)), options.connectTimeoutMs);
    socket.once('secureConnect', () => {
      this.connected = true;
      clearTimeout(this.timer);
    });
    socket.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) socket.pause();
    });
    socket.once('end', () => {
      this.ended = true;
      this.push(null);
    });
    socket.on('error', (err) => (this.connected ? this.destroy(err) : this.fail(options.failure(err))));
    socket.once('close', () => {
      clearTimeout(this.timer);
      this.release();
      if (!this.failed && !this.ended) this.destroy();
    });
  }

  override _read(): void {
    if (!this.failed) this.socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    if (this.failed || this.socket.write(chunk)) return callback();
    this.waiting = callback;
    this.socket.once('drain', () => this.release());
  }

  override _final(callback: (err?: Error | null) => void): void {
    if (!this.failed) this.socket.end();
    callback();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    clearTimeout(this.timer);
    this.socket.destroy();
    callback(err);
  }

  private fail(body: string): void {
    if (this.failed) return;
    this.failed = true;
    this.release();
    this.push(relayResponse(502, body));
    this.push(null);
  }

  private release(): void {
    const callback = this.waiting;
    this.waiting = undefined;
    callback?.();
  }
}
