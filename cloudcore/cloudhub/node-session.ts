import type { Bus } from '../../shared/bus.js';
import type { Logger } from '../../shared/logger.js';
import { ChannelSession, type SessionHandlers, type Transport } from '../../shared/channel/session.js';
import { decodeInventory, encodeMessage } from '../../shared/channel/codec.js';
import { GoAwayCode, PROTOCOL_VERSION, StreamId, type Hello, type InventoryItem, type Settings } from '../../shared/channel/frame.js';
import type { ReceivedMessage } from '../../shared/channel/streams.js';
import { ConnectionError, CoreError, ProtocolError } from '../../shared/errors.js';
import { NULL_NAMESPACE, Operation, newMessage, parseCloudResource, parseEdgeResource, toCloudResource, type Message } from '../../shared/message.js';
import { ANY_TYPE, SYNC_OPERATION, typeOfKey, uidOf, type SyncRequest, type SyncResponse } from '../../shared/object-sync.js';
import { NodeOutbox, type OutboxItem } from './node-outbox.js';
import type { WebSocketEvents } from './websocket-connection.js';

export type NodeSessionState = 'handshaking' | 'awaiting-inventory' | 'syncing' | 'live' | 'closed';

/** What a session needs from the hub that owns it. */
export interface SessionHost {
  readonly bus: Bus;
  /** Modules asked for the node's desired objects at resync. */
  syncProviders(): string[];
  /** Queues an upstream report on the hub's keyed worker pool. */
  submitUpstream(work: UpstreamWork): void;
  /** The edge's hello was accepted: controllers learn of the connection before any of its reports. */
  sessionOpened(session: NodeSession): void;
  sessionClosed(session: NodeSession, error: CoreError | undefined): void;
  delivered?(session: NodeSession, items: OutboxItem[]): void;
}

export interface UpstreamWork {
  session: NodeSession;
  seq: number;
  message: Message;
  release: () => void;
}

export interface NodeSessionOptions {
  nodeName: string;
  sessionId: string;
  peer: string;
  certNotAfterMs: number;
  transport: Transport;
  settings: Settings;
  softwareVersion: string;
  requestTimeoutMs: number;
  host: SessionHost;
  logger: Logger;
}

/**
 * One edge node's connection: the channel session, the node's outbox, and the resync that runs when the
 * edge presents its inventory. Live object changes are kept from the hello on and sent once the resync is
 * queued; the outbox lets the newest version of each object win, whether it came live or from a diff.
 */
export class NodeSession implements SessionHandlers, WebSocketEvents {
  readonly channel: ChannelSession;
  readonly outbox = new NodeOutbox();
  state: NodeSessionState = 'handshaking';

