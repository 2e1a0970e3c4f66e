import { canonicalJson } from '../../shared/canonical-json.js';
import { DEVICE_MODEL_TYPE, DEVICE_TYPE, deviceId, type Device, type DeviceModel } from '../../shared/device-types.js';
import type { DesiredObject } from '../contracts/object-sync.js';
import { ReferenceIndex } from '../kube/reference-index.js';

export interface PlacementChange {
  node: string;
  operation: 'insert' | 'update' | 'delete';
  object: DesiredObject;
}

interface Placed {
  node: string;
  /** `<namespace>/<model name>`, when the device names a model. */
  model: string | undefined;
  device: Device;
  /** What the edge is sent: the device without its status, at the version where that last changed. */
  sent: DesiredObject;
  digest: string;
}

/**
 * Which node holds which Device and DeviceModel. A node holds every Device whose `spec.nodeName` is the node,
 * and each DeviceModel those Devices reference, counted per device: a model leaves a node with the last
 * device there that uses it. Every call returns the object messages that bring the nodes up to date.
 *
 * The status is the edge's own report coming back: a Device is sent without it, and a change of the status
 * alone is not sent at all (every report would otherwise echo down to the edge as a Device update).
 */
export class DevicePlacement {
  private readonly placed = new Map<string, Placed>();
  private readonly byNode = new Map<string, Set<string>>();
  private readonly models = new Map<string, DeviceModel>();
  private readonly modelRefs = new ReferenceIndex();

  upsertDevice(device: Device): PlacementChange[] {
    const id = deviceId(device);
    const old = this.placed.get(id);
    const node = device.spec?.nodeName || undefined;
    const modelName = device.spec?.deviceModelRef?.name;
    const model = modelName ? `${device.metadata.namespace}/${modelName}` : undefined;
    const changes: PlacementChange[] = [];
    if (old && old.node !== node) changes.push(...this.unplace(id, old, device));
    if (!node) return changes;
    const sameNode = old?.node === node;
    const digest = canonicalJson([
      device.metadata.labels,
      device.metadata.annotations,
      device.spec,
      (device.metadata as { deletionTimestamp?: unknown }).deletionTimestamp,
    ]);
    if (sameNode && old.digest === digest && old.device.metadata.uid === device.metadata.uid) {
      old.device = device;
      return changes;
    }
    const sent = desiredDevice(device);
    changes.push({ node, operation: sameNode ? 'update' : 'insert', object: sent });
    if (!sameNode || old.model !== model) {
      changes.push(...this.modelChanges(node, 'insert', model ? this.modelRefs.add(node, [model]) : []));
      if (sameNode && old.model) changes.push(...this.modelChanges(node, 'delete', this.modelRefs.remove(node, [old.model])));
    }
    this.placed.set(id, { node, model, device, sent, digest });
    let ids = this.byNode.get(node);
    if (!ids) this.byNode.set(node, (ids = new Set()));
    ids.add(id);
    return changes;
  }

  deleteDevice(device: Device): PlacementChange[] {
    const id = deviceId(device);
    const old = this.placed.get(id);
    return old ? this.unplace(id, old, device) : [];
  }

  upsertModel(model: DeviceModel): PlacementChange[] {
    const id = deviceId(model);
    const existed = this.models.has(id);
    this.models.set(id, model);
    return [...this.modelRefs.nodesFor(id)].map((node) => ({ node, operation: existed ? 'update' : 'insert', object: desiredModel(model) }));
  }

  deleteModel(model: DeviceModel): PlacementChange[] {
    const id = deviceId(model);
    if (!this.models.delete(id)) return [];
    return [...this.modelRefs.nodesFor(id)].map((node) => ({ node, operation: 'delete', object: desiredModel(model) }));
  }

  /** Everything the node should hold now. */
  *desired(node: string): Iterable<DesiredObject> {
    for (const id of this.byNode.get(node) ?? []) yield this.placed.get(id)!.sent;
    for (const ref of this.modelRefs.refsOf(node)) {
      const model = this.models.get(ref);
      if (model) yield desiredModel(model);
    }
  }

  /** The node a device is bound to, if any. */
  nodeOf(namespace: string, name: string): string | undefined {
    return this.placed.get(`${namespace}/${name}`)?.node;
  }

  device(namespace: string, name: string): Device | undefined {
    return this.placed.get(`${namespace}/${name}`)?.device;
  }

  private unplace(id: string, old: Placed, lastSeen: Device): PlacementChange[] {
    this.placed.delete(id);
    const ids = this.byNode.get(old.node);
    ids?.delete(id);
    if (ids?.size === 0) this.byNode.delete(old.node);
    const changes: PlacementChange[] = [{ node: old.node, operation: 'delete', object: desiredDevice(lastSeen) }];
    if (old.model) changes.push(...this.modelChanges(old.node, 'delete', this.modelRefs.remove(old.node, [old.model])));
    return changes;
  }

  /** Messages for models a node started or stopped needing; a model not created yet is sent when it is. */
  private modelChanges(node: string, operation: 'insert' | 'delete', refs: string[]): PlacementChange[] {
    return refs.flatMap((ref) => {
      const model = this.models.get(ref);
      return model ? [{ node, operation, object: desiredModel(model) }] : [];
    });
  }
}

function desiredDevice(device: Device): DesiredObject {
  const { status: _status, ...withoutStatus } = device;
  return toDesired(DEVICE_TYPE, withoutStatus as Device);
}

function desiredModel(model: DeviceModel): DesiredObject {
  return toDesired(DEVICE_MODEL_TYPE, model);
}

function toDesired(type: string, object: Device | DeviceModel): DesiredObject {
  const m = object.metadata;
  return { key: `${m.namespace ?? 'default'}/${type}/${m.name}`, uid: m.uid ?? '', resourceVersion: m.resourceVersion ?? '', content: object };
}
