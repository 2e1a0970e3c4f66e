import type { ChannelSession } from './session.js';

/** What a reliable sender drains: the cloud's per-node outbox, the edge's durable upstream outbox. */
export interface SendQueue<T> {
  /** The next item to send, or undefined when nothing waits. */
  next(): T | undefined;
  /** The item as it goes on the wire (an encoded envelope). */
  bytes(item: T): Uint8Array;
  /** The item is on the wire and waits for its ACK. */
  sent?(item: T): void;
  /** The sender stopped asking (window full, or nothing left): drop any read-ahead. */
  paused?(): void;
}

/**
 * Sends a queue's items on one stream as far as the stream's window allows and keeps each one until the peer
 * ACKs it. Items leave the queue only through `acked`; after a reconnect a new sender starts from what the
 * queue still holds. The cloud outbox and the edge outbox share it, so both count in-flight work one way.
 */
export class ReliableSender<T> {
  // Created on demand: most of 10,000 connected nodes have nothing in flight.
  private inflight: Map<number, T> | undefined;

  constructor(
    private readonly channel: ChannelSession,
    private readonly stream: number,
    private readonly queue: SendQueue<T>,
  ) {}

  pump(): void {
    while (this.channel.status === 'open' && this.channel.writable(this.stream)) {
      const item = this.queue.next();
      if (item === undefined) break;
      const seq = this.channel.write(this.stream, this.queue.bytes(item));
      (this.inflight ??= new Map()).set(seq, item);
      this.queue.sent?.(item);
    }
    this.queue.paused?.();
  }

  /** The peer has everything up to `cumulative` and the listed seqs; returns those items in the order sent. */
  acked(cumulative: number, selective: readonly number[] = []): T[] {
    const inflight = this.inflight;
    const done: T[] = [];
    if (!inflight) return done;
    // Map iteration follows insertion, and seqs are inserted in increasing order.
    if (cumulative > 0) {
      for (const [seq, item] of inflight) {
        if (seq > cumulative) break;
        inflight.delete(seq);
        done.push(item);
      }
    }
    for (const seq of selective) {
      const item = inflight.get(seq);
      if (item === undefined) continue;
      inflight.delete(seq);
      done.push(item);
    }
    if (inflight.size === 0) this.inflight = undefined;
    return done;
  }

  /** The item sent longest ago and not yet ACKed. */
  oldest(): T | undefined {
    return this.inflight?.values().next().value;
  }

  get inflightCount(): number {
    return this.inflight?.size ?? 0;
  }

  /** Forgets what is in flight, so the queue's items go out again (the peer's processing is idempotent). */
  forget(): number {
    const n = this.inflightCount;
    this.inflight = undefined;
    return n;
  }
}
