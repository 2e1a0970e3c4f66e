import { randomUUID } from 'node:crypto';
import { DEVICE_MODEL_TYPE, DEVICE_STATUS_TYPE, DEVICE_TYPE, deviceId, type Device, type DeviceModel } from '../../shared/device-types.js';
import { EdgeModule } from '../contracts/addresses.js';
import { parseStored, type EdgeBus, type EdgeInboxes, type PublishMessage, type ReportMessage } from '../contracts/messages.js';
import { listStoredObjects } from '../contracts/store-query.js';
import { EdgeMetrics } from '../metrics/edge-metrics.js';
import type { Logger } from '../../shared/logger.js';
import { Group, Operation, newMessage, parseEdgeResource } from '../../shared/message.js';
import type { Module } from '../../shared/module-runtime.js';
import type { SqliteDatabase } from '../../shared/sqlite.js';
import { membershipDevice, statusReport, type DeviceEntry } from './device-entry.js';
import { MqttHandlers } from './mqtt-handlers.js';
import { TwinBatch } from './twin-batch.js';
import { applyDesired, emptyTwin, twinTypeOf, type TwinRecord } from './twin-rules.js';
import { TwinStore, type AttributeRow, type DeviceRow } from './twin-store.js';
import { membershipTopicBase } from './twin-topics.js';

export interface DeviceTwinDeps {
  nodeName: string;
  database: SqliteDatabase;
  bus: EdgeBus;
  logger: Logger;
  metrics?: EdgeMetrics;
}

/**
 * The edge's device twins (KubeEdge DeviceTwin). Devices and models come from the edge store (MetaManager
 * tells of every change); mappers speak KubeEdge's MQTT topics through EventBus; twins, attributes and
 * states live in SQLite; each device's status goes up through EdgeHub's durable outbox, coalesced, so an
 * offline edge keeps taking reports and sends the newest when the cloud is back.
 */
export class DeviceTwin implements Module {
  readonly name = EdgeModule.deviceTwin;
  readonly devices = new Map<string, DeviceEntry>();
  private readonly models = new Map<string, DeviceModel>();
  private batch: TwinBatch | undefined;
  private mqtt: MqttHandlers | undefined;
  private loaded: Promise<void> | undefined;
  private readonly metrics: EdgeMetrics;

  constructor(private readonly deps: DeviceTwinDeps) {
    this.metrics = deps.metrics ?? new EdgeMetrics();
  }

  async start(): Promise<void> {
    const store = new TwinStore(this.deps.database);
    this.batch = new TwinBatch(
      store,
      (e) => this.sendReport(e),
      (err) => this.deps.logger.error({ err }, 'cannot write device twins to the edge store'),
    );
    this.mqtt = new MqttHandlers({
      nodeName: this.deps.nodeName,
      devices: this.devices,
      batch: this.batch,
      publish: (t, p) => this.publish(t, p),
      membership: () => this.membership(),
      logger: this.deps.logger,
      metrics: this.metrics,
    });
    // Registered first, so no change MetaManager announces is missed; handled once the store is loaded.
    this.deps.bus.register(this.name, (m) => this.handle(m));
    this.loaded = this.load(store);
    await this.loaded;
  }

  async stop(): Promise<void> {
    if (this.deps.bus.has(this.name)) this.deps.bus.unregister(this.name);
    this.batch?.flush();
  }

  private async handle(message: EdgeInboxes['devicetwin']): Promise<void> {
    await this.loaded;
    if (message.operation === Operation.received) return this.mqtt!.handle(message.resource, message.content);
    let type: string;
    try {
      type = parseEdgeResource(message.resource).type;
    } catch {
      this.deps.logger.warn({ resource: message.resource }, 'devicetwin ignored message');
      return;
    }
    const content = message.content;
    if (type === DEVICE_TYPE) content === null ? this.removeDevice(message.resource) : this.upsertDevice(parseStored<Device>(content));
    else if (type === DEVICE_MODEL_TYPE) this.upsertModel(message.resource, content === null ? undefined : parseStored<DeviceModel>(content));
  }

  /** Twins and states from SQLite, Devices and models from the edge store; settles what changed meanwhile. */
  private async load(store: TwinStore): Promise<void> {
    const rows = new Map<string, DeviceRow>(store.devices().map((d) => [d.id, d]));
    const twins = group(store.twins(), (t) => [t.name, t.record] as [string, TwinRecord]);
    const attrs = group(store.attributes(), (a) => [a.name, a.attribute] as [string, AttributeRow]);
    for (const model of await listStoredObjects<DeviceModel>(this.deps.bus, this.name, DEVICE_MODEL_TYPE)) this.models.set(deviceId(model), model);
    const devices = await listStoredObjects<Device>(this.deps.bus, this.name, DEVICE_TYPE);
    for (const device of devices) {
      const id = deviceId(device);
      const row = rows.get(id);
      this.devices.set(id, {
        id,
        namespace: device.metadata.namespace ?? 'default',
        name: device.metadata.name ?? '',
        device,
        twins: twins.get(id) ?? new Map(),
        attributes: attrs.get(id) ?? new Map(),
        state: row?.state ?? 'unknown',
        lastOnline: row?.lastOnline ?? '',
      });
      this.upsertDevice(device, true);
    }
    for (const id of new Set([...rows.keys(), ...twins.keys()])) if (!this.devices.has(id)) this.batch!.deviceRemoved(id);
    this.batch!.flush();
    this.deps.logger.info({ devices: this.devices.size, models: this.models.size }, 'device twins loaded');
  }

