import type { Bus } from '../../shared/bus.js';
import type { Logger } from '../../shared/logger.js';
import type { Module } from '../../shared/module-runtime.js';
import { Operation, compareResourceVersions, errorResponseTo, newMessage, parseCloudResource, responseTo, toCloudResource, type Message } from '../../shared/message.js';
import { ANY_TYPE, CONTROLLERS_GROUP, SYNC_OPERATION, type ConnectionEvent, type SyncRequest, type SyncResponse } from '../../shared/object-sync.js';
import type { CloudCoreConfig } from '../config.js';
import { LocalObjectStore, type StoredObject } from './local-object-store.js';

export interface EdgeControllerDeps {
  config: CloudCoreConfig['modules']['edgeController'];
  bus: Bus;
  logger: Logger;
}

const POLL_BATCH = 5_000;

/**
 * Keeps each edge node's objects in step with the source of truth. This version serves the `local` source
 * (a SQLite object store); it answers CloudHub's resync requests from its cache, streams changes as they
 * appear, and records what edges report.
 */
export class EdgeController implements Module {
  readonly name = 'edgecontroller';
  private store: LocalObjectStore | undefined;
  /** node → key → newest live object. */
  private readonly cache = new Map<string, Map<string, StoredObject>>();
  private revision = 0;
  private timer: NodeJS.Timeout | undefined;
  private polling = false;

  constructor(private readonly deps: EdgeControllerDeps) {}

  async start(): Promise<void> {
    this.store = new LocalObjectStore(this.deps.config.localStorePath);
    this.revision = this.store.revision();
    for (const object of this.store.live()) this.cacheFor(object.node).set(object.key, object);
    this.deps.bus.register(this.name, CONTROLLERS_GROUP, (m) => this.handle(m));
    this.timer = setInterval(() => void this.poll(), this.deps.config.pollIntervalMs);
    this.deps.logger.info({ source: 'local', path: this.deps.config.localStorePath, objects: this.countCached(), revision: this.revision }, 'edgecontroller watching objects');
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    if (this.deps.bus.has(this.name)) this.deps.bus.unregister(this.name);
    this.store?.close();
    this.store = undefined;
  }

  private async poll(): Promise<void> {
    if (this.polling || !this.store) return;
    this.polling = true;
    try {
      for (;;) {
        const changes = this.store.changesSince(this.revision, POLL_BATCH);
        for (const change of changes) await this.apply(change);
        if (changes.length < POLL_BATCH) break;
      }
    } catch (err) {
      this.deps.logger.error({ err }, 'polling the local object store failed');
    } finally {
      this.polling = false;
    }
  }

  private async apply(change: StoredObject): Promise<void> {
    this.revision = change.resourceVersion;
    const objects = this.cacheFor(change.node);
    const existed = objects.has(change.key);
    if (change.deleted) objects.delete(change.key);
    else objects.set(change.key, change);
    const operation = change.deleted ? Operation.delete : existed ? Operation.update : Operation.insert;
    if (change.deleted && !existed) return;
    await this.deps.bus.send('cloudhub', this.toMessage(change, operation)).catch(() => undefined);
  }

  private handle(message: Message): void {
    switch (message.operation) {
      case SYNC_OPERATION:
        return this.answerSync(message as Message<SyncRequest>);
      case Operation.connect:
      case 'disconnect':
        this.deps.logger.debug({ nodeId: (message.content as ConnectionEvent).nodeName, event: message.operation }, 'edge connection event');
        return;
      case Operation.query:
        return this.answerQuery(message);
      default:
        return this.recordReport(message);
    }
  }

  /** The difference between the node's inventory and its desired objects. */
  private answerSync(request: Message<SyncRequest>): void {
    const { nodeName, inventory } = request.content;
    const desired = this.cache.get(nodeName) ?? new Map<string, StoredObject>();
    const have = new Map(inventory.map((i) => [i.key, i]));
    const messages: Message[] = [];
    for (const [key, object] of desired) {
      const edge = have.get(key);
      if (!edge) messages.push(this.toMessage(object, Operation.insert));
      else if (edge.uid !== object.uid || compareResourceVersions(String(object.resourceVersion), edge.resourceVersion) > 0) messages.push(this.toMessage(object, Operation.update));
    }
    for (const item of inventory) {
      if (desired.has(item.key)) continue;
      const [namespace, , name] = item.key.split('/');
      messages.push(newMessage({ source: this.name, group: 'resource', operation: Operation.delete, resource: toCloudResource(nodeName, item.key), resourceVersion: String(this.revision), content: { metadata: { uid: item.uid, name, namespace } } }));
    }
    const response: SyncResponse = { ownedTypes: [ANY_TYPE], messages };
    this.deps.bus.respond(request, responseTo(request, this.name, response));
  }

  private answerQuery(request: Message): void {
    const { nodeName, edgeResource } = parseCloudResource(request.resource);
    const object = this.cache.get(nodeName)?.get(edgeResource);
    const reply = object
      ? { ...responseTo(request, this.name, JSON.parse(object.value) as unknown), resourceVersion: String(object.resourceVersion) }
      : errorResponseTo(request, this.name, { code: 'ERR_NOT_FOUND', message: `${edgeResource} not found` });
    this.deps.bus.respond(request, reply);
  }

  /** An edge report (status, event): stored under the reporting node, so a node can only write its own. */
  private recordReport(message: Message): void {
    try {
      const { nodeName, edgeResource } = parseCloudResource(message.resource);
      this.store?.putStatus(nodeName, edgeResource, message.content ?? null);
      this.deps.bus.respond(message, responseTo(message, this.name, 'OK'));
    } catch (err) {
      this.deps.bus.respond(message, errorResponseTo(message, this.name, err as Error));
    }
  }

  private toMessage(object: StoredObject, operation: string): Message {
    const content = object.deleted
      ? { metadata: { uid: object.uid, name: object.key.split('/')[2], namespace: object.key.split('/')[0] } }
      : (JSON.parse(object.value) as unknown);
    return newMessage({ source: this.name, group: 'resource', operation, resource: toCloudResource(object.node, object.key), resourceVersion: String(object.resourceVersion), content });
  }

  private cacheFor(node: string): Map<string, StoredObject> {
    let objects = this.cache.get(node);
    if (!objects) this.cache.set(node, (objects = new Map()));
    return objects;
  }

  private countCached(): number {
    let n = 0;
    for (const objects of this.cache.values()) n += objects.size;
    return n;
  }
}
