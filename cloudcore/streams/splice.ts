import type { Duplex } from 'node:stream';

/**
 * Joins two byte streams both ways with backpressure (`pipe`). An orderly end is passed on as an end, so bytes
 * already written still arrive; an error or an abrupt close on one side destroys the other at once.
 */
export function splice(a: Duplex, b: Duplex): void {
  a.pipe(b);
  b.pipe(a);
  const follow = (self: Duplex, other: Duplex) => () => {
    if (self.errored || !self.readableEnded) other.destroy();
    else other.end();
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
