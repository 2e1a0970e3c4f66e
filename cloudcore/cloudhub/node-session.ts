import type { Logger } from '../../shared/logger.js';
import { ChannelSession, type SessionHandlers, type Transport } from '../../shared/channel/session.js';
import { decodeInventory, encodeMessage } from '../../shared/channel/codec.js';
import { GoAwayCode, PROTOCOL_VERSION, StreamId, type Hello, type InventoryItem, type Settings } from '../../shared/channel/frame.js';
import { ReliableSender } from '../../shared/channel/reliable-sender.js';
import type { ChannelStream } from '../../shared/channel/channel-stream.js';
import type { ReceivedMessage } from '../../shared/channel/streams.js';
import { ConnectionError, CoreError, ProtocolError } from '../../shared/errors.js';
import { PendingRequests } from '../../shared/pending-requests.js';
import { Group, NULL_NAMESPACE, Operation, newMessage, parseEdgeResource, type Message } from '../../shared/message.js';
import { CloudModule } from '../contracts/addresses.js';
import { uidOf, type SyncResponse } from '../contracts/object-sync.js';
import { NodeOutbox, type OutboxItem } from './node-outbox.js';
import { resyncMessages } from './resync.js';
import type { EdgeOrigin, UpstreamRouter } from './upstream-router.js';
import type { WebSocketEvents } from './websocket-connection.js';

export type NodeSessionState = 'handshaking' | 'awaiting-inventory' | 'syncing' | 'live' | 'closed';

/** What a session needs from the hub that owns it. */
export interface SessionHost {
  readonly upstream: UpstreamRouter;
  /** The providers' answers to the node's inventory (resync.ts). */
  resync(node: string, inventory: InventoryItem[]): Promise<SyncResponse[]>;
  /** The edge's hello was accepted: controllers learn of the connection before any of its reports. */
  sessionOpened(session: NodeSession): void;
  sessionClosed(session: NodeSession, error: CoreError | undefined): void;
  delivered?(session: NodeSession, items: OutboxItem[]): void;
  /** A GOAWAY went out to this session's edge. */
  wentAway?(session: NodeSession, code: GoAwayCode): void;
}

export interface NodeSessionOptions {
  nodeName: string;
  sessionId: string;
  peer: string;
  certNotAfterMs: number;
  transport: Transport;
  settings: Settings;
  softwareVersion: string;
  host: SessionHost;
  logger: Logger;
}

/**
 * One edge node's connection: the channel session and the node's outbox, drained by a reliable sender on the
 * object stream. Live object changes are kept from the hello on and sent once the resync is queued; the
 * outbox lets the newest version of each object win, whether it came live or from a diff.
 */
export class NodeSession implements SessionHandlers, WebSocketEvents, EdgeOrigin {
  readonly channel: ChannelSession;
  readonly outbox = new NodeOutbox();
  private readonly sender: ReliableSender<OutboxItem>;
  private readonly requests = new PendingRequests<Message>();
  state: NodeSessionState = 'handshaking';
  /** The GOAWAY this side sent, if any: why the session is about to end. */
  goneAway: GoAwayCode | undefined;
  /** Whether the edge's hello was accepted (the session counted as opened). */
  opened = false;

  constructor(readonly options: NodeSessionOptions) {
    this.channel = new ChannelSession({
      role: 'server',
      externalTimer: true,
      transport: options.transport,
      settings: options.settings,
      // The session is its own handler object: prototype methods, no closures per connection.
      handlers: this,
    });
    this.sender = new ReliableSender(this.channel, StreamId.objects, this.outbox);
  }

  get nodeName(): string {
    return this.options.nodeName;
  }

  /** Bound when a line is written, not held per session: with 10,000 sessions every kilobyte counts. */
  get logger(): Logger {
    return this.options.logger.child({ nodeId: this.options.nodeName, sessionId: this.options.sessionId });
  }

  start(): void {
    this.channel.start();
  }

