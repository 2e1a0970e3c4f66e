import net from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import type { Aedes, AuthenticateError } from 'aedes';
import type { MqttClient } from 'mqtt';
import { ConfigError, CoreError, asError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import { EDGE_SUBSCRIPTIONS, UPLOAD_TOPIC_PREFIX, isDeviceTopic } from '../../shared/device-topics.js';
import { Group, Operation, errorResponseTo, newMessage, responseTo } from '../../shared/message.js';
import { RULE_EVENT_TYPE, RULE_TYPE, parseEventPublish, type EdgeRule, type RuleEvent } from '../../shared/service-call.js';
import { listStoredObjects } from '../contracts/store-query.js';
import { EdgeModule } from '../contracts/addresses.js';
import { EdgeMetrics } from '../metrics/edge-metrics.js';
import type { DeliverMessage, EdgeBus, PublishMessage, ReceivedMessage, ReportMessage, StoredNotice } from '../contracts/messages.js';
import type { Module } from '../../shared/module-runtime.js';
import type { EventBusConfig } from './eventbus-config.js';

export interface EventBusDeps {
  config: EventBusConfig;
  bus: EdgeBus;
  logger: Logger;
  metrics?: EdgeMetrics;
}

/**
 * The edge's MQTT side: an embedded aedes broker, a client of an external broker (mosquitto), or both.
 * Messages on device and node topics go to the `twin` group; modules publish by sending `publish` messages
 * (resource = topic, content = payload) to this module, which publishes them on every active broker.
 */
export class EventBus implements Module {
  readonly name = EdgeModule.eventBus;
  private broker: Aedes | undefined;
  private server: net.Server | undefined;
  private client: MqttClient | undefined;
  /** Where the embedded broker listens once started. */
  port = 0;
  private readonly metrics: EdgeMetrics;
  /** eventbus → rest: the Rules whose source is this edge, by rule key, with the embedded broker's handler. */
  private readonly rules = new Map<string, { topic: string; handler?: (packet: { topic: string; payload: unknown }, done: () => void) => void }>();

  /** Rules whose topics this edge forwards to the cloud now. */
  get ruleCount(): number {
    return this.rules.size;
  }

  constructor(private readonly deps: EventBusDeps) {
    this.metrics = deps.metrics ?? new EdgeMetrics();
  }

  async start(): Promise<void> {
    const { mode } = this.deps.config;
    // Each library is loaded only in the mode that uses it: on a small edge host every MB counts.
    if (mode !== 'external') await this.startBroker();
    if (mode !== 'internal') await this.connectExternal();
    this.deps.bus.register(this.name, (m) => this.handle(m));
    // The Rules this edge already holds (eventbus → rest) are subscribed before the link comes up.
    if (this.deps.bus.has(EdgeModule.metaManager))
      for (const rule of await listStoredObjects<EdgeRule>(this.deps.bus, this.name, RULE_TYPE)) this.subscribeRule(rule);
  }

  async stop(): Promise<void> {
    if (this.deps.bus.has(this.name)) this.deps.bus.unregister(this.name);
    await new Promise<void>((resolve) => (this.client ? this.client.end(false, {}, () => resolve()) : resolve()));
    // Clients are closed by the broker; the listening socket then has nothing left to wait for.
    await new Promise<void>((resolve) => (this.broker ? this.broker.close(() => resolve()) : resolve()));
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private async startBroker(): Promise<void> {
    const { address, port, username, password } = this.deps.config.internal;
    const logger = this.deps.logger;
    const { Aedes } = await import('aedes');
    const broker = await Aedes.createBroker(
      username
        ? {
            authenticate: (client, user, pass, done) => {
              if (user === username && pass !== undefined && equal(pass, Buffer.from(password))) return done(null, true);
              logger.warn({ clientId: client.id }, 'mqtt client refused: bad username or password');
              done(Object.assign(new Error('bad username or password'), { returnCode: 4 }) as AuthenticateError, false);
            },
          }
        : {},
    );
    broker.on('clientError', (client, err) => logger.debug({ err, clientId: client.id }, 'mqtt client error'));
    for (const topic of EDGE_SUBSCRIPTIONS) {
      await new Promise<void>((resolve) =>
        broker.subscribe(topic, (packet, done) => (this.inbound('internal', packet.topic, packet.payload as Buffer), done()), resolve),
      );
    }
    const server = net.createServer(broker.handle);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', (err) =>
          reject(new ConfigError([`modules.eventBus.internal: cannot listen on ${address}:${port}: ${err.message}`], { cause: err })),
        );
        server.listen(port, address, () => resolve());
      });
    } catch (err) {
      broker.close();
      throw err;
    }
    this.broker = broker;
    this.server = server;
    this.port = (server.address() as net.AddressInfo).port;
    logger.info({ broker: `tcp://${address}:${this.port}`, auth: Boolean(username) }, 'mqtt broker listening');
  }

  /** KubeEdge retries the external broker every 5 s and keeps serving meanwhile; so does this. */
  private async connectExternal(): Promise<void> {
    const { default: mqtt } = await import('mqtt');
    const { url, username, password } = this.deps.config.external;
    const logger = this.deps.logger;
    const client = mqtt.connect(url, {
      username: username || undefined,
      password: password || undefined,
      reconnectPeriod: 5_000,
      connectTimeout: 10_000,
      clientId: `edgecore-${process.pid}-${Date.now().toString(36)}`,
    });
    let connected = false;
    client.on('connect', () => {
      connected = true;
      logger.info({ broker: url }, 'connected to external mqtt broker');
      const topics = [...new Set([...EDGE_SUBSCRIPTIONS, ...[...this.rules.values()].map((r) => r.topic).filter((t) => !isUploadTopic(t))])];
      client.subscribe(topics, { qos: 1 }, (err) => err && logger.error({ err, broker: url }, 'cannot subscribe on the external broker'));
    });
    client.on('close', () => {
      if (connected) logger.warn({ broker: url }, 'external mqtt broker connection lost, reconnecting');
      connected = false;
    });
    client.on('error', (err) => logger.warn({ err, broker: url }, 'external mqtt broker error'));
    client.on('message', (topic, payload) => {
      this.inbound('external', topic, payload);
      for (const [key, rule] of this.rules) if (topicMatches(rule.topic, topic)) this.ruleEvent(key, topic, payload);
    });
    this.client = client;
  }

  private inbound(broker: 'internal' | 'external', topic: string, payload: Buffer): void {
    this.metrics.mqttReceived[broker].inc();
    if (isDeviceTopic(topic)) {
      if (!this.deps.bus.has(EdgeModule.deviceTwin)) return;
      const message: ReceivedMessage = newMessage({
        source: this.name,
        group: Group.user,
        operation: Operation.received,
        resource: topic,
        content: Buffer.from(payload),
      });
      void this.deps.bus.send(EdgeModule.deviceTwin, message).catch((err: unknown) => this.deps.logger.debug({ err, topic }, 'mqtt message not delivered'));
      return;
    }
    // KubeEdge hands uploads to its cloud router, which routes them only by rules; there is no router here.
    this.deps.logger.debug({ topic, bytes: payload.length }, 'mqtt upload ignored, no router');
  }

  private handle(message: PublishMessage | DeliverMessage | StoredNotice): void {
    switch (message.operation) {
      case Operation.deliver:
        return void this.deliver(message);
      case Operation.update:
      case Operation.delete:
        return this.ruleChanged(message);
      case Operation.publish:
        return this.publish(message);
    }
  }

  private publish(message: PublishMessage): void {
    const topic = message.resource;
    const payload = message.content;
    if (this.broker) {
      this.broker.publish(
        { cmd: 'publish', topic, payload, qos: 0, retain: false, dup: false },
        (err) => err && this.deps.logger.warn({ err: asError(err), topic }, 'mqtt publish failed'),
      );
      this.metrics.mqttPublished.internal.inc();
    }
    if (this.client?.connected) {
      this.client.publish(topic, payload, { qos: 0 });
      this.metrics.mqttPublished.external.inc();
    }
  }

  /** A Rule whose source is this edge came, changed or went (MetaManager's notice): its subscription follows. */
  private ruleChanged(notice: StoredNotice): void {
    this.unsubscribeRule(notice.resource);
    if (notice.operation === Operation.delete || !notice.content) return;
    try {
      this.subscribeRule(JSON.parse(Buffer.from(notice.content).toString('utf8')) as EdgeRule);
    } catch (err) {
      this.deps.logger.warn({ err, rule: notice.resource }, 'rule from the cloud ignored');
    }
  }

  private subscribeRule(rule: EdgeRule): void {
    const key = `${rule.metadata.namespace}/${RULE_TYPE}/${rule.metadata.name}`;
    const ruleTopic = rule.spec.sourceResource?.topic;
    if (rule.sourceType !== 'eventbus' || !ruleTopic) return;
    // KubeEdge subscribes edge apps' messages on `<rule namespace>/<topic>` (cloud/pkg/router/provider/eventbus
    // RegisterListener: path.Join of namespace and topic, which also drops a leading /); its docs publish to
    // `default/test` for topic `test`. A topic under $hw/events/upload/ is taken as written: KubeEdge's edge sends
    // those uploads to its router already (edge/pkg/eventbus/mqtt/handler.go handleUploadTopic), which drops them
    // because it looks them up under a namespace; `default/$hw/...` would be a topic no app publishes on.
    const written = ruleTopic.replace(/^\/+/, '');
    const topic = isUploadTopic(written) ? written : `${rule.metadata.namespace}/${ruleTopic}`.replace(/\/+/g, '/');
    const entry: { topic: string; handler?: (packet: { topic: string; payload: unknown }, done: () => void) => void } = { topic };
    if (this.broker) {
      // done() releases the PUBACK: only once the message is in the outbox, so an acknowledged message survives
      // a crash. aedes hands over a socket read's packets at once, so they share one commit.
      entry.handler = (packet, done) => this.ruleEvent(key, packet.topic, packet.payload as Buffer, done);
      this.broker.subscribe(topic, entry.handler as never, () => undefined);
    }
    // $hw/events/upload/# is subscribed already. With a second, overlapping subscription a broker may send each
    // message once per matching filter (MQTT 3.1.1, 3.3.5), and the rule would get it twice.
    if (this.client?.connected && !isUploadTopic(topic)) this.client.subscribe(topic, { qos: 1 });
    this.rules.set(key, entry);
    this.deps.logger.info({ rule: key, topic }, 'rule subscribed: messages on its topic go to the cloud');
  }

  private unsubscribeRule(key: string): void {
    const entry = this.rules.get(key);
    if (!entry) return;
    this.rules.delete(key);
    if (this.broker && entry.handler) this.broker.unsubscribe(entry.topic, entry.handler as never, () => undefined);
    if (this.client?.connected && !isUploadTopic(entry.topic) && ![...this.rules.values()].some((r) => r.topic === entry.topic))
      this.client.unsubscribe(entry.topic);
    this.deps.logger.info({ rule: key, topic: entry.topic }, 'rule unsubscribed');
  }

  /**
   * eventbus → rest: a message on a Rule's topic goes into EdgeHub's durable outbox, in order, as an insert that
   * is never coalesced; the cloud POSTs it to the Rule's URL once the link is up. `queued` runs once EdgeHub
   * has committed it, or has failed to (logged: MQTT has no way to refuse a QoS 1 message but closing the client).
   */
  private ruleEvent(ruleKey: string, topic: string, payload: Buffer, queued?: () => void): void {
    const [namespace, , name] = ruleKey.split('/');
    const content: RuleEvent = { topic, payload: Buffer.from(payload).toString('base64') };
    const message: ReportMessage = newMessage({
      source: this.name,
      group: Group.user,
      operation: Operation.insert,
      resource: `${namespace}/${RULE_EVENT_TYPE}/${name}`,
      content,
    });
    const notQueued = (err: unknown): void => this.deps.logger.warn({ err, rule: ruleKey }, 'rule event not queued');
    this.deps.bus.request(EdgeModule.edgeHub, message).then(
      (reply) => {
        if (reply.operation === Operation.error) notQueued(reply.content);
        queued?.();
      },
      (err: unknown) => {
        notQueued(err);
        queued?.();
      },
    );
  }

  /**
   * rest → eventbus: publishes on every active broker with QoS 1 and answers once each has taken it (the
   * embedded broker's callback, the external broker's PUBACK). KubeEdge answers the caller before anything
   * is published.
   */
  private async deliver(message: DeliverMessage): Promise<void> {
    const { bus, logger } = this.deps;
    try {
      const { topic, payload: base64 } = parseEventPublish(message.content);
      const payload = Buffer.from(base64, 'base64');
      const published: Array<Promise<void>> = [];
      if (this.broker) {
        const broker = this.broker;
        published.push(
          new Promise((resolve, reject) =>
            broker.publish({ cmd: 'publish', topic, payload, qos: 1, retain: false, dup: false }, (err) => (err ? reject(asError(err)) : resolve())),
          ),
        );
        this.metrics.mqttPublished.internal.inc();
      }
      if (this.client) {
        if (!this.client.connected) throw new CoreError('ERR_UNAVAILABLE', `the external MQTT broker ${this.deps.config.external.url} is not connected`);
        const client = this.client;
        published.push(new Promise((resolve, reject) => client.publish(topic, payload, { qos: 1 }, (err) => (err ? reject(err) : resolve()))));
        this.metrics.mqttPublished.external.inc();
      }
      await Promise.all(published);
      logger.debug({ topic, bytes: payload.length }, 'published for the cloud');
      bus.respond(message, responseTo(message, this.name, 'OK'));
    } catch (err) {
      const e = err instanceof CoreError ? err : new CoreError('ERR_UNAVAILABLE', `publish failed: ${asError(err).message}`);
      logger.info({ code: e.code, reason: e.message }, 'publish for the cloud failed');
      bus.respond(message, errorResponseTo(message, this.name, { code: e.code, message: e.message }));
    }
  }
}

/** Edge apps' uploads, under KubeEdge's `$hw/events/upload/#`, which this edge always subscribes. */
const isUploadTopic = (topic: string): boolean => topic.startsWith(UPLOAD_TOPIC_PREFIX);

/** MQTT topic filter matching (MQTT 3.1.1, 4.7): `+` one level, `#` the rest. */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length || (f[i] !== '+' && f[i] !== t[i])) return false;
  }
  return f.length === t.length;
}

function equal(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
