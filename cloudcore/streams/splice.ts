import type { Duplex } from 'node:stream';

/**
 * Joins two byte streams both ways with backpressure (`pipe`). An orderly end is passed on as an end, so bytes
 * already written still arrive; an error or an abrupt close on one side destroys the other at once, unless that
 * side had already ended: then everything it sent has been passed on, and a late error (a channel stream RESET
 * after its END, a peer closing without reading our last bytes) must not cut what the other side is still
 * delivering. The other side is ended instead, and closes as its peer finishes.
 */
export function splice(a: Duplex, b: Duplex, options: SpliceOptions = {}): void {
  a.pipe(b);
  b.pipe(a);
  const follow = (self: Duplex, other: Duplex) => () => {
    if (!self.readableEnded) other.destroy();
    else if (!other.writableEnded) other.end();
  };
  a.once('close', follow(a, b));
  b.once('close', follow(b, a));
  if (options.idleTimeoutMs) watchIdle(a, b, options.idleTimeoutMs, options.onIdle);
  if (options.onBytes) {
    const onBytes = options.onBytes;
    a.on('data', (chunk: Buffer) => onBytes('ab', chunk.length));
    b.on('data', (chunk: Buffer) => onBytes('ba', chunk.length));
  }
}

export interface SpliceOptions {
  /** Both sides are destroyed when no byte went either way for this long (0 or absent: never). */
  idleTimeoutMs?: number;
  /** Called before an idle splice is destroyed. */
  onIdle?: () => void;
  /** Bytes read from `a` (`ab`) or `b` (`ba`), as they pass. */
  onBytes?: (direction: 'ab' | 'ba', bytes: number) => void;
}

/**
 * One timer per splice, not one per chunk: each chunk only stamps the time, and the timer, when it fires, sleeps
 * again for what is left of the idle time since the last stamp.
 */
function watchIdle(a: Duplex, b: Duplex, idleMs: number, onIdle: (() => void) | undefined): void {
  let last = performance.now();
  const stamp = (): void => void (last = performance.now());
  a.on('data', stamp);
  b.on('data', stamp);
  const check = (): void => {
    const left = idleMs - (performance.now() - last);
    if (left > 0) return void (timer = setTimeout(check, left).unref());
    onIdle?.();
    a.destroy();
    b.destroy();
  };
  let timer = setTimeout(check, idleMs).unref();
  const stop = (): void => clearTimeout(timer);
  a.once('close', stop);
  b.once('close', stop);
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