  /**
   * Queues a live change for this node. From the edge's hello on, every change is kept: the resync's snapshots
   * are taken when each provider answers, at different times, so a change made after one provider's snapshot
   * but before the last answer is in no diff. The outbox orders a live change and a diff entry for the same
   * object by version, whichever comes first. Changes before the hello are older than every snapshot
   * (snapshots are taken after the inventory arrives), so the resync covers them.
   */
  offerObject(message: Message): boolean {
    if (this.state === 'handshaking' || this.state === 'closed') return false;
    const live = this.state === 'live';
    // Until the resync is queued, a delete of an object the edge does not hold is kept as a tombstone: a
    // provider's snapshot taken before the delete may still insert that object, and the tombstone outranks it.
    const accepted = this.offer(message, !live);
    if (accepted && live) this.sender.pump();
    return accepted;
  }

  /**
   * A dynamic stream to the edge (issue 13: one per kubelet connection), with `header` as its OPEN payload. It
   * errors with the edge's reason when the edge refuses it, and with ERR_CONNECTION when the session ends.
   */
  openStream(header: Uint8Array): ChannelStream {
    if (this.channel.status !== 'open') throw new CoreError('ERR_UNAVAILABLE', `node ${this.nodeName} is not connected`);
    return this.channel.openStream(header);
  }

  /**
   * A request the edge answers on the rpc stream (ServiceBus calls, for the Router): resolves with its
   * `response` or `error` message; rejects at once when the session ends, or after `timeoutMs`.
   */
  request(message: Message, timeoutMs: number): Promise<Message> {
    if (this.channel.status !== 'open') return Promise.reject(new CoreError('ERR_UNAVAILABLE', `node ${this.nodeName} is not connected`));
    const answer = this.requests.wait(
      message.id,
      timeoutMs,
      `node ${this.nodeName} did not answer ${message.operation} ${message.resource} within ${timeoutMs} ms`,
    );
    this.channel.write(StreamId.rpc, encodeMessage(message));
    return answer;
  }

  /** Sends a message that needs no ACK (twin, responses) on the given stream. */
  sendUnreliable(stream: number, message: Message): void {
    if (this.channel.status !== 'open') return;
    this.channel.write(stream, encodeMessage(message));
  }

  ackUpstream(seq: number): void {
    if (this.channel.status === 'open') this.channel.ackSelective(StreamId.upstream, [seq]);
  }

  goAway(code: GoAwayCode, reason: string, address = '', graceMs = 2_000): void {
    this.logger.info({ code, reason, address }, 'sending goaway');
    this.channel.goAway(code, reason, address);
    setTimeout(() => this.channel.close(reason), graceMs).unref();
  }

  close(reason: string): void {
    this.channel.close(reason);
  }

  onSocketMessage(data: Buffer, text: boolean): void {
    if (text) this.channel.fail(new ProtocolError('text websocket message; the channel speaks binary frames only', 'ERR_FRAME_MALFORMED'));
    else this.channel.receive(data);
  }

  onSocketViolation(code: number, reason: string): void {
    this.channel.fail(new ProtocolError(`websocket: ${reason}`, code === 1009 ? 'ERR_FRAME_TOO_LARGE' : 'ERR_FRAME_MALFORMED'));
  }

  onSocketClose(code: number, reason: string): void {
    this.channel.transportClosed(code, reason);
  }

  onDrain(stream: number): void {
    if (stream === StreamId.objects) this.sender.pump();
  }

  onGoAwaySent(code: GoAwayCode): void {
    this.goneAway ??= code;
    this.options.host.wentAway?.(this, code);
  }

  onGoAway(code: number, reason: string): void {
    this.logger.info({ code, reason }, 'edge going away');
  }

  onHello(hello: Hello): Hello {
    if (hello.nodeName !== this.options.nodeName) {
      throw new ProtocolError(`hello names node "${hello.nodeName}" but the client certificate is for "${this.options.nodeName}"`);
    }
    if (hello.protocolVersion !== PROTOCOL_VERSION) {
      throw new ProtocolError(`edge speaks channel protocol ${hello.protocolVersion}, this cloudcore speaks ${PROTOCOL_VERSION}`);
    }
    this.state = 'awaiting-inventory';
    this.opened = true;
    this.logger.info({ peer: this.options.peer, edgeVersion: hello.softwareVersion }, 'edge session open');
    this.options.host.sessionOpened(this);
    return {
      protocolVersion: PROTOCOL_VERSION,
      nodeName: this.options.nodeName,
      settings: this.options.settings,
      softwareVersion: this.options.softwareVersion,
      sessionId: this.options.sessionId,
    };
  }

