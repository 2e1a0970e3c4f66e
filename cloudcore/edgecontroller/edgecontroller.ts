import type { Bus } from '../../shared/bus.js';
import type { Logger } from '../../shared/logger.js';
import type { Module } from '../../shared/module-runtime.js';
import { CoreError } from '../../shared/errors.js';
import { Operation, errorResponseTo, parseCloudResource, responseTo, type Message } from '../../shared/message.js';
import { ANY_TYPE, CONTROLLERS_GROUP, SYNC_OPERATION, diffInventory, objectMessage, typeOfKey, type ConnectionEvent, type SyncRequest, type SyncResponse } from '../../shared/object-sync.js';
import type { ObjectSource, SourceChange } from './object-source.js';

export interface EdgeControllerDeps {
  source: ObjectSource;
  bus: Bus;
  logger: Logger;
}

/**
 * Keeps each edge node's objects in step with the source of truth (the cluster, or the local store): answers
 * CloudHub's resync with the difference to the node's inventory, streams changes as they happen, answers
 * the node's queries with objects it may read, and hands its reports to the source.
 */
export class EdgeController implements Module {
  readonly name = 'edgecontroller';

  constructor(private readonly deps: EdgeControllerDeps) {}

  async start(): Promise<void> {
    await this.deps.source.start((change) => this.forward(change));
    this.deps.bus.register(this.name, CONTROLLERS_GROUP, (m) => this.handle(m));
  }

  async stop(): Promise<void> {
    if (this.deps.bus.has(this.name)) this.deps.bus.unregister(this.name);
    await this.deps.source.stop();
  }

  private forward(change: SourceChange): void {
    void this.deps.bus.send('cloudhub', objectMessage(this.name, change.node, change.object, change.operation)).catch(() => undefined);
  }

  private async handle(message: Message): Promise<void> {
    switch (message.operation) {
      case SYNC_OPERATION:
        return this.answerSync(message as Message<SyncRequest>);
      case Operation.connect:
        this.deps.source.connected((message.content as ConnectionEvent).nodeName);
        this.deps.logger.debug({ nodeId: (message.content as ConnectionEvent).nodeName }, 'edge connected');
        return;
      case 'disconnect':
        this.deps.source.disconnected((message.content as ConnectionEvent).nodeName);
        this.deps.logger.debug({ nodeId: (message.content as ConnectionEvent).nodeName }, 'edge disconnected');
        return;
      case Operation.query:
        return this.answerQuery(message);
      default:
        return this.acceptReport(message);
    }
  }

  /** The difference between the node's inventory and what it should hold, for the types this source owns. */
  private answerSync(request: Message<SyncRequest>): void {
    const { nodeName, inventory } = request.content;
    const owned = new Set(this.deps.source.ownedTypes);
    const owns = (key: string): boolean => owned.has(ANY_TYPE) || owned.has(typeOfKey(key) ?? '');
    const messages = diffInventory(this.name, nodeName, this.deps.source.desired(nodeName), inventory, owns);
    const response: SyncResponse = { ownedTypes: [...owned], messages };
    this.deps.bus.respond(request, responseTo(request, this.name, response));
  }

  /** A node reads only objects it should hold (its Node, its pods, what they reference). */
  private answerQuery(request: Message): void {
    const { nodeName, edgeResource } = parseCloudResource(request.resource);
    const object = this.deps.source.lookup(nodeName, edgeResource);
    const reply = object
      ? { ...responseTo(request, this.name, object.content), resourceVersion: object.resourceVersion }
      : errorResponseTo(request, this.name, { code: 'ERR_NOT_FOUND', message: `${edgeResource} not found for node ${nodeName}` });
    this.deps.bus.respond(request, reply);
  }

  private async acceptReport(message: Message): Promise<void> {
    const { nodeName, edgeResource } = parseCloudResource(message.resource);
    try {
      await this.deps.source.report(nodeName, edgeResource, message);
      this.deps.bus.respond(message, responseTo(message, this.name, 'OK'));
    } catch (err) {
      const e = err as Error & { code?: string };
      this.deps.logger.warn({ nodeId: nodeName, resource: edgeResource, err: e }, 'edge report refused');
      this.deps.bus.respond(message, errorResponseTo(message, this.name, { code: err instanceof CoreError ? err.code : (e.code ?? 'ERR_REPORT'), message: e.message }));
    }
  }

}
