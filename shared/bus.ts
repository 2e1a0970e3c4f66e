import type { Logger } from './logger.js';
import type { Message } from './message.js';
import { IllegalStateError, NotFoundError, TimeoutError, asError } from './errors.js';

export type MessageHandler = (message: Message) => void | Promise<void>;

export interface BusOptions {
  logger: Logger;
  /** Messages a module may have waiting before senders wait (KubeEdge's beehive uses 1024). */
  mailboxCapacity?: number;
  /** Default for `request` (beehive's 30 s). */
  requestTimeoutMs?: number;
}

interface PendingRequest {
  resolve(message: Message): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

/**
 * The in-process bus between modules (KubeEdge's beehive, typed): per-module FIFO mailboxes processed one
 * message at a time, group broadcast, and request/response correlated by `parentId`.
 */
export class Bus {
  private readonly mailboxes = new Map<string, Mailbox>();
  private readonly groups = new Map<string, Set<string>>();
  private readonly pending = new Map<string, PendingRequest>();
  private readonly logger: Logger;
  private readonly capacity: number;
  private readonly requestTimeoutMs: number;
  private closed = false;

  constructor(options: BusOptions) {
    this.logger = options.logger;
    this.capacity = options.mailboxCapacity ?? 1024;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
  }

  register(name: string, group: string, handler: MessageHandler): void {
    if (this.mailboxes.has(name)) throw new IllegalStateError(`module "${name}" is already registered on the bus`);
    this.mailboxes.set(name, new Mailbox(name, handler, this.capacity, this.logger));
    let members = this.groups.get(group);
    if (!members) this.groups.set(group, (members = new Set()));
    members.add(name);
  }

  unregister(name: string): void {
    this.mailboxes.get(name)?.close();
    this.mailboxes.delete(name);
    for (const members of this.groups.values()) members.delete(name);
  }

  has(name: string): boolean {
    return this.mailboxes.has(name);
  }

  /** Names of the modules in a group, in registration order. */
  members(group: string): string[] {
    return [...(this.groups.get(group) ?? [])];
  }

  /** Queues the message for the named module; waits while its mailbox is full. */
  send(target: string, message: Message): Promise<void> {
    if (this.closed) return Promise.reject(new IllegalStateError('bus is closed', 'ERR_BUS_CLOSED'));
    const mailbox = this.mailboxes.get(target);
    if (!mailbox) return Promise.reject(new NotFoundError(`no module "${target}" on the bus`));
    return mailbox.put(message);
  }

  /** Delivers a copy of the message to every module of the group. */
  async sendToGroup(group: string, message: Message): Promise<void> {
    const members = this.groups.get(group);
    if (!members || members.size === 0) throw new NotFoundError(`no module in group "${group}"`);
    await Promise.all([...members].map((name) => this.send(name, message)));
  }

  /** Sends and waits for the message whose parentId is this message's id. */
  request<R = unknown>(target: string, message: Message, timeoutMs: number = this.requestTimeoutMs): Promise<Message<R>> {
    return new Promise<Message<R>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(message.id);
        reject(new TimeoutError(`no response from "${target}" to ${message.operation} ${message.resource} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(message.id, { resolve: resolve as (m: Message) => void, reject, timer });
      this.send(target, message).catch((err: unknown) => {
        clearTimeout(timer);
        this.pending.delete(message.id);
        reject(asError(err));
      });
    });
  }

  /**
   * Routes a response: to the `request` waiting for it, or else to the mailbox of the module that sent the
   * request (asynchronous replies, as beehive does for ACKs to the hub). Returns false when nobody wanted it.
   */
  respond(request: Message, response: Message): boolean {
    const waiter = this.pending.get(request.id);
    if (waiter) {
      this.pending.delete(request.id);
      clearTimeout(waiter.timer);
      waiter.resolve(response);
      return true;
    }
    if (this.mailboxes.has(request.source)) {
      this.send(request.source, response).catch((err: unknown) => this.logger.warn({ err }, 'response not delivered'));
      return true;
    }
    this.logger.debug({ parentId: request.id, resource: request.resource }, 'response dropped, nobody waits');
    return false;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const [id, waiter] of this.pending) {
      clearTimeout(waiter.timer);
      waiter.reject(new IllegalStateError('bus closed before a response arrived', 'ERR_BUS_CLOSED'));
      this.pending.delete(id);
    }
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
