import type { Logger } from '../../shared/logger.js';
import { CoreError, asError } from '../../shared/errors.js';
import { Operation, errorResponseTo, isReportOperation, newMessage, parseEdgeResource, type EdgeResource, type Message } from '../../shared/message.js';
import { RULE_EVENT_TYPE } from '../../shared/service-call.js';
import { CloudModule } from '../contracts/addresses.js';
import type { CloudMetrics } from '../metrics/cloud-metrics.js';
import type { CloudBus, ReportMessage } from '../contracts/node-messages.js';
import type { ConnectionEvent } from '../contracts/object-sync.js';
import { KeyedWorkQueue } from './keyed-queue.js';
import { SYNC_PROVIDERS, controllerFor } from './routes.js';

/** The session an edge message came in on, as far as the router needs it. */
export interface EdgeOrigin {
  readonly nodeName: string;
  readonly logger: Logger;
  /** The report is processed (or refused for good): the edge may drop it from its outbox. */
  ackUpstream(seq: number): void;
}

interface Work {
  origin: EdgeOrigin;
  seq: number;
  report: ReportMessage;
  release: () => void;
  arrivedAtMs: number;
}

export interface UpstreamRouterOptions {
  bus: CloudBus;
  workers: number;
  timeoutMs: number;
  logger: Logger;
  metrics: CloudMetrics;
}

/**
 * Everything edges send to the controllers. Each message is parsed once, here, and goes on with its node
 * beside it (routes.ts says to whom). Reports run in a worker pool keyed by object: in order per object, in
 * parallel across objects.
 */
export class UpstreamRouter {
  private readonly queue: KeyedWorkQueue<Work>;

  constructor(private readonly options: UpstreamRouterOptions) {
    this.queue = new KeyedWorkQueue({ concurrency: options.workers, worker: (w) => this.process(w), logger: options.logger });
  }

  /** A report from the edge's durable outbox. ACKed once processed or refused as bad, not on a timeout. */
  report(origin: EdgeOrigin, seq: number, message: Message, release: () => void): void {
    const object = this.parse(origin, message);
    if (!object || !isReportOperation(message.operation)) {
      if (object) origin.logger.warn({ operation: message.operation, resource: message.resource }, 'edge report with an unknown operation dropped');
      origin.ackUpstream(seq);
      return release();
    }
    const report: ReportMessage = { ...message, operation: message.operation, node: origin.nodeName, object };
    // One report per object at a time keeps an object's reports in order. Rule events are not one object's
    // states but a stream: they go to the Router at once, in arrival order, and it keeps their order itself.
    const key = object.type === RULE_EVENT_TYPE ? `${origin.nodeName}/${message.resource}#${seq}` : `${origin.nodeName}/${message.resource}`;
    this.queue.push(key, { origin, seq, report, release, arrivedAtMs: performance.now() });
  }

  /** Reports waiting for a worker. */
  get queued(): number {
    return this.queue.size;
  }

  /** A query on the rpc stream: the answer, or an error response, to write back. */
  async query(origin: EdgeOrigin, message: Message): Promise<Message> {
    const object = this.parse(origin, message);
    const target = controllerFor(message);
    try {
      if (!object || message.operation !== Operation.query)
        throw new CoreError('ERR_INVALID_MESSAGE', `${message.operation} ${message.resource} is not a query`);
      return await this.options.bus.request(target, { ...message, operation: Operation.query, node: origin.nodeName, object }, this.options.timeoutMs);
    } catch (err) {
      const e = asError(err) as Error & { code?: string };
      return errorResponseTo(message, CloudModule.cloudHub, { code: e.code ?? 'ERR_UNKNOWN', message: e.message });
    }
  }

  /** A message on the twin stream: handed to its controller like a report, without waiting or ACK. */
  twin(origin: EdgeOrigin, message: Message): void {
    const object = this.parse(origin, message);
    const target = controllerFor(message);
    if (!object || !isReportOperation(message.operation) || !this.options.bus.has(target)) {
      origin.logger.debug({ target, operation: message.operation, resource: message.resource }, 'twin message from edge dropped');
      return;
    }
    void this.options.bus
      .request(target, { ...message, operation: message.operation, node: origin.nodeName, object }, this.options.timeoutMs)
      .catch(() => undefined);
  }

  /** Tells the controllers an edge's session opened (before any of its reports) or closed. */
  notify(operation: typeof Operation.connect | typeof Operation.disconnect, event: ConnectionEvent): void {
    for (const target of SYNC_PROVIDERS) {
      if (!this.options.bus.has(target)) continue;
      const message = { ...newMessage({ source: CloudModule.cloudHub, group: 'resource', operation, resource: '', content: event }), node: event.nodeName };
      void this.options.bus.send(target, message).catch(() => undefined);
    }
  }

  idle(): Promise<void> {
    return this.queue.idle();
  }

  private parse(origin: EdgeOrigin, message: Message): EdgeResource | undefined {
    try {
      return parseEdgeResource(message.resource);
    } catch (err) {
      origin.logger.warn({ err, resource: message.resource }, 'edge message with a bad resource dropped');
      return undefined;
    }
  }

  private async process({ origin, seq, report, release, arrivedAtMs }: Work): Promise<void> {
    const target = controllerFor(report);
    try {
      if (!this.options.bus.has(target)) {
        // Devices are off here (or no controller at all): nothing will ever take it, so it must not wait on the edge.
        origin.logger.debug({ resource: report.resource, target }, 'edge report dropped, no module takes it');
        origin.ackUpstream(seq);
        return;
      }
      const reply = await this.options.bus.request(target, report, this.options.timeoutMs);
      if (reply.operation === Operation.error && reply.content.code === 'ERR_UNAVAILABLE') {
        // The cluster could not take it now: leave it unACKed, the edge sends it again.
        origin.logger.warn({ resource: report.resource, reason: reply.content }, 'edge report not stored, edge will resend');
        return;
      }
      if (reply.operation === Operation.error) origin.logger.debug({ resource: report.resource, reason: reply.content }, 'edge report dropped after refusal');
      origin.ackUpstream(seq);
    } catch (err) {
      // Reports cut short by shutdown are resent to the next instance: one line per report would flood the log.
      const level = (err as { code?: string }).code === 'ERR_BUS_CLOSED' ? 'debug' : 'warn';
      origin.logger[level]({ err, resource: report.resource, target }, 'edge report not processed, edge will resend');
    } finally {
      this.options.metrics.upstreamProcessing.observe((performance.now() - arrivedAtMs) / 1000);
      release();
    }
  }
}
