import { randomUUID } from 'node:crypto';
import { Backoff, type BackoffOptions } from '../../shared/backoff.js';
import { asError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import { parseDeviceEntry, type DeviceConfig } from './device-config.js';
import { DeviceRegistry, type RegistryChange } from './device-registry.js';
import { DeviceRunner } from './device-runner.js';
import type { CreateDriver } from './driver.js';
import { MqttLink } from './mqtt-link.js';
import { membershipGetPayload, parseDelta, parseMembershipResult, parseMembershipUpdated } from './payloads.js';
import { DELTA_SUBSCRIPTION, deviceIdOfDeltaTopic, membershipGetResultTopic, membershipGetTopic, membershipUpdatedTopic } from './topics.js';

export interface MapperOptions {
  /** The node whose membership this mapper serves (`$hw/events/node/<nodeName>/...`). */
  nodeName: string;
  /** `protocol.protocolName` values this mapper serves; other devices are left to other mappers. */
  protocols: readonly string[];
  createDriver: CreateDriver;
  broker: { url: string; username?: string; password?: string };
  logger: Logger;
  /** Device reconnects. Default 1 s doubling to 30 s, with jitter. */
  deviceReconnect?: BackoffOptions;
  /** Broker reconnects. Default 1 s doubling to 30 s, with jitter. */
  brokerReconnect?: BackoffOptions;
  /** membership/get is asked again when unanswered for this long (doubling to 30 s). Default 5 s. */
  membershipRetryMs?: number;
  /** An unchanged device state is published again after this long. Default 30 s. */
  stateRepublishMs?: number;
  now?: () => number;
}

const DEFAULT_BACKOFF: BackoffOptions = { initialDelayMs: 1_000, maxDelayMs: 30_000 };

/**
 * A mapper process's core (docs/devices.md, section 5): keeps the devices of its protocols from membership
 * messages, runs one DeviceRunner per device, and routes deltas to them.
 */
export class Mapper {
  private readonly link: MqttLink;
  private readonly registry: DeviceRegistry;
  private readonly runners = new Map<string, DeviceRunner>();
  private readonly logger: Logger;
  private readonly membershipBackoff: Backoff;
  private membershipTimer: NodeJS.Timeout | undefined;
  /** Membership changes are applied one after another: a replacement stops the old driver before the new one. */
  private changes: Promise<void> = Promise.resolve();
  private stopping: Promise<void> | undefined;

  constructor(private readonly options: MapperOptions) {
    this.logger = options.logger.child({ module: 'mapper' });
    this.registry = new DeviceRegistry(options.protocols);
    const retryMs = options.membershipRetryMs ?? 5_000;
    this.membershipBackoff = new Backoff({ initialDelayMs: retryMs, maxDelayMs: Math.max(retryMs, 30_000) });
    const { nodeName } = options;
    this.link = new MqttLink({
      ...options.broker,
      clientId: `mapper-${options.protocols.join('-')}-${nodeName}-${randomUUID().slice(0, 8)}`,
      subscriptions: [membershipUpdatedTopic(nodeName), membershipGetResultTopic(nodeName), DELTA_SUBSCRIPTION],
      reconnect: options.brokerReconnect ?? DEFAULT_BACKOFF,
      logger: this.logger,
      onReady: () => this.onReady(),
      onDisconnect: () => clearTimeout(this.membershipTimer),
      onMessage: (topic, payload) => this.onMessage(topic, payload),
    });
  }

  /** Ids of the devices being run. */
  deviceIds(): string[] {
    return [...this.runners.keys()];
  }

  /** Returns at once; the broker and the devices are connected (and reconnected) in the background. */
  start(): void {
    this.logger.info({ nodeName: this.options.nodeName, protocols: this.options.protocols, broker: this.options.broker.url }, 'mapper starting');
    this.link.start();
  }

  /** Idempotent: stops every device (closing its driver), then disconnects from the broker. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      clearTimeout(this.membershipTimer);
      await this.changes;
      await Promise.all([...this.runners.values()].map((r) => r.stop()));
      this.runners.clear();
      await this.link.stop();
    })();
    return this.stopping;
  }

  private onReady(): void {
    for (const runner of this.runners.values()) runner.forgetReportedState();
    this.membershipBackoff.reset();
    this.requestMembership();
  }

  private requestMembership(): void {
    if (this.stopping) return;
    this.link.publish(membershipGetTopic(this.options.nodeName), membershipGetPayload({ nowMs: Date.now() }));
    this.logger.debug('membership requested');
    clearTimeout(this.membershipTimer);
    this.membershipTimer = setTimeout(() => {
      this.logger.warn('no membership/get/result yet, asking again');
      this.requestMembership();
    }, this.membershipBackoff.next());
  }

  private onMessage(topic: string, payload: Buffer): void {
    if (this.stopping) return;
    const { nodeName } = this.options;
    try {
      if (topic === membershipGetResultTopic(nodeName)) {
        const entries = parseMembershipResult(payload);
        clearTimeout(this.membershipTimer);
        this.applyChange(() => this.registry.sync(this.parseEntries(entries)));
      } else if (topic === membershipUpdatedTopic(nodeName)) {
        const update = parseMembershipUpdated(payload);
        this.applyChange(() => this.registry.update(this.parseEntries(update.added), update.removedIds));
      } else {
        this.onDelta(topic, payload);
      }
    } catch (err) {
      this.logger.warn({ err: asError(err), topic }, 'bad message ignored');
    }
  }

  private onDelta(topic: string, payload: Buffer): void {
    const id = deviceIdOfDeltaTopic(topic);
    if (id === undefined) return;
    const runner = this.runners.get(id);
    // Every mapper on the node hears every device's deltas: most are for another mapper's devices.
    if (!runner) return this.logger.debug({ deviceId: id }, 'delta for a device this mapper does not run, ignored');
    const delta = parseDelta(payload);
    this.logger.debug({ deviceId: id, delta }, 'delta');
    void runner.applyDelta(delta);
  }

  private parseEntries(entries: readonly unknown[]): DeviceConfig[] {
    const devices: DeviceConfig[] = [];
    for (const entry of entries) {
      const { device, problems } = parseDeviceEntry(entry);
      const ours = device !== undefined && this.options.protocols.includes(device.protocolName);
      if (problems.length > 0 && (ours || device === undefined)) this.logger.warn({ deviceId: device?.id, problems }, 'membership entry has problems');
      if (device) devices.push(device);
    }
    return devices;
  }

  private applyChange(compute: () => RegistryChange): void {
    this.changes = this.changes
      .then(async () => {
        if (this.stopping) return;
        const change = compute();
        for (const id of change.stopped) {
          await this.stopRunner(id);
          this.logger.info({ deviceId: id }, 'device removed');
        }
        for (const device of change.replaced) {
          await this.stopRunner(device.id);
          this.startRunner(device);
          this.logger.info({ deviceId: device.id }, 'device replaced');
        }
        for (const device of change.started) {
          this.startRunner(device);
          this.logger.info({ deviceId: device.id, properties: device.properties.map((p) => p.name) }, 'device added');
        }
      })
      .catch((err: unknown) => this.logger.error({ err: asError(err) }, 'membership change failed'));
  }

  private async stopRunner(id: string): Promise<void> {
    const runner = this.runners.get(id);
    this.runners.delete(id);
    await runner?.stop();
  }

  private startRunner(device: DeviceConfig): void {
    const logger = this.options.logger.child({ module: 'mapper', deviceId: device.id });
    let driver;
    try {
      driver = this.options.createDriver({ logger });
    } catch (err) {
      logger.error({ err: asError(err) }, 'driver could not be created');
      return;
    }
    const runner = new DeviceRunner({
      device,
      driver,
      logger,
      publish: (topic, payload) => this.link.publish(topic, payload),
      reconnect: this.options.deviceReconnect ?? DEFAULT_BACKOFF,
      stateRepublishMs: this.options.stateRepublishMs ?? 30_000,
      ...(this.options.now && { now: this.options.now }),
    });
    this.runners.set(device.id, runner);
    runner.start();
  }
}

/** Starts a mapper (see MapperOptions) and returns it; `stop()` it to close every driver and the MQTT client. */
export function runMapper(options: MapperOptions): Mapper {
  const mapper = new Mapper(options);
  mapper.start();
  return mapper;
}
