import type { Device, DeviceCondition, DeviceModel } from '../../shared/device-types.js';

export const MODEL_RESOLVED = 'ModelResolved';

export type ModelProblem = 'NoDeviceModelRef' | 'DeviceModelNotFound' | 'PropertyTypeMissing';

/** Why mappers cannot serve a Device as it stands, or undefined when its model gives them what they need. */
export interface ModelVerdict {
  reason: ModelProblem;
  message: string;
}

/**
 * KubeEdge's CRDs accept a Device without `deviceModelRef` and a model property without `type`; so do ours.
 * A mapper cannot read a property whose type it does not know, so such a device is stored and placed, and its
 * status says why it is not served.
 */
export function modelVerdict(device: Device, model: DeviceModel | undefined): ModelVerdict | undefined {
  const ref = device.spec?.deviceModelRef?.name;
  if (!ref) return { reason: 'NoDeviceModelRef', message: 'spec.deviceModelRef.name is not set: mappers get no property types and collect nothing' };
  if (!model)
    return {
      reason: 'DeviceModelNotFound',
      message: `DeviceModel ${device.metadata.namespace ?? 'default'}/${ref} does not exist: mappers get no property types and collect nothing`,
    };
  const typed = new Set((model.spec?.properties ?? []).filter((p) => p.type).map((p) => p.name));
  const untyped = (device.spec?.properties ?? []).map((p) => p.name).filter((name) => !typed.has(name));
  if (untyped.length === 0) return undefined;
  return {
    reason: 'PropertyTypeMissing',
    message: `DeviceModel ${ref} gives no type for ${untyped.join(', ')}: mappers do not collect ${untyped.length === 1 ? 'it' : 'them'}`,
  };
}

/**
 * The status.conditions the Device should have, or undefined when the stored ones are right. A healthy Device
 * that never had the condition gets none: no status write per Device at every cloudcore start.
 */
export function conditionsUpdate(device: Device, verdict: ModelVerdict | undefined, now: Date): DeviceCondition[] | undefined {
  const conditions = device.status?.conditions ?? [];
  const current = conditions.find((c) => c.type === MODEL_RESOLVED);
  if (!verdict && (!current || current.status === 'True')) return undefined;
  const wanted: Omit<DeviceCondition, 'lastTransitionTime'> = verdict
    ? { type: MODEL_RESOLVED, status: 'False', reason: verdict.reason, message: verdict.message }
    : { type: MODEL_RESOLVED, status: 'True', reason: 'Resolved', message: 'every property has a type from the DeviceModel' };
  if (current && current.status === wanted.status && current.reason === wanted.reason && current.message === wanted.message) return undefined;
  const lastTransitionTime =
    current && current.status === wanted.status && current.lastTransitionTime ? current.lastTransitionTime : now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return [...conditions.filter((c) => c.type !== MODEL_RESOLVED), { ...wanted, lastTransitionTime }];
}
