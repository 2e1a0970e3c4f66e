import type { Logger } from '../../shared/logger.js';
import { decodeEnvelopeRaw, decodeMessage } from '../../shared/channel/codec.js';
import { ConnectionError, IllegalStateError, ProtocolError, type CoreError } from '../../shared/errors.js';
import { Group, Operation, newMessage, parseEdgeResource, type Message } from '../../shared/message.js';
import { EdgeModule } from '../contracts/addresses.js';
import type { ApplyMessage, EdgeBus } from '../contracts/messages.js';
import type { ObjectChange } from '../contracts/object-change.js';
import { metadataUid } from './json-scan.js';
import { STORE } from './routes.js';

/**
 * Objects committed per transaction. Small enough that the first message of a backlog is not held for long
 * behind the rest; large enough that commits stay cheap under load.
 */
const APPLY_BATCH = 256;
const EMPTY = new Uint8Array(0);

interface PendingApply {
  seq: number;
  /** The encoded envelope; decoded in the batch step, off the receive path. */
  data: Uint8Array;
  release: () => void;
}

export interface ObjectApplierOptions {
  bus: EdgeBus;
  logger: Logger;
  /** Still worth committing (the session is open). */
  open(): boolean;
  /** The batch up to `seq` is committed: ACK it. */
  committed(seq: number): void;
  /** The cloud's resync marker was committed: the store matches the cloud as of connecting. */
  synced(queued: number): void;
  /** A malformed batch or a store that cannot commit: the session ends, nothing of the batch is ACKed. */
  fail(error: CoreError): void;
}

/**
 * What the cloud sends on the object stream, committed in batches in arrival order by MetaManager. A batch is
 * ACKed only after its commit; a malformed object is logged and skipped (and still ACKed).
 */
export class ObjectApplier {
  private readonly queue: PendingApply[] = [];
  private applying = false;

  constructor(private readonly options: ObjectApplierOptions) {}

  push(seq: number, data: Uint8Array, release: () => void): void {
    this.queue.push({ seq, data, release });
    if (!this.applying) {
      this.applying = true;
      setImmediate(() => void this.applyPending());
    }
  }

  /** The session ended: what waits is not ACKed, the cloud resends it through the next resync. */
  drop(): void {
    for (const b of this.queue.splice(0)) b.release();
  }

  private async applyPending(): Promise<void> {
    const { options } = this;
    while (this.queue.length > 0 && options.open()) {
      const batch = this.queue.splice(0, APPLY_BATCH);
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
        options.fail(err as ProtocolError);
        break;
      }
      try {
        if (changes.length > 0) {
          const request: ApplyMessage = newMessage({
            source: EdgeModule.edgeHub,
            group: Group.resource,
            operation: Operation.apply,
            resource: 'batch',
            content: changes,
          });
          const reply = await options.bus.request(STORE, request);
          if (reply.operation === Operation.error) throw new IllegalStateError(`edge store refused the batch: ${JSON.stringify(reply.content)}`);
        }
      } catch (err) {
        // Nothing is ACKed: the cloud resends through the resync after we reconnect.
        options.fail(new ConnectionError(`cannot commit objects: ${(err as Error).message}`, 'ERR_CONNECTION', { cause: err }));
        break;
      }
      if (!options.open()) break;
      options.committed(batch[batch.length - 1]!.seq);
      for (const b of batch) b.release();
      if (synced !== undefined) options.synced(synced);
      // Yield to the event loop: the ACK goes out and new frames are read before the next batch commits
      // (awaiting the bus alone only yields to microtasks, which would hold every ACK until the backlog ends).
      if (this.queue.length > 0) await new Promise((resolve) => setImmediate(resolve));
    }
    this.applying = false;
  }

  /** An object message as a store change; a malformed one is logged and skipped. */
  private toChange(message: Message<undefined>, content: Uint8Array): ObjectChange | undefined {
    try {
      const { type, name } = parseEdgeResource(message.resource);
      if (name === undefined) throw new ProtocolError(`resource ${message.resource} names no object`, 'ERR_INVALID_MESSAGE');
      const deleted = message.operation === Operation.delete;
      // The object's JSON is stored as the bytes that arrived; only its uid is read from it.
      return { key: message.resource, type, uid: metadataUid(content), resourceVersion: message.resourceVersion, deleted, value: deleted ? EMPTY : content };
    } catch (err) {
      this.options.logger.error({ err, operation: message.operation, resource: message.resource }, 'object message skipped');
      return undefined;
    }
  }
}
