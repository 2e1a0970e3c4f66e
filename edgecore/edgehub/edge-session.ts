import type { Bus } from '../../shared/bus.js';
import type { Logger } from '../../shared/logger.js';
import { ChannelSession, type Transport } from '../../shared/channel/session.js';
import { decodeEnvelopeRaw, decodeMessage, encodeInventory, encodeMessage } from '../../shared/channel/codec.js';
import { StreamId, type Hello, type InventoryItem, type Settings } from '../../shared/channel/frame.js';
import type { ReceivedMessage } from '../../shared/channel/streams.js';
import { ConnectionError, CoreError, IllegalStateError, ProtocolError, TimeoutError } from '../../shared/errors.js';
import { Operation, newMessage, parseEdgeResource, type Message } from '../../shared/message.js';
import type { ObjectChange } from '../../shared/object-change.js';
import { metadataUid } from '../../shared/json-scan.js';
import type { UpstreamOutbox } from './upstream-outbox.js';

export interface SessionEnd {
  error?: CoreError;
  goAway?: { code: number; reason: string; address: string };
}

export interface EdgeSessionOptions {
  nodeName: string;
  hello: Hello;
  settings: Settings;
  transport: Transport;
  bus: Bus;
  outbox: UpstreamOutbox;
  upstreamResendMs: number;
  requestTimeoutMs: number;
  logger: Logger;
  /** The cloud's resync is committed: the edge store matches the cloud as of connecting. */
  onSynced?(queued: number): void;
  onOpen?(): void;
}

interface PendingApply {
  seq: number;
  /** The encoded envelope; decoded in the batch step, off the receive path. */
  data: Uint8Array;
  release: () => void;
}

/**
 * Objects committed per transaction. Small enough that the first message of a backlog is not held for long
 * behind the rest; large enough that commits stay cheap under load.
 */
const APPLY_BATCH = 256;
const UPSTREAM_READ = 256;
const EMPTY = new Uint8Array(0);

/**
 * The edge half of one connection: sends the inventory when the session opens, commits what the cloud sends
 * in batches and ACKs only after the commit, drains the durable upstream outbox, and carries queries.
 */
export class EdgeSession {
  readonly channel: ChannelSession;
  readonly done: Promise<SessionEnd>;
  private resolveDone!: (end: SessionEnd) => void;
  private goAway: SessionEnd['goAway'];
  private readonly applyQueue: PendingApply[] = [];
  private applying = false;
  private lastSentId = 0;
  private readonly inflight = new Map<number, { id: number; sentAtMs: number }>();
  private readonly requests = new Map<string, { resolve(m: Message): void; reject(e: Error): void; timer: NodeJS.Timeout }>();
  private resendTimer: NodeJS.Timeout | undefined;
  private readonly logger: Logger;

  constructor(private readonly options: EdgeSessionOptions) {
    this.logger = options.logger;
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
    this.channel = new ChannelSession({
      role: 'client',
      hello: options.hello,
      settings: options.settings,
      transport: options.transport,
      handlers: {
        onHello: () => void setImmediate(() => void this.onOpen()),
        onMessage: (stream, message, release) => this.onMessage(stream, message, release),
        onAck: (stream, cumulative, selective) => stream === StreamId.upstream && this.onUpstreamAck(cumulative, selective),
        onDrain: (stream) => stream === StreamId.upstream && this.pumpUpstream(),
        onGoAway: (code, reason, address) => {
          this.goAway = { code, reason, address };
          this.logger.info({ code, reason, address }, 'cloud sent goaway');
          this.channel.close('goaway received');
        },
        onClose: (error) => this.onClose(error),
      },
    });
  }

  start(): void {
    this.channel.start();
  }

  get open(): boolean {
    return this.channel.status === 'open';
  }

  /** Sends upstream rows not yet in flight, as far as the stream's window allows. */
  pumpUpstream(): void {
    while (this.open && this.channel.writable(StreamId.upstream)) {
      const rows = this.options.outbox.after(this.lastSentId, UPSTREAM_READ);
      if (rows.length === 0) return;
      for (const row of rows) {
        const seq = this.channel.write(StreamId.upstream, row.message);
        this.inflight.set(seq, { id: row.id, sentAtMs: Date.now() });
        this.lastSentId = row.id;
      }
    }
  }

