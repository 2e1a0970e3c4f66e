import type { Socket } from 'node:net';

export type DeadlineStage = 'tls handshake' | 'request';

/**
 * One deadline per accepted connection, from TCP accept until the server has what it waits for (the hub: the
 * upgrade request; the certificate server: a request's headers). Node's own HTTP timeouts start only at the
 * first request byte and are checked every 30 s, so a client that finishes TLS and then stays silent or drips
 * headers was held for 60-90 s. Keyed by the peer's address:port, unique while its TCP connection lives, so a
 * TLS socket finds the entry its TCP socket created.
 */
export class ConnectionDeadlines {
  private readonly pending = new Map<string, { timer: NodeJS.Timeout; socket: Socket; secure: boolean }>();

  constructor(
    private readonly timeoutMs: number,
    private readonly onExpired: (peer: string, stage: DeadlineStage) => void,
  ) {}

  /** At TCP accept. */
  arm(socket: Socket): void {
    // Already gone (reset before the server saw it): nothing to wait for.
    if (socket.remoteAddress === undefined) return;
    const peer = peerOf(socket);
    const timer = setTimeout(() => {
      const stage = this.pending.get(peer)?.secure ? 'request' : 'tls handshake';
      this.pending.delete(peer);
      this.onExpired(peer, stage);
      socket.destroy();
    }, this.timeoutMs);
    this.pending.set(peer, { timer, socket, secure: false });
    socket.once('close', () => this.settle(socket));
  }

  /** TLS is done: what remains is the request. */
  secured(socket: Socket): void {
    const entry = this.pending.get(peerOf(socket));
    if (entry) entry.secure = true;
  }

  /** The awaited request arrived, or the connection ended. */
  settle(socket: Socket): void {
    const peer = peerOf(socket);
    const entry = this.pending.get(peer);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.pending.delete(peer);
  }

  /** At server close: connections still in their handshake are not worth waiting for. */
  destroyAll(): void {
    for (const { socket } of this.pending.values()) socket.destroy();
  }
}

export const peerOf = (socket: Socket): string => `${socket.remoteAddress}:${socket.remotePort}`;
