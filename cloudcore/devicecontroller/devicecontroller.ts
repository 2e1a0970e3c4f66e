import type { InventoryItem } from '../../shared/channel/frame.js';
import {
  DEVICE_API_GROUP,
  DEVICE_API_VERSION,
  DEVICE_MODEL_TYPE,
  DEVICE_STATUS_TYPE,
  DEVICE_TYPE,
  deviceId,
  type Device,
  type DeviceCondition,
  type DeviceModel,
} from '../../shared/device-types.js';
import { CoreError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import { Operation, errorResponseTo, responseTo, type Message } from '../../shared/message.js';
import type { Module } from '../../shared/module-runtime.js';
import { CloudModule } from '../contracts/addresses.js';
import type { CloudBus, ControllerMessage, NodeDelivery, ReportMessage, SyncMessage } from '../contracts/node-messages.js';
import { diffInventory, objectMessage, typeOfKey } from '../contracts/object-sync.js';
import { MERGE_PATCH, crdServed, kubeError, type KubeClients } from '../kube/kube-client.js';
import type { TokenBucket } from '../kube/rate-limiter.js';
import { Watched } from '../kube/watched.js';
import { DevicePlacement, type PlacementChange } from './device-placement.js';
import { statusPatch } from './device-status.js';
import { conditionsUpdate, modelVerdict } from './model-condition.js';

export interface DeviceControllerDeps {
  clients: KubeClients;
  limiter: TokenBucket;
  bus: CloudBus;
  /** CloudHub: where changes for a node go. */
  nodes: NodeDelivery;
  logger: Logger;
  /** One owner per node across replicas (issue 12): resolves when this replica may write for the node. */
  mayWrite?(node: string): Promise<void>;
}

const OWNED_TYPES = [DEVICE_TYPE, DEVICE_MODEL_TYPE];
const owns = (key: string): boolean => OWNED_TYPES.includes(typeOfKey(key) ?? '');

/**
 * Devices and DeviceModels down to the node each Device names, through the reliable channel and the
 * inventory resync; device status reports up into the Device's status subresource.
 */
export class DeviceController implements Module {
  readonly name = CloudModule.deviceController;
  private readonly devices: Watched<Device>;
  private readonly models: Watched<DeviceModel>;
  private readonly placement = new DevicePlacement();
  private ready = false;
  /** The ModelResolved problem last logged per device, so each is logged once, not at every event. */
  private readonly logged = new Map<string, string>();
  /** Inventories of nodes that resynced before the caches were filled, for the diff once they are. */
  private readonly pending = new Map<string, InventoryItem[]>();

  constructor(private readonly deps: DeviceControllerDeps) {
    const { kc } = deps.clients;
    const base = `/apis/${DEVICE_API_GROUP}/${DEVICE_API_VERSION}`;
    const list =
      <T>(plural: string) =>
      () =>
        deps.clients.rawList<T>(`${base}/${plural}`);
    this.devices = new Watched<Device>({
      name: 'devices',
      kc,
      metrics: deps.clients.metrics,
      path: `${base}/devices`,
      list: list<Device>('devices'),
      logger: deps.logger,
      onAdd: (d) => (this.apply(this.placement.upsertDevice(d)), this.checkModel(d)),
      onUpdate: (d) => (this.apply(this.placement.upsertDevice(d)), this.checkModel(d)),
      onDelete: (d) => (this.apply(this.placement.deleteDevice(d)), this.logged.delete(deviceId(d))),
    });
    this.models = new Watched<DeviceModel>({
      name: 'devicemodels',
      kc,
      metrics: deps.clients.metrics,
      path: `${base}/devicemodels`,
      list: list<DeviceModel>('devicemodels'),
      logger: deps.logger,
      onAdd: (m) => (this.apply(this.placement.upsertModel(m)), this.checkDevicesOf(m)),
      onUpdate: (m) => (this.apply(this.placement.upsertModel(m)), this.checkDevicesOf(m)),
      onDelete: (m) => (this.apply(this.placement.deleteModel(m)), this.checkDevicesOf(m)),
    });
  }

  /**
   * Resolves once Devices and DeviceModels are listed. Without the CRDs it resolves at once and keeps
   * trying in the background: cloudcore serves nodes meanwhile, and devices sync once the CRDs are installed.
   */
  async start(): Promise<void> {
    this.deps.bus.register(this.name, (m) => this.handle(m));
    // Models first: a device's first message then finds its model.
    const listed = this.models
      .start()
      .then(() => this.devices.start())
      .then(() => this.onReady());
    if (await crdServed(this.deps.clients, DEVICE_API_GROUP, DEVICE_API_VERSION, 'devicemodels')) await listed;
    else this.deps.logger.warn({ crds: 'build/crds' }, 'device CRDs not installed; devices sync once they are');
  }

  async stop(): Promise<void> {
    if (this.deps.bus.has(this.name)) this.deps.bus.unregister(this.name);
    await Promise.all([this.devices.stop(), this.models.stop()]);
  }

  private onReady(): void {
    this.ready = true;
    this.deps.logger.info(
      { devices: this.devices.list().length, models: this.models.list().length, pendingNodes: this.pending.size },
      'devicecontroller watching devices',
    );
    for (const [node, inventory] of this.pending) {
      for (const m of diffInventory(this.name, this.placement.desired(node), inventory, owns)) this.deps.nodes.deliver(node, m);
    }
    this.pending.clear();
  }

  private apply(changes: PlacementChange[]): void {
    if (!this.ready) return; // The first lists are answered by the resyncs (or onReady).
    for (const c of changes) this.deps.nodes.deliver(c.node, objectMessage(this.name, c.object, c.operation));
  }

  /** Devices using this model (by name, in its namespace) are checked again: it came, changed or went. */
  private checkDevicesOf(model: DeviceModel): void {
    for (const d of this.devices.list(model.metadata.namespace)) if (d.spec?.deviceModelRef?.name === model.metadata.name) this.checkModel(d);
  }

  /** Says in the Device's status and in the log when mappers cannot serve it (model-condition.ts). */
  private checkModel(device: Device): void {
    const ref = device.spec?.deviceModelRef?.name;
    const verdict = modelVerdict(device, ref ? this.models.get(ref, device.metadata.namespace) : undefined);
    const id = deviceId(device);
    const key = verdict ? `${verdict.reason}: ${verdict.message}` : '';
    if (verdict && this.logged.get(id) !== key)
      this.deps.logger.warn({ deviceId: id, reason: verdict.reason, problem: verdict.message }, 'device cannot be served by mappers');
    this.logged.set(id, key);
    const conditions = conditionsUpdate(device, verdict, new Date());
    if (conditions) void this.patchConditions(device, conditions);
  }

  private async patchConditions(device: Device, conditions: DeviceCondition[]): Promise<void> {
    const { namespace = 'default', name = '' } = device.metadata;
    await this.deps.limiter.acquire();
    try {
      await this.deps.clients.custom.patchNamespacedCustomObjectStatus(
        { group: DEVICE_API_GROUP, version: DEVICE_API_VERSION, namespace, plural: 'devices', name, body: { status: { conditions } } },
        MERGE_PATCH,
      );
    } catch (err) {
      const e = kubeError(err);
      if (e.code !== 'ERR_NOT_FOUND') this.deps.logger.warn({ deviceId: `${namespace}/${name}`, err: e }, 'device condition not written');
    }
  }

  private async handle(message: ControllerMessage): Promise<void> {
    switch (message.operation) {
      case Operation.sync:
        return this.answerSync(message);
      case Operation.disconnect:
        this.pending.delete(message.node);
        return;
      case Operation.connect:
        return;
      case Operation.query:
        this.deps.bus.respond(
          message,
          errorResponseTo(message, this.name, { code: 'ERR_NOT_FOUND', message: `devicecontroller answers no queries (${message.resource})` }),
        );
        return;
      default:
        return this.acceptReport(message);
    }
  }

  private answerSync(request: SyncMessage): void {
    const { node } = request;
    const { inventory } = request.content;
    let messages: Message[] = [];
    // Not listed yet: keep what the edge holds (its devices keep working) and settle the difference later.
    if (this.ready) messages = diffInventory(this.name, this.placement.desired(node), inventory, owns);
    else
      this.pending.set(
        node,
        inventory.filter((i) => owns(i.key)),
      );
    this.deps.bus.respond(request, responseTo(request, this.name, { ownedTypes: OWNED_TYPES, messages }));
  }

  private async acceptReport(message: ReportMessage): Promise<void> {
    const nodeName = message.node;
    try {
      const { namespace, type, name } = message.object;
      if (type !== DEVICE_STATUS_TYPE || name === undefined || message.operation !== Operation.update) {
        throw new CoreError('ERR_INVALID_MESSAGE', `${message.operation} ${message.resource} is not a device status report`);
      }
      await this.patchStatus(nodeName, namespace, name, message.content);
      this.deps.bus.respond(message, responseTo(message, this.name, 'OK'));
    } catch (err) {
      const e = err as CoreError;
      if (e.code !== 'ERR_UNAVAILABLE') this.deps.logger.warn({ nodeId: nodeName, resource: message.resource, err: e }, 'device report refused');
      this.deps.bus.respond(message, errorResponseTo(message, this.name, { code: e.code ?? 'ERR_INVALID_MESSAGE', message: e.message }));
    }
  }

  /** Only the node a Device is bound to may write its status. */
  private async patchStatus(node: string, namespace: string, name: string, content: unknown): Promise<void> {
    if (!this.ready) throw new CoreError('ERR_UNAVAILABLE', 'device caches not filled yet');
    const device = this.placement.device(namespace, name);
    if (!device || this.placement.nodeOf(namespace, name) !== node)
      throw new CoreError('ERR_FORBIDDEN', `device ${namespace}/${name} is not bound to node ${node}`);
    const body = statusPatch(device, content);
    // Another replica holds the edge's newest session: refused as unavailable, the edge sends it again there.
    await this.deps.mayWrite?.(node);
    await this.deps.limiter.acquire();
    try {
      await this.deps.clients.custom.patchNamespacedCustomObjectStatus(
        { group: DEVICE_API_GROUP, version: DEVICE_API_VERSION, namespace, plural: 'devices', name, body },
        MERGE_PATCH,
      );
    } catch (err) {
      throw kubeError(err);
    }
  }
}