  /** A query answered by the cloud (rpc stream). */
  request(message: Message, timeoutMs = this.options.requestTimeoutMs): Promise<Message> {
    if (!this.open) return Promise.reject(new ConnectionError('cloud not connected'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.requests.delete(message.id);
        reject(new TimeoutError(`cloud did not answer ${message.operation} ${message.resource} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.requests.set(message.id, { resolve, reject, timer });
      this.channel.write(StreamId.rpc, encodeMessage(message));
    });
  }

  /** Planned departure (shutdown, reconnect with a renewed certificate). */
  leave(code: number, reason: string): void {
    if (this.channel.status === 'closed') return;
    this.channel.goAway(code as never, reason);
    this.channel.close(reason);
  }

  private async onOpen(): Promise<void> {
    if (!this.open) return;
    try {
      const reply = await this.options.bus.request<InventoryItem[]>('metamanager', newMessage({ source: 'edgehub', group: 'resource', operation: Operation.inventory, resource: 'inventory', content: null }));
      if (!this.open) return;
      this.channel.write(StreamId.objects, encodeMessage(newMessage({ source: 'edgehub', group: 'resource', operation: Operation.inventory, resource: `null/node/${this.options.nodeName}`, content: encodeInventory(reply.content) })));
      this.logger.info({ objects: reply.content.length, waitingUpstream: this.options.outbox.count() }, 'connected, inventory sent');
    } catch (err) {
      this.channel.fail(new ConnectionError(`cannot read the edge store for the inventory: ${(err as Error).message}`, 'ERR_CONNECTION', { cause: err }));
      return;
    }
    this.options.onOpen?.();
    this.pumpUpstream();
    this.resendTimer = setInterval(() => this.resendStale(), Math.max(50, this.options.upstreamResendMs / 2)).unref();
  }

  private onMessage(stream: number, received: ReceivedMessage, release: () => void): void {
    if (stream === StreamId.objects) {
      this.applyQueue.push({ seq: received.seq, data: received.data, release });
      if (!this.applying) {
        this.applying = true;
        setImmediate(() => void this.applyPending());
      }
      return;
    }
    const message = this.channel.decodeOrFail(received.data);
    if (!message) return;
    switch (stream) {
      case StreamId.rpc:
        release();
        return this.onRpc(message);
      case StreamId.twin:
        release();
        if (this.options.bus.members('twin').length > 0) void this.options.bus.sendToGroup('twin', message);
        return;
      default:
        release();
        this.logger.warn({ stream, operation: message.operation }, 'unexpected message from cloud ignored');
    }
  }

  /** Commits queued object messages in batches, in order; ACKs a batch only after its commit. */
  private async applyPending(): Promise<void> {
    while (this.applyQueue.length > 0 && this.open) {
      const batch = this.applyQueue.splice(0, APPLY_BATCH);
      const changes: ObjectChange[] = [];
      let synced: number | undefined;
      try {
        for (const b of batch) {
          const { message, content } = decodeEnvelopeRaw(b.data);
          if (message.operation === Operation.synced) synced = (decodeMessage(b.data).content as { queued?: number } | undefined)?.queued ?? 0;
          else {
            const change = this.toChange(message, content);
            if (change) changes.push(change);
          }
        }
      } catch (err) {
        this.channel.fail(err as ProtocolError);
        break;
      }
      try {
        if (changes.length > 0) {
          const reply = await this.options.bus.request('metamanager', newMessage({ source: 'edgehub', group: 'resource', operation: Operation.apply, resource: 'batch', content: changes }));
          if (reply.operation === Operation.error) throw new IllegalStateError(`edge store refused the batch: ${JSON.stringify(reply.content)}`);
        }
      } catch (err) {
        // Nothing is ACKed: the cloud resends through the resync after we reconnect.
        this.channel.fail(new ConnectionError(`cannot commit objects: ${(err as Error).message}`, 'ERR_CONNECTION', { cause: err }));
        break;
      }
      if (!this.open) break;
      this.channel.ack(StreamId.objects, batch[batch.length - 1]!.seq);
      for (const b of batch) b.release();
      if (synced !== undefined) this.options.onSynced?.(synced);
      // Yield to the event loop: the ACK goes out and new frames are read before the next batch commits
      // (awaiting the bus alone only yields to microtasks, which would hold every ACK until the backlog ends).
      if (this.applyQueue.length > 0) await new Promise((resolve) => setImmediate(resolve));
    }
    this.applying = false;
  }

  /** An object message as a store change; a malformed one is logged and skipped (and still ACKed). */
  private toChange(message: Message<undefined>, content: Uint8Array): ObjectChange | undefined {
    try {
      const { type, name } = parseEdgeResource(message.resource);
      if (name === undefined) throw new ProtocolError(`resource ${message.resource} names no object`, 'ERR_INVALID_MESSAGE');
      const deleted = message.operation === Operation.delete;
      // The object's JSON is stored as the bytes that arrived; only its uid is read from it.
      return { key: message.resource, type, uid: metadataUid(content), resourceVersion: message.resourceVersion, deleted, value: deleted ? EMPTY : content };
    } catch (err) {
      this.logger.error({ err, operation: message.operation, resource: message.resource }, 'object message skipped');
      return undefined;
    }
  }

  private onUpstreamAck(cumulative: number, selective: readonly number[]): void {
    const ids: number[] = [];
    const take = (seq: number): void => {
      const entry = this.inflight.get(seq);
      if (!entry) return;
      this.inflight.delete(seq);
      ids.push(entry.id);
    };
    if (cumulative > 0) for (const seq of [...this.inflight.keys()]) if (seq <= cumulative) take(seq);
    for (const seq of selective) take(seq);
    if (ids.length > 0) this.options.outbox.remove(ids);
  }

  /** Reports the cloud never ACKed (it timed out processing them) go out again; processing is idempotent. */
  private resendStale(): void {
    const oldest = this.inflight.values().next().value;
    if (!oldest || Date.now() - oldest.sentAtMs < this.options.upstreamResendMs) return;
    this.logger.warn({ unacked: this.inflight.size }, 'resending unacknowledged reports');
    this.inflight.clear();
    this.lastSentId = 0;
    this.pumpUpstream();
  }

  private onRpc(message: Message): void {
    const pending = message.parentId ? this.requests.get(message.parentId) : undefined;
    if (pending) {
      this.requests.delete(message.parentId);
      clearTimeout(pending.timer);
      pending.resolve(message);
      return;
    }
    this.logger.debug({ operation: message.operation, resource: message.resource }, 'request from cloud');
    void this.options.bus
      .request('metamanager', message)
      .then((reply) => this.open && this.channel.write(StreamId.rpc, encodeMessage({ ...reply, parentId: message.id })))
      .catch((err: Error) => this.logger.warn({ err }, 'cloud request failed'));
  }

  private onClose(error: CoreError | undefined): void {
    clearInterval(this.resendTimer);
    for (const [id, pending] of this.requests) {
      clearTimeout(pending.timer);
      pending.reject(new ConnectionError('connection to cloud closed'));
      this.requests.delete(id);
    }
    for (const b of this.applyQueue.splice(0)) b.release();
    this.resolveDone({ error, goAway: this.goAway });
  }
}
