import { STATUS_CODES, type ServerResponse } from 'node:http';
import { finished, type Duplex } from 'node:stream';

/** A short plain-text HTTP answer: what the kubelet writes for a refused or failed streaming request. */
export interface HttpAnswer {
  status: number;
  /** Exactly the kubelet's text (go-restful's WriteError adds no newline; Go's http.Error adds one). */
  body: string;
  headers?: Readonly<Record<string, string>>;
}

/** How long a closing connection may take to flush before it is destroyed (the kubelet's proxy gives 10 s). */
export const CLOSE_GRACE_MS = 10_000;

/**
 * Writes the answer on a raw connection that the HTTP server handed over with an upgrade request, and closes it:
 * the connection cannot go back to the server's keep-alive loop, so it says `Connection: close`.
 */
export function writeRawAnswer(socket: Duplex, answer: HttpAnswer): void {
  const body = Buffer.from(answer.body, 'utf8');
  const lines = [
    `HTTP/1.1 ${answer.status} ${STATUS_CODES[answer.status] ?? ''}`,
    'Content-Type: text/plain; charset=utf-8',
    'X-Content-Type-Options: nosniff',
    ...Object.entries(answer.headers ?? {}).map(([name, value]) => `${name}: ${value}`),
    `Content-Length: ${body.length}`,
    'Connection: close',
  ];
  endThenDestroy(socket, Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), body]));
}

/** The same answer through the HTTP server, for a request without upgrade. */
export function sendAnswer(res: ServerResponse, answer: HttpAnswer): void {
  res.writeHead(answer.status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'X-Content-Type-Options': 'nosniff',
    ...answer.headers,
    'Content-Length': Buffer.byteLength(answer.body),
  });
  res.end(answer.body);
}

/**
 * Ends the write side (after `last`) and lets the stream close once the peer has ended its side too, reading and
 * dropping what it still sends; destroys it after CLOSE_GRACE_MS. Destroying as soon as the write side is flushed
 * would abort a connection the peer is still in: a dynamic channel stream then sends RESET, and the cloud drops the
 * bytes it has received but not yet passed on, as a TCP RST would (docs/performance.md, streams: lost exec output).
 */
export function endThenDestroy(stream: Duplex, last?: Buffer): void {
  if (stream.destroyed) return;
  const timer = setTimeout(() => stream.destroy(), CLOSE_GRACE_MS).unref();
  stream.once('close', () => clearTimeout(timer));
  finished(stream, () => stream.destroy());
  stream.resume();
  if (!stream.writableEnded) {
    if (last) stream.end(last);
    else stream.end();
  }
}
