import type { Bus } from '../../shared/bus.js';
import type { Logger } from '../../shared/logger.js';
import type { Module } from '../../shared/module-runtime.js';
import { NULL_NAMESPACE, Operation, newMessage, type Message } from '../../shared/message.js';
import { nodeFacts, type NodeFactsOptions } from './node-facts.js';

export interface EdgedDeps {
  nodeName: string;
  facts: NodeFactsOptions;
  statusIntervalMs: number;
  bus: Bus;
  logger: Logger;
}

/**
 * The edge's pod manager. For now it reports the node: at start, at every (re)connection and whenever the
 * host changes. Reports go through EdgeHub's durable outbox, coalesced, so an offline edge sends only its
 * latest status when it comes back. (Pods on CRI arrive with the edged issue.)
 */
export class Edged implements Module {
  readonly name = 'edged';
  private timer: NodeJS.Timeout | undefined;
  private lastReported = '';

  constructor(private readonly deps: EdgedDeps) {}

  async start(): Promise<void> {
    this.deps.bus.register(this.name, this.name, (m) => this.handle(m));
    await this.reportNodeStatus(true);
    this.timer = setInterval(() => void this.reportNodeStatus(false), this.deps.statusIntervalMs).unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    if (this.deps.bus.has(this.name)) this.deps.bus.unregister(this.name);
  }

  private async handle(message: Message): Promise<void> {
    // After a (re)connection the cloud may have marked the node Unknown: report in full.
    if (message.operation === Operation.connect && message.content === 'cloud_connected') await this.reportNodeStatus(true);
  }

  private async reportNodeStatus(force: boolean): Promise<void> {
    const facts = nodeFacts(this.deps.facts);
    const digest = JSON.stringify(facts);
    if (!force && digest === this.lastReported) return;
    this.lastReported = digest;
    await this.deps.bus.send('edgehub', newMessage({ source: this.name, group: 'resource', operation: Operation.update, resource: `${NULL_NAMESPACE}/nodestatus/${this.deps.nodeName}`, content: facts }));
  }
}