  /** A Device arrived or changed: twins follow its properties, desired values become expected ones. */
  private upsertDevice(device: Device, loading = false): void {
    const id = deviceId(device);
    let entry = this.devices.get(id);
    if (!entry) {
      entry = {
        id,
        namespace: device.metadata.namespace ?? 'default',
        name: device.metadata.name ?? '',
        device,
        twins: new Map(),
        attributes: new Map(),
        state: 'unknown',
        lastOnline: '',
      };
      this.devices.set(id, entry);
      this.batch!.device(entry);
    }
    entry.device = device;
    const model = this.modelOf(entry);
    const types = new Map((model?.spec.properties ?? []).map((p) => [p.name, twinTypeOf(p.type)]));
    const properties = new Map((device.spec?.properties ?? []).map((p) => [p.name, p]));
    const now = Date.now();
    let desiredChanged = 0;
    for (const name of [...entry.twins.keys()]) {
      if (properties.has(name)) continue;
      entry.twins.delete(name);
      this.batch!.twinRemoved(entry, name);
    }
    for (const [name, property] of properties) {
      const current = entry.twins.get(name) ?? emptyTwin(types.get(name));
      const { record, changed } = applyDesired({ ...current, type: types.get(name) ?? current.type }, property.desired?.value, now);
      if (changed) desiredChanged++;
      if (changed || !entry.twins.has(name) || record.type !== current.type) {
        entry.twins.set(name, record);
        this.batch!.twin(entry, name);
      }
    }
    if (desiredChanged > 0) {
      this.metrics.twinUpdates.cloud.inc(desiredChanged);
      this.batch!.report(entry);
      this.batch!.then(() => this.mqtt!.publishDocumentAndDelta(entry, [...properties.keys()]));
    }
    if (!loading) this.batch!.then(() => this.publishMembership([entry], []));
  }

  private removeDevice(key: string): void {
    const { namespace, name } = parseEdgeResource(key);
    const id = `${namespace}/${name}`;
    const entry = this.devices.get(id);
    if (!entry) return;
    this.devices.delete(id);
    this.batch!.deviceRemoved(id);
    this.batch!.then(() => this.publishMembership([], [entry]));
  }

  /** A model changed: the types of its devices' twins follow, and mappers get the new configuration. */
  private upsertModel(key: string, model: DeviceModel | undefined): void {
    const { namespace, name } = parseEdgeResource(key);
    if (model) this.models.set(`${namespace}/${name}`, model);
    else this.models.delete(`${namespace}/${name}`);
    for (const entry of this.devices.values()) {
      if (entry.namespace === namespace && entry.device.spec?.deviceModelRef?.name === name) this.upsertDevice(entry.device);
    }
  }

  private modelOf(entry: DeviceEntry): DeviceModel | undefined {
    const name = entry.device.spec?.deviceModelRef?.name;
    return name ? this.models.get(`${entry.namespace}/${name}`) : undefined;
  }

  private membership(): unknown[] {
    return [...this.devices.values()].map((e) => membershipDevice(e, this.modelOf(e)));
  }

  private publishMembership(added: DeviceEntry[], removed: DeviceEntry[]): void {
    const payload = {
      event_id: randomUUID(),
      timestamp: Date.now(),
      added_devices: added.map((e) => membershipDevice(e, this.modelOf(e))),
      removed_devices: removed.map((e) => membershipDevice(e, this.modelOf(e))),
    };
    this.publish(`${membershipTopicBase(this.deps.nodeName)}/updated`, payload);
  }

  private sendReport(entry: DeviceEntry): void {
    if (!this.devices.has(entry.id)) return;
    const message: ReportMessage = newMessage({
      source: this.name,
      group: Group.twin,
      operation: Operation.update,
      resource: `${entry.namespace}/${DEVICE_STATUS_TYPE}/${entry.name}`,
      content: statusReport(entry),
    });
    void this.deps.bus
      .send(EdgeModule.edgeHub, message)
      .catch((err: unknown) => this.deps.logger.warn({ err, deviceId: entry.id }, 'device status not queued for the cloud'));
  }

  private publish(topic: string, payload: unknown): void {
    if (!this.deps.bus.has(EdgeModule.eventBus)) return;
    const message: PublishMessage = newMessage({
      source: this.name,
      group: Group.user,
      operation: Operation.publish,
      resource: topic,
      content: Buffer.from(JSON.stringify(payload)),
    });
    void this.deps.bus.send(EdgeModule.eventBus, message).catch(() => undefined);
  }
}

function group<T, V>(rows: Array<T & { deviceId: string }>, entry: (row: T) => [string, V]): Map<string, Map<string, V>> {
  const out = new Map<string, Map<string, V>>();
  for (const row of rows) {
    let m = out.get(row.deviceId);
    if (!m) out.set(row.deviceId, (m = new Map()));
    const [k, v] = entry(row);
    m.set(k, v);
  }
  return out;
}
