import { Backoff, type BackoffOptions } from '../../shared/backoff.js';
import { MAX_TIMER_MS } from '../../shared/device-types.js';
import { ConfigError, asError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import type { DeviceConfig, PropertyConfig } from './device-config.js';
import { isUnreachable, type Driver } from './driver.js';
import { stateUpdatePayload, twinUpdatePayload, type ActualValue, type DeviceState } from './payloads.js';
import { stateUpdateTopic, twinUpdateTopic } from './topics.js';
import { formatValue, parseValue, type PropertyValue } from './value-codec.js';

export interface DeviceRunnerOptions {
  device: DeviceConfig;
  driver: Driver;
  /** Publishes JSON on the broker; a message published while disconnected is dropped. */
  publish: (topic: string, payload: unknown) => void;
  logger: Logger;
  reconnect: BackoffOptions;
  /** An unchanged state is published again after this long. */
  stateRepublishMs: number;
  now?: () => number;
}

/** Properties due within this much of each other are read in the same tick and reported together. */
const TICK_SLACK_MS = 5;

type Phase = 'idle' | 'connecting' | 'connected' | 'waiting' | 'failed' | 'stopped';

/**
 * One device: connects its driver, reads each property every collectCycle and reports the values, writes
 * deltas, and reconnects with a backoff when the device cannot be reached. Driver calls go through one queue,
 * so collects and writes never overlap.
 */
export class DeviceRunner {
  private phase: Phase = 'idle';
  private queue: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private stopping: Promise<void> | undefined;
  private readonly backoff: Backoff;
  private readonly nextDueAt = new Map<string, number>();
  private reported: { state: DeviceState; atMs: number } | undefined;
  /** Per property, the last failure or refused delta logged at warn; repeats go to debug. */
  private readonly warned = new Map<string, string>();
  private readonly now: () => number;

  constructor(private readonly options: DeviceRunnerOptions) {
    this.backoff = new Backoff(options.reconnect);
    this.now = options.now ?? Date.now;
  }

  private get stopped(): boolean {
    return this.phase === 'stopped';
  }

  get device(): DeviceConfig {
    return this.options.device;
  }

  start(): void {
    if (this.phase !== 'idle') return;
    void this.enqueue(() => this.connect());
  }

  /** Idempotent; waits for the driver call in flight, then closes the driver. */
  stop(): Promise<void> {
    if (!this.stopping) {
      this.phase = 'stopped';
      clearTimeout(this.timer);
      this.stopping = this.enqueue(() => this.closeDriver());
    }
    return this.stopping;
  }

  /** After a broker reconnect the peer may have lost the state: publish it again with the next result. */
  forgetReportedState(): void {
    this.reported = undefined;
  }

  applyDelta(delta: Readonly<Record<string, string>>): Promise<void> {
    return this.enqueue(() => this.writeDelta(delta));
  }

  private enqueue(task: () => Promise<void>): Promise<void> {
    const run = this.queue.then(task).catch((err: unknown) => this.options.logger.error({ err: asError(err) }, 'device task failed'));
    this.queue = run;
    return run;
  }

  private setTimer(fn: () => void, delayMs: number): void {
    clearTimeout(this.timer);
    // Above the limit Node would fire after 1 ms: a far-off collect would turn into a busy loop.
    this.timer = setTimeout(fn, Math.min(MAX_TIMER_MS, Math.max(0, delayMs)));
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    this.phase = 'connecting';
    try {
      await this.options.driver.connect(this.device);
    } catch (err) {
      if (err instanceof ConfigError) {
        await this.closeDriver();
        this.phase = 'failed';
        this.options.logger.error({ problems: err.problems }, 'device configuration invalid, not started');
        return;
      }
      await this.lose(err);
      return;
    }
    if (this.stopped) return;
    this.phase = 'connected';
    this.backoff.reset();
    this.options.logger.info({ properties: this.device.properties.length }, 'device connected');
    const now = this.now();
    for (const p of this.device.properties) this.nextDueAt.set(p.name, now);
    if (this.device.properties.length === 0) this.reportState('online');
    this.scheduleCollect();
  }

  /** The device cannot be reached: report it offline, close the driver, try again after a backoff. */
  private async lose(err: unknown): Promise<void> {
    if (this.stopped) return this.closeDriver();
    const wasConnected = this.phase === 'connected';
    const level = wasConnected || this.reported?.state !== 'offline' ? 'warn' : 'debug';
    this.options.logger[level]({ err: asError(err) }, 'device unreachable');
    this.reportState('offline');
    await this.closeDriver();
    if (this.stopped) return;
    this.phase = 'waiting';
    const delayMs = this.backoff.next();
    this.options.logger.debug({ delayMs }, 'device reconnect scheduled');
    this.setTimer(() => void this.enqueue(() => this.connect()), delayMs);
  }

  private async closeDriver(): Promise<void> {
    try {
      await this.options.driver.close();
    } catch (err) {
      this.options.logger.debug({ err: asError(err) }, 'driver close failed');
    }
  }

  private scheduleCollect(): void {
    if (this.phase !== 'connected' || this.nextDueAt.size === 0) return;
    const next = Math.min(...this.nextDueAt.values());
    this.setTimer(() => void this.enqueue(() => this.collect()), next - this.now());
  }

  private async collect(): Promise<void> {
    if (this.phase !== 'connected') return;
    const now = this.now();
    const due = this.device.properties.filter((p) => (this.nextDueAt.get(p.name) ?? now) <= now + TICK_SLACK_MS);
    for (const p of due) {
      const next = (this.nextDueAt.get(p.name) ?? now) + p.collectCycleMs;
      // A slow read must not turn into a burst of catch-up reads.
      this.nextDueAt.set(p.name, next > now ? next : now + p.collectCycleMs);
    }
    if (await this.readAndReport(due)) this.scheduleCollect();
  }

  /** Reads `properties` and publishes them in one twin/update; false when the device was lost meanwhile. */
  private async readAndReport(properties: readonly PropertyConfig[]): Promise<boolean> {
    const values: ActualValue[] = [];
    for (const property of properties) {
      let value: PropertyValue;
      try {
        value = await this.options.driver.read(property);
      } catch (err) {
        if (isUnreachable(err)) {
          await this.lose(err);
          return false;
        }
        this.warnOnce(property.name, 'property read failed', { err: asError(err) });
        continue;
      }
      this.warned.delete(property.name);
      values.push({ name: property.name, type: property.type, value: formatValue(property.type, value) });
    }
    if (values.length > 0) {
      this.reportState('online');
      this.options.publish(twinUpdateTopic(this.device.id), twinUpdatePayload(values, { nowMs: this.now() }));
    }
    return true;
  }

  private async writeDelta(delta: Readonly<Record<string, string>>): Promise<void> {
    if (this.stopped) return;
    if (this.phase !== 'connected') {
      this.options.logger.warn({ properties: Object.keys(delta), phase: this.phase }, 'device not connected, delta not applied');
      return;
    }
    const written: PropertyConfig[] = [];
    for (const [name, text] of Object.entries(delta)) {
      const desired = this.desiredValue(name, text);
      if (!desired) continue;
      try {
        await this.options.driver.write(desired.property, desired.value);
        this.options.logger.info({ property: name, value: text }, 'property written');
        written.push(desired.property);
      } catch (err) {
        if (isUnreachable(err)) return this.lose(err);
        this.options.logger.warn({ err: asError(err), property: name, value: text }, 'property write failed');
      }
    }
    // Read back what the device now holds: that, not the desired value, is the actual.
    if (written.length > 0) await this.readAndReport(written);
  }

  /** The property and converted value of one delta entry, or undefined (logged) when it cannot be written. */
  private desiredValue(name: string, text: string): { property: PropertyConfig; value: PropertyValue } | undefined {
    const property = this.device.properties.find((p) => p.name === name);
    if (!property) {
      this.warnOnce(name, 'delta for a property this mapper does not collect, ignored', { property: name, value: text });
      return undefined;
    }
    if (property.accessMode === 'ReadOnly') {
      this.warnOnce(name, 'delta for a ReadOnly property, not written', { property: name, value: text });
      return undefined;
    }
    try {
      return { property, value: parseValue(property.type, text) };
    } catch (err) {
      this.warnOnce(name, 'delta value does not fit the property type, not written', { err: asError(err), property: name, type: property.type });
      return undefined;
    }
  }

  /** edgecore repeats a delta after every report while expected ≠ actual: warn once per distinct problem. */
  private warnOnce(property: string, msg: string, fields: Record<string, unknown>): void {
    const key = `${msg}:${String(fields.value ?? (fields.err as Error | undefined)?.message ?? '')}`;
    const level = this.warned.get(property) === key ? 'debug' : 'warn';
    this.warned.set(property, key);
    this.options.logger[level]({ property, ...fields }, msg);
  }

  private reportState(state: DeviceState): void {
    const now = this.now();
    if (this.reported?.state === state && now - this.reported.atMs < this.options.stateRepublishMs) return;
    if (this.reported?.state !== state) this.options.logger.info({ state }, 'device state');
    this.reported = { state, atMs: now };
    this.options.publish(stateUpdateTopic(this.device.id), stateUpdatePayload(state, { nowMs: now }));
  }
}
