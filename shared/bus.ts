import type { Logger } from './logger.js';
import type { Message, Reply, ReplyOf } from './message.js';
import { IllegalStateError, NotFoundError, asError } from './errors.js';
import { PendingRequests } from './pending-requests.js';

export type MessageHandler<M extends Message = Message> = (message: M) => void | Promise<void>;

/**
 * A daemon's modules by name, each with the union of messages it takes (its contract, in the daemon's
 * `contracts/` folder). The bus checks every send against it, so an address or an operation cannot be misspelt.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Inboxes = { [name: string]: Message<any, any> };

export interface BusOptions {
  logger: Logger;
  /** Messages a module may have waiting before senders wait (KubeEdge's beehive uses 1024). */
  mailboxCapacity?: number;
  /** Default for `request` (beehive's 30 s). */
  requestTimeoutMs?: number;
}

/**
 * The in-process bus between modules (KubeEdge's beehive, typed): per-module FIFO mailboxes processed one
 * message at a time, and request/response correlated by `parentId`. A module's name is its only address:
 * who hears what is written in each hub's route table, not in group memberships.
 */
export class Bus<I extends Inboxes = Inboxes> {
  private readonly mailboxes = new Map<string, Mailbox>();
  private readonly pending = new PendingRequests<Message>();
  private readonly logger: Logger;
  private readonly capacity: number;
  private readonly requestTimeoutMs: number;
  private closed = false;

  constructor(options: BusOptions) {
    this.logger = options.logger;
    this.capacity = options.mailboxCapacity ?? 1024;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
  }

  register<N extends keyof I & string>(name: N, handler: MessageHandler<I[N]>): void {
    if (this.mailboxes.has(name)) throw new IllegalStateError(`module "${name}" is already registered on the bus`);
    this.mailboxes.set(name, new Mailbox(name, handler as MessageHandler, this.capacity, this.logger));
  }

  unregister(name: keyof I & string): void {
    this.mailboxes.get(name)?.close();
    this.mailboxes.delete(name);
  }

  has(name: keyof I & string): boolean {
    return this.mailboxes.has(name);
  }

  /** Queues the message for the named module; waits while its mailbox is full. */
  send<N extends keyof I & string>(target: N, message: I[N]): Promise<void> {
    if (this.closed) return Promise.reject(new IllegalStateError('bus is closed', 'ERR_BUS_CLOSED'));
    const mailbox = this.mailboxes.get(target);
    if (!mailbox) return Promise.reject(new NotFoundError(`no module "${target}" on the bus`));
    return mailbox.put(message);
  }

  /** Sends and waits for the message whose parentId is this message's id; its content is what `M` promises. */
  request<N extends keyof I & string, M extends I[N]>(target: N, message: M, timeoutMs: number = this.requestTimeoutMs): Promise<Reply<ReplyOf<M>>> {
    const answer = this.pending.wait(message.id, timeoutMs, `no response from "${target}" to ${message.operation} ${message.resource} within ${timeoutMs} ms`);
    this.send(target, message).catch((err: unknown) => this.pending.fail(message.id, asError(err)));
    return answer as Promise<Reply<ReplyOf<M>>>;
  }

  /** Whether a `request` waits for this message's answer (false for a `send`, or once it timed out). */
  waiting(request: Message): boolean {
    return this.pending.has(request.id);
  }

  /** Hands a response to the `request` waiting for it; false when nobody waits (it timed out). */
  respond<M extends Message>(request: M, response: Reply<ReplyOf<M>>): boolean {
    if (this.pending.settle(request.id, response)) return true;
    this.logger.debug({ parentId: request.id, resource: request.resource }, 'response dropped, nobody waits');
    return false;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pending.failAll(() => new IllegalStateError('bus closed before a response arrived', 'ERR_BUS_CLOSED'));
    for (const mailbox of this.mailboxes.values()) mailbox.close();
  }
}

/** A bounded FIFO drained by one loop, so a module sees its messages one at a time and in order. */
class Mailbox {
  private queue: Message[] = [];
  private head = 0;
  private draining = false;
  private closed = false;
  private spaceWaiters: Array<() => void> = [];

  constructor(
    private readonly name: string,
    private readonly handler: MessageHandler,
    private readonly capacity: number,
    private readonly logger: Logger,
  ) {}

  async put(message: Message): Promise<void> {
    while (this.size() >= this.capacity && !this.closed) {
      await new Promise<void>((resolve) => this.spaceWaiters.push(resolve));
    }
    if (this.closed) throw new IllegalStateError(`module "${this.name}" stopped receiving`, 'ERR_BUS_CLOSED');
    this.queue.push(message);
    if (!this.draining) {
      this.draining = true;
      queueMicrotask(() => void this.drain());
    }
  }

  close(): void {
    this.closed = true;
    this.queue = [];
    this.head = 0;
    for (const wake of this.spaceWaiters.splice(0)) wake();
  }

  private size(): number {
    return this.queue.length - this.head;
  }

  private async drain(): Promise<void> {
    while (this.size() > 0 && !this.closed) {
      const message = this.queue[this.head++]!;
      if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      const wake = this.spaceWaiters.shift();
      if (wake) wake();
      try {
        await this.handler(message);
      } catch (err) {
        this.logger.error({ err, target: this.name, operation: message.operation, resource: message.resource }, 'module failed to handle message');
      }
    }
    this.draining = false;
  }
}
