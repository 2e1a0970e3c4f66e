import type { Duplex } from 'node:stream';

/**
 * Joins two byte streams both ways with backpressure (`pipe`). An orderly end is passed on as an end, so bytes
 * already written still arrive; an error or an abrupt close on one side destroys the other at once, unless that
 * side had already ended: then everything it sent has been passed on, and a late error (a channel stream RESET
 * after its END, a peer closing without reading our last bytes) must not cut what the other side is still
 * delivering. The other side is ended instead, and closes as its peer finishes.
 */
export function splice(a: Duplex, b: Duplex): void {
  a.pipe(b);
  b.pipe(a);
  const follow = (self: Duplex, other: Duplex) => () => {
    if (!self.readableEnded) other.destroy();
    else if (!other.writableEnded) other.end();
  };
  a.once('close', follow(a, b));
  b.once('close', follow(b, a));
}

/**
 * Answers on a connection whose peer is still writing: the reply, then our end, while what the peer sends is read
 * and dropped. Closing with unread input would make the kernel send a RST, which can discard the reply before the
 * peer reads it. Destroyed after `graceMs` if the peer does not close.
 */
export function replyAndClose(socket: Duplex, reply: string, graceMs: number): void {
  const timer = setTimeout(() => socket.destroy(), graceMs);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  socket.resume();
  socket.end(reply);
}
