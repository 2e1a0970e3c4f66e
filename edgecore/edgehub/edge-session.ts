import type { Logger } from '../../shared/logger.js';
import { ChannelSession, type Transport } from '../../shared/channel/session.js';
import { decodeEnvelopeRaw, encodeInventory, encodeMessage } from '../../shared/channel/codec.js';
import { StreamId, type Hello, type Settings } from '../../shared/channel/frame.js';
import type { ChannelStream } from '../../shared/channel/channel-stream.js';
import { ReliableSender } from '../../shared/channel/reliable-sender.js';
import type { ReceivedMessage } from '../../shared/channel/streams.js';
import { ConnectionError, type CoreError } from '../../shared/errors.js';
import { Group, NULL_NAMESPACE, Operation, errorResponseTo, newMessage, type Message, type Reply } from '../../shared/message.js';
import { PendingRequests } from '../../shared/pending-requests.js';
import { EdgeModule } from '../contracts/addresses.js';
import type { DeliverMessage, EdgeBus, InventoryMessage, QueryMessage, ServiceCallMessage, StoredNotice } from '../contracts/messages.js';
import { ObjectApplier } from './object-applier.js';
import { CLOUD_REQUESTS, STORE, TWIN } from './routes.js';
import { UpstreamCursor, type SentRow, type UpstreamOutbox } from './upstream-outbox.js';

export interface SessionEnd {
  error?: CoreError;
  goAway?: { code: number; reason: string; address: string };
}

export interface EdgeSessionOptions {
  nodeName: string;
  hello: Hello;
  settings: Settings;
  transport: Transport;
  bus: EdgeBus;
  outbox: UpstreamOutbox;
  upstreamResendMs: number;
  requestTimeoutMs: number;
  /** Bus deadline of a service call from the cloud (ServiceBus answers first, with its own timeout). */
  serviceCallTimeoutMs: number;
  logger: Logger;
  /** The cloud's resync is committed: the edge store matches the cloud as of connecting. */
  onSynced?(queued: number): void;
  onOpen?(): void;
  /**
   * A dynamic stream the cloud opened (issue 13: a kubelet connection): return to accept it, throw to refuse it
   * (the cloud gets the error's message). Absent, every stream is refused as by an older edgecore.
   */
  onStream?(stream: ChannelStream, header: Uint8Array): void;
}

/**
 * The edge half of one connection: sends the inventory when the session opens, hands what the cloud sends
 * to the object applier, drains the durable upstream outbox through a reliable sender, and carries queries
 * both ways on the rpc stream.
 */
