import type { Logger } from '../../shared/logger.js';
import type { Module } from '../../shared/module-runtime.js';
import type { SqliteDatabase } from '../../shared/sqlite.js';
import { Group, Operation, errorResponseTo, newMessage, parseEdgeResource, responseTo } from '../../shared/message.js';
import { EdgeModule } from '../contracts/addresses.js';
import type { EdgeBus, EdgeInboxes, QueryMessage, StoredNotice } from '../contracts/messages.js';
import type { ApplyResult, ObjectChange } from '../contracts/object-change.js';
import { EdgeMetrics } from '../metrics/edge-metrics.js';
import { MetaStore } from './meta-store.js';

/**
 * MetaManager's route table: which module hears of committed changes of a type (KubeEdge: MetaManager
 * notifies twin). Each re-reads the store at start, so a module that is off misses nothing it needs later.
 */
type Owner = typeof EdgeModule.deviceTwin | typeof EdgeModule.edged | typeof EdgeModule.eventBus | typeof EdgeModule.serviceBus;
const STORED_TYPE_OWNERS: Readonly<Record<string, Owner | readonly Owner[]>> = {
  device: EdgeModule.deviceTwin,
  devicemodel: EdgeModule.deviceTwin,
  pod: EdgeModule.edged,
  configmap: EdgeModule.edged,
  secret: EdgeModule.edged,
  // Rules whose source is this edge: EventBus subscribes to their topics (eventbus → rest), ServiceBus allows
  // their URLs (servicebus → rest).
  rule: [EdgeModule.eventBus, EdgeModule.serviceBus],
};

export interface MetaManagerDeps {
  database: SqliteDatabase;
  bus: EdgeBus;
  logger: Logger;
  metrics?: EdgeMetrics;
}

/**
 * Owns the edge's object store: commits what the cloud sends (one transaction per batch, answered only after
 * the commit), lists the inventory for resyncs, and answers local queries from SQLite so the edge keeps
 * working while the cloud is unreachable.
 */
export class MetaManager implements Module {
  readonly name = EdgeModule.metaManager;
  private store: MetaStore | undefined;
  private readonly metrics: EdgeMetrics;

  constructor(private readonly deps: MetaManagerDeps) {
    this.metrics = deps.metrics ?? new EdgeMetrics();
  }

  get metaStore(): MetaStore {
    if (!this.store) throw new Error('metamanager not started');
    return this.store;
  }

  async start(): Promise<void> {
    const store = (this.store = new MetaStore(this.deps.database));
    this.metrics.provide('storeObjects', () => store.countByType());
    this.deps.bus.register(this.name, (m) => this.handle(m));
    this.deps.logger.info({ objects: this.store.count() }, 'edge store open');
  }

  async stop(): Promise<void> {
    if (this.deps.bus.has(this.name)) this.deps.bus.unregister(this.name);
  }

  private handle(message: EdgeInboxes['metamanager']): void {
    const { bus } = this.deps;
    switch (message.operation) {
      case Operation.apply:
        try {
          const changes = message.content;
          const startedAt = performance.now();
          const outcomes = this.metaStore.apply(changes);
          this.metrics.storeCommitDuration.observe((performance.now() - startedAt) / 1000);
          bus.respond(message, responseTo(message, this.name, outcomes));
          this.announce(changes, outcomes);
        } catch (err) {
          // Disk full, I/O error: nothing was committed, so nothing is ACKed and the resync brings it again.
          this.deps.logger.error({ err }, 'cannot commit objects to the edge store');
          bus.respond(message, errorResponseTo(message, this.name, err as Error));
        }
        return;
      case Operation.inventory:
        bus.respond(message, responseTo(message, this.name, this.metaStore.inventory()));
        return;
      case Operation.query:
        bus.respond(message, this.query(message));
        return;
      case Operation.connect:
        this.deps.logger.info({ state: message.content }, 'cloud connection changed');
        return;
    }
  }

  /** Tells the module that owns a type of every committed change, with the bytes as stored (it parses them). */
  private announce(changes: readonly ObjectChange[], outcomes: readonly ApplyResult[]): void {
    changes.forEach((change, i) => {
      const owners = STORED_TYPE_OWNERS[change.type];
      if (!owners || outcomes[i] !== 'applied') return;
      for (const owner of typeof owners === 'string' ? [owners] : owners) {
        if (!this.deps.bus.has(owner)) continue;
        const note: StoredNotice = newMessage({
          source: this.name,
          group: Group.resource,
          operation: change.deleted ? Operation.delete : Operation.update,
          resource: change.key,
          resourceVersion: change.resourceVersion,
          content: change.deleted ? null : change.value,
        });
        void this.deps.bus.send(owner, note).catch((err: unknown) => this.deps.logger.warn({ err, resource: change.key }, 'change not announced'));
      }
    });
  }

  private query(message: QueryMessage) {
    try {
      const { namespace, type, name } = parseEdgeResource(message.resource);
      if (name !== undefined) {
        const object = this.metaStore.get(message.resource);
        if (!object) return errorResponseTo(message, this.name, { code: 'ERR_NOT_FOUND', message: `${message.resource} not in the edge store` });
        return { ...responseTo(message, this.name, JSON.parse(object.value.toString('utf8')) as unknown), resourceVersion: object.resourceVersion };
      }
      // `*/<type>` lists every namespace.
      const list = this.metaStore.listByType(type).filter((o) => namespace === '*' || o.key.startsWith(`${namespace}/`));
      return responseTo(
        message,
        this.name,
        list.map((o) => JSON.parse(o.value.toString('utf8')) as unknown),
      );
    } catch (err) {
      return errorResponseTo(message, this.name, err as Error);
    }
  }
}