  constructor(readonly options: NodeSessionOptions) {
    this.channel = new ChannelSession({
      role: 'server',
      externalTimer: true,
      transport: options.transport,
      settings: options.settings,
      // The session is its own handler object: prototype methods, no closures per connection.
      handlers: this,
    });
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
   * Queues a live change (cloud resource) for this node. From the edge's hello on, every change is kept:
   * the resync's snapshots are taken when each provider answers, at different times, so a change made after
   * one provider's snapshot but before the last answer is in no diff. The outbox orders a live change and a
   * diff entry for the same object by version, whichever comes first. Changes before the hello are older than
   * every snapshot (snapshots are taken after the inventory arrives), so the resync covers them.
   */
  offerObject(message: Message): boolean {
    if (this.state === 'handshaking' || this.state === 'closed') return false;
    const live = this.state === 'live';
    // Until the resync is queued, a delete of an object the edge does not hold is kept as a tombstone: a
    // provider's snapshot taken before the delete may still insert that object, and the tombstone outranks it.
    const accepted = this.offer(message, !live);
    if (accepted && live) this.pump();
    return accepted;
  }

  /** Sends a message that needs no ACK (twin, responses) on the given stream. */
  sendUnreliable(stream: number, message: Message): void {
    if (this.channel.status !== 'open') return;
    this.channel.write(stream, encodeMessage({ ...message, resource: parseCloudResource(message.resource).edgeResource }));
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
    if (stream === StreamId.objects) this.pump();
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
    this.logger.info({ peer: this.options.peer, edgeVersion: hello.softwareVersion }, 'edge session open');
    this.options.host.sessionOpened(this);
    return { protocolVersion: PROTOCOL_VERSION, nodeName: this.options.nodeName, settings: this.options.settings, softwareVersion: this.options.softwareVersion, sessionId: this.options.sessionId };
  }

  onMessage(stream: number, received: ReceivedMessage, release: () => void): void {
    const message = this.channel.decodeOrFail(received.data);
    if (!message) return;
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
        this.options.host.submitUpstream({ session: this, seq: received.seq, message, release });
        return;
      case StreamId.rpc:
        void this.answerRequest(message).finally(release);
        return;
      case StreamId.twin:
        release();
        this.forward(message, 'devicecontroller');
        return;
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
    const request: SyncRequest = { nodeName: this.nodeName, inventory };
    let responses: SyncResponse[];
    try {
      responses = await Promise.all(
        this.options.host.syncProviders().map(async (provider) => {
          const reply = await this.options.host.bus.request<SyncResponse>(provider, newMessage({ source: 'cloudhub', group: 'resource', operation: SYNC_OPERATION, resource: `node/${this.nodeName}`, content: request }), this.options.requestTimeoutMs);
          if (reply.operation === Operation.error) throw new ConnectionError(`${provider} could not compute the resync: ${JSON.stringify(reply.content)}`);
          return reply.content;
        }),
      );
    } catch (err) {
      this.logger.error({ err }, 'resync failed');
      this.channel.fail(err instanceof CoreError ? err : new ConnectionError(String(err)));
      return;
    }
    if (this.state !== 'syncing') return;
    this.queueResync(inventory, responses);
  }

  private queueResync(inventory: InventoryItem[], responses: SyncResponse[]): void {
    const owned = new Set(responses.flatMap((r) => r.ownedTypes));
    let queued = 0;
    for (const r of responses) for (const m of r.messages) if (this.offer(m)) queued++;
    // Objects of a type nobody serves any more are garbage on the edge.
    if (!owned.has(ANY_TYPE)) {
      for (const item of inventory) {
        const type = typeOfKey(item.key);
        if (type && !owned.has(type)) {
          const [namespace, , name] = item.key.split('/');
          const del = newMessage({ source: 'cloudhub', group: 'resource', operation: Operation.delete, resource: toCloudResource(this.nodeName, item.key), resourceVersion: item.resourceVersion, content: { metadata: { uid: item.uid, name, namespace } } });
          if (this.offer(del)) queued++;
        }
      }
    }
    const marker = newMessage({ source: 'cloudhub', group: 'resource', operation: Operation.synced, resource: `${NULL_NAMESPACE}/node/${this.nodeName}`, content: { queued } });
    this.outbox.offer({ key: '', message: marker, enqueuedAtMs: performance.now() });
    this.state = 'live';
    // Per-node detail: debug, or a 10,000-edge reconnect storm writes 10,000 lines for nothing new.
    this.logger.debug({ inventory: inventory.length, queued }, 'resync queued');
    this.pump();
  }

  private offer(message: Message, keepUnknownDeletes = false): boolean {
    let edgeResource: string;
    try {
      edgeResource = parseCloudResource(message.resource).edgeResource;
      parseEdgeResource(edgeResource);
    } catch (err) {
      this.logger.error({ err, resource: message.resource }, 'object message with a bad resource dropped');
      return false;
    }
    return this.outbox.offer({
      key: edgeResource,
      message: { ...message, resource: edgeResource },
      version: { uid: uidOf(message.content), resourceVersion: message.resourceVersion, deleted: message.operation === Operation.delete },
      enqueuedAtMs: performance.now(),
    }, keepUnknownDeletes);
  }

  private pump(): void {
    while (this.channel.status === 'open' && this.channel.writable(StreamId.objects)) {
      const item = this.outbox.take();
      if (!item) return;
      const seq = this.channel.write(StreamId.objects, encodeMessage(item.message!));
      this.outbox.sent(seq, item);
    }
  }

  onAck(stream: number, cumulative: number): void {
    if (stream !== StreamId.objects || cumulative === 0) return;
    const done = this.outbox.acked(cumulative);
    if (done.length > 0) this.options.host.delivered?.(this, done);
  }

  /** A query from the edge: asked of the owning module, answered on the rpc stream. */
  private async answerRequest(message: Message): Promise<void> {
    const target = message.group === 'twin' ? 'devicecontroller' : 'edgecontroller';
    let reply: Message;
    try {
      const cloudMessage = { ...message, resource: toCloudResource(this.nodeName, message.resource) };
      reply = await this.options.host.bus.request(target, cloudMessage, this.options.requestTimeoutMs);
    } catch (err) {
      reply = newMessage({ source: 'cloudhub', group: message.group, operation: Operation.error, resource: message.resource, parentId: message.id, content: { code: (err as CoreError).code ?? 'ERR_UNKNOWN', message: (err as Error).message } });
    }
    if (this.channel.status !== 'open') return;
    this.channel.write(StreamId.rpc, encodeMessage({ ...reply, parentId: message.id, resource: message.resource }));
  }

  private forward(message: Message, target: string): void {
    if (!this.options.host.bus.has(target)) {
      this.logger.debug({ target, resource: message.resource }, 'no module for edge message, dropped');
      return;
    }
    void this.options.host.bus.send(target, { ...message, resource: toCloudResource(this.nodeName, message.resource) });
  }

  onClose(error: CoreError | undefined): void {
    this.state = 'closed';
    this.options.host.sessionClosed(this, error);
  }
}
