import type { Logger } from '../../shared/logger.js';
import type { Module } from '../../shared/module-runtime.js';
import type { CaSource } from '../../shared/pki/ca-source.js';
import { CoreError } from '../../shared/errors.js';
import { Operation, errorResponseTo, responseTo } from '../../shared/message.js';
import { CloudModule } from '../contracts/addresses.js';
import type { CloudBus, ControllerMessage, NodeDelivery, QueryMessage, ReportMessage, SyncMessage } from '../contracts/node-messages.js';
import { ANY_TYPE, diffInventory, objectMessage, typeOfKey } from '../contracts/object-sync.js';
import type { NodeReports, ObjectSource, SourceChange } from './object-source.js';
import { PodAutonomyWebhook, type PodAutonomyOptions } from './pod-autonomy.js';

export interface EdgeControllerDeps {
  source: ObjectSource;
  /** Where the nodes' reports go, and who hears that a node came or went. */
  reports: NodeReports;
  /**
   * Serve the pod autonomy webhook (the `kubernetes` source only; absent: pods keep Kubernetes' default
   * eviction). Its certificate comes from the CA at start.
   */
  autonomy?: Omit<PodAutonomyOptions, 'ca' | 'logger'> & { caSource: CaSource };
  bus: CloudBus;
  /** CloudHub: where changes for a node go. */
  nodes: NodeDelivery;
  logger: Logger;
}

/**
 * Keeps each edge node's objects in step with the source of truth (the cluster, or the local store): answers
 * CloudHub's resync with the difference to the node's inventory, streams changes as they happen, answers
 * the node's queries with objects it may read, and hands its reports on.
 */
export class EdgeController implements Module {
  readonly name = CloudModule.edgeController;
  private webhook: PodAutonomyWebhook | undefined;

  constructor(private readonly deps: EdgeControllerDeps) {}

  /** The reports side and the webhook start once the source has loaded: both read what it loaded. */
  async start(): Promise<void> {
    await this.deps.source.start((change) => this.forward(change));
    this.deps.reports.start?.();
    const autonomy = this.deps.autonomy;
    if (autonomy) {
      const { caSource, ...options } = autonomy;
      this.webhook = new PodAutonomyWebhook({ ...options, ca: await caSource.obtain(), logger: this.deps.logger });
      await this.webhook.start();
    }
    this.deps.bus.register(this.name, (m) => this.handle(m));
  }

  async stop(): Promise<void> {
    if (this.deps.bus.has(this.name)) this.deps.bus.unregister(this.name);
    this.deps.reports.stop?.();
    await this.webhook?.stop();
    await this.deps.source.stop();
  }

  private forward(change: SourceChange): void {
    this.deps.nodes.deliver(change.node, objectMessage(this.name, change.object, change.operation));
  }

  private async handle(message: ControllerMessage): Promise<void> {
    switch (message.operation) {
      case Operation.sync:
        return this.answerSync(message);
      case Operation.connect:
        this.deps.reports.connected(message.node);
        this.deps.logger.debug({ nodeId: message.node }, 'edge connected');
        return;
      case Operation.disconnect:
        this.deps.reports.disconnected(message.node);
        this.deps.logger.debug({ nodeId: message.node }, 'edge disconnected');
        return;
      case Operation.query:
        return this.answerQuery(message);
      default:
        return this.acceptReport(message);
    }
  }

  /** The difference between the node's inventory and what it should hold, for the types this source owns. */
  private answerSync(request: SyncMessage): void {
    const owned = new Set(this.deps.source.ownedTypes);
    const owns = (key: string): boolean => owned.has(ANY_TYPE) || owned.has(typeOfKey(key) ?? '');
    const messages = diffInventory(this.name, this.deps.source.desired(request.node), request.content.inventory, owns);
    this.deps.bus.respond(request, responseTo(request, this.name, { ownedTypes: [...owned], messages }));
  }

  /** A node reads only objects it should hold (its Node, its pods, what they reference). */
  private answerQuery(request: QueryMessage): void {
    const object = this.deps.source.lookup(request.node, request.resource);
    const reply = object
      ? { ...responseTo(request, this.name, object.content), resourceVersion: object.resourceVersion }
      : errorResponseTo(request, this.name, { code: 'ERR_NOT_FOUND', message: `${request.resource} not found for node ${request.node}` });
    this.deps.bus.respond(request, reply);
  }

  private async acceptReport(report: ReportMessage): Promise<void> {
    try {
      await this.deps.reports.report(report);
      this.deps.bus.respond(report, responseTo(report, this.name, 'OK'));
    } catch (err) {
      const e = err as Error & { code?: string };
      this.deps.logger.warn({ nodeId: report.node, resource: report.resource, err: e }, 'edge report refused');
      this.deps.bus.respond(
        report,
        errorResponseTo(report, this.name, { code: err instanceof CoreError ? err.code : (e.code ?? 'ERR_REPORT'), message: e.message }),
      );
    }
  }
}