  onMessage(stream: number, received: ReceivedMessage, release: () => void): void {
    const message = this.channel.decodeOrFail(received.data);
    if (!message) return;
    const upstream = this.options.host.upstream;
    switch (stream) {
      case StreamId.objects:
        release();
        if (message.operation !== Operation.inventory) {
          this.logger.warn({ operation: message.operation, resource: message.resource }, 'unexpected message on objects stream ignored');
          return;
        }
        this.channel.ack(StreamId.objects, received.seq);
        void this.resync(message);
        return;
      case StreamId.upstream:
        return upstream.report(this, received.seq, message, release);
      case StreamId.rpc:
        // An answer to a request of ours; anything else is the edge's own query.
        if (message.parentId && this.requests.settle(message.parentId, message)) return release();
        void upstream
          .query(this, message)
          .then(
            (reply) =>
              this.channel.status === 'open' && this.channel.write(StreamId.rpc, encodeMessage({ ...reply, parentId: message.id, resource: message.resource })),
          )
          .finally(release);
        return;
      case StreamId.twin:
        release();
        return upstream.twin(this, message);
    }
  }

  private async resync(message: Message): Promise<void> {
    if (this.state !== 'awaiting-inventory') {
      this.logger.warn({ state: this.state }, 'second inventory in one session ignored');
      return;
    }
    let inventory: InventoryItem[];
    try {
      if (!(message.content instanceof Uint8Array)) throw new ProtocolError('inventory content must be raw protobuf', 'ERR_INVALID_MESSAGE');
      inventory = decodeInventory(message.content);
    } catch (err) {
      this.channel.fail(err as ProtocolError);
      return;
    }
    this.state = 'syncing';
    for (const item of inventory) this.outbox.known.set(item.key, { uid: item.uid, resourceVersion: item.resourceVersion });
    let responses: SyncResponse[];
    try {
      responses = await this.options.host.resync(this.nodeName, inventory);
    } catch (err) {
      this.logger.error({ err }, 'resync failed');
      this.channel.fail(err instanceof CoreError ? err : new ConnectionError(String(err)));
      return;
    }
    if (this.state !== 'syncing') return;
    let queued = 0;
    for (const m of resyncMessages(inventory, responses)) if (this.offer(m)) queued++;
    const marker = newMessage({
      source: CloudModule.cloudHub,
      group: Group.resource,
      operation: Operation.synced,
      resource: `${NULL_NAMESPACE}/node/${this.nodeName}`,
      content: { queued },
    });
    this.outbox.offer({ key: '', message: marker, enqueuedAtMs: performance.now() });
    this.state = 'live';
    // Per-node detail: debug, or a 10,000-edge reconnect storm writes 10,000 lines for nothing new.
    this.logger.debug({ inventory: inventory.length, queued }, 'resync queued');
    this.sender.pump();
  }

  private offer(message: Message, keepUnknownDeletes = false): boolean {
    try {
      parseEdgeResource(message.resource);
    } catch (err) {
      this.logger.error({ err, resource: message.resource }, 'object message with a bad resource dropped');
      return false;
    }
    return this.outbox.offer(
      {
        key: message.resource,
        message,
        version: { uid: uidOf(message.content), resourceVersion: message.resourceVersion, deleted: message.operation === Operation.delete },
        enqueuedAtMs: performance.now(),
      },
      keepUnknownDeletes,
    );
  }

  onAck(stream: number, cumulative: number): void {
    if (stream !== StreamId.objects || cumulative === 0) return;
    const done = this.sender.acked(cumulative);
    if (done.length === 0) return;
    this.outbox.acked(done);
    this.options.host.delivered?.(this, done);
  }

  onClose(error: CoreError | undefined): void {
    this.state = 'closed';
    this.requests.failAll(() => new CoreError('ERR_UNAVAILABLE', `the session of node ${this.nodeName} ended`));
    this.options.host.sessionClosed(this, error);
  }
}