export class EdgeSession {
  readonly channel: ChannelSession;
  readonly done: Promise<SessionEnd>;
  private resolveDone!: (end: SessionEnd) => void;
  private goAway: SessionEnd['goAway'];
  private readonly applier: ObjectApplier;
  private readonly cursor: UpstreamCursor;
  private readonly upstream: ReliableSender<SentRow>;
  private readonly requests = new PendingRequests<Message>();
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
        ...(options.onStream && { onStreamOpen: options.onStream }),
      },
    });
    this.applier = new ObjectApplier({
      bus: options.bus,
      logger: options.logger,
      open: () => this.open,
      committed: (seq) => this.channel.ack(StreamId.objects, seq),
      synced: (queued) => this.options.onSynced?.(queued),
      fail: (error) => this.channel.fail(error),
    });
    this.cursor = new UpstreamCursor(options.outbox);
    this.upstream = new ReliableSender(this.channel, StreamId.upstream, this.cursor);
  }

  start(): void {
    this.channel.start();
  }

  get open(): boolean {
    return this.channel.status === 'open';
  }

  /** Sends upstream rows not yet in flight, as far as the stream's window allows. */
  pumpUpstream(): void {
    this.upstream.pump();
  }

  /** A query answered by the cloud (rpc stream): CloudHub answers `response` or `error` (upstream-router.ts). */
  request(message: Message, timeoutMs = this.options.requestTimeoutMs): Promise<Reply<unknown>> {
    if (!this.open) return Promise.reject(new ConnectionError('cloud not connected'));
    const answer = this.requests.wait(message.id, timeoutMs, `cloud did not answer ${message.operation} ${message.resource} within ${timeoutMs} ms`);
    this.channel.write(StreamId.rpc, encodeMessage(message));
    return answer as Promise<Reply<unknown>>;
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
      const request: InventoryMessage = newMessage({
        source: EdgeModule.edgeHub,
        group: Group.resource,
        operation: Operation.inventory,
        resource: 'inventory',
        content: null,
      });
      const reply = await this.options.bus.request(STORE, request);
      if (reply.operation === Operation.error) throw new Error(reply.content.message);
      if (!this.open) return;
      this.channel.write(
        StreamId.objects,
        encodeMessage(
          newMessage({
            source: EdgeModule.edgeHub,
            group: Group.resource,
            operation: Operation.inventory,
            resource: `${NULL_NAMESPACE}/node/${this.options.nodeName}`,
            content: encodeInventory(reply.content),
          }),
        ),
      );
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
    if (stream === StreamId.objects) return this.applier.push(received.seq, received.data, release);
    if (stream === StreamId.twin) {
      release();
      return this.forwardTwin(received.data);
    }
    const message = this.channel.decodeOrFail(received.data);
    if (!message) return;
    release();
    if (stream === StreamId.rpc) return this.onRpc(message);
    this.logger.warn({ stream, operation: message.operation }, 'unexpected message from cloud ignored');
  }

  /** Twin messages from the cloud go to DeviceTwin with their object as raw JSON, like MetaManager's notices. */
  private forwardTwin(data: Uint8Array): void {
    if (!this.options.bus.has(TWIN)) return;
    let notice: StoredNotice;
    try {
      const { message, content } = decodeEnvelopeRaw(data);
      if (message.operation !== Operation.update && message.operation !== Operation.delete)
        throw new Error(`operation ${message.operation} is not update or delete`);
      notice = { ...message, operation: message.operation, content: message.operation === Operation.delete ? null : content };
    } catch (err) {
      this.logger.warn({ err }, 'twin message from cloud ignored');
      return;
    }
    void this.options.bus.send(TWIN, notice).catch(() => undefined);
  }

  private onUpstreamAck(cumulative: number, selective: readonly number[]): void {
    const rows = this.upstream.acked(cumulative, selective);
    if (rows.length > 0) this.options.outbox.remove(rows.map((r) => r.id));
  }

  /** Reports the cloud never ACKed (it timed out processing them) go out again; processing is idempotent. */
  private resendStale(): void {
    const oldest = this.upstream.oldest();
    if (!oldest || Date.now() - oldest.sentAtMs < this.options.upstreamResendMs) return;
    this.logger.warn({ unacked: this.upstream.inflightCount }, 'resending unacknowledged reports');
    this.upstream.forget();
    this.cursor.rewind();
    this.pumpUpstream();
  }

  private onRpc(message: Message): void {
    if (message.parentId && this.requests.settle(message.parentId, message)) return;
    const target = CLOUD_REQUESTS[message.operation as keyof typeof CLOUD_REQUESTS];
    if (!target) {
      this.logger.debug({ operation: message.operation, resource: message.resource }, 'rpc message from cloud ignored');
      return;
    }
    this.logger.debug({ operation: message.operation, resource: message.resource }, 'request from cloud');
    const answer = (reply: Message): void => void (this.open && this.channel.write(StreamId.rpc, encodeMessage({ ...reply, parentId: message.id })));
    if (!this.options.bus.has(target)) {
      // ServiceBus off on this edge: the cloud answers the caller at once instead of waiting for a timeout.
      answer(errorResponseTo(message, EdgeModule.edgeHub, { code: 'ERR_UNAVAILABLE', message: `${target} is not enabled on this edge` }));
      return;
    }
    // The bus deadline is the request's own: a service call may take the app's whole timeout.
    const timeoutMs = target === STORE ? undefined : this.options.serviceCallTimeoutMs;
    void this.options.bus
      .request(target, message as QueryMessage & ServiceCallMessage & DeliverMessage, timeoutMs)
      .then(answer)
      .catch((err: Error) => {
        this.logger.warn({ err }, 'cloud request failed');
        answer(errorResponseTo(message, EdgeModule.edgeHub, { code: (err as CoreError).code ?? 'ERR_UNAVAILABLE', message: err.message }));
      });
  }

  private onClose(error: CoreError | undefined): void {
    clearInterval(this.resendTimer);
    this.requests.failAll(() => new ConnectionError('connection to cloud closed'));
    this.applier.drop();
    this.resolveDone({ error, goAway: this.goAway });
  }
}
