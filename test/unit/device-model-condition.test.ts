import { describe, expect, it } from 'vitest';
import { MODEL_RESOLVED, conditionsUpdate, modelVerdict } from '../../cloudcore/devicecontroller/model-condition.js';
import type { Device, DeviceModel } from '../../shared/device-types.js';

const model: DeviceModel = { metadata: { name: 'm', namespace: 'ns' }, spec: { properties: [{ name: 'temperature', type: 'FLOAT' }, { name: 'mode' }] } };
const device = (spec: Device['spec'], status?: Device['status']): Device => ({ metadata: { name: 'd', namespace: 'ns' }, spec, ...(status && { status }) });
const now = new Date('2026-12-04T09:00:00.123Z');

describe('ModelResolved: a Device KubeEdge accepts but mappers cannot serve', () => {
  it('names what is missing: the reference, the model, or the type of a property', () => {
    expect(modelVerdict(device({}), undefined)?.reason).toBe('NoDeviceModelRef');
    expect(modelVerdict(device({ deviceModelRef: { name: '' } }), undefined)?.reason).toBe('NoDeviceModelRef');
    expect(modelVerdict(device({ deviceModelRef: { name: 'm' } }), undefined)).toMatchObject({
      reason: 'DeviceModelNotFound',
      message: expect.stringContaining('ns/m'),
    });
    const untyped = modelVerdict(device({ deviceModelRef: { name: 'm' }, properties: [{ name: 'temperature' }, { name: 'mode' }] }), model);
    expect(untyped).toMatchObject({ reason: 'PropertyTypeMissing', message: expect.stringContaining('no type for mode') });
    expect(modelVerdict(device({ deviceModelRef: { name: 'm' }, properties: [{ name: 'temperature' }] }), model)).toBeUndefined();
  });

  it('writes the condition only when it changes, and never for a healthy Device that never had it', () => {
    const verdict = modelVerdict(device({}), undefined);
    expect(conditionsUpdate(device({}), undefined, now)).toBeUndefined();
    const written = conditionsUpdate(device({}), verdict, now)!;
    expect(written).toEqual([
      { type: MODEL_RESOLVED, status: 'False', reason: 'NoDeviceModelRef', message: verdict!.message, lastTransitionTime: '2026-12-04T09:00:00Z' },
    ]);
    expect(conditionsUpdate(device({}, { conditions: written }), verdict, now)).toBeUndefined();
    // Fixed: the condition turns True, and other conditions are kept.
    const other = { type: 'Other', status: 'True' as const };
    const fixed = conditionsUpdate(device({}, { conditions: [other, ...written] }), undefined, new Date('2026-12-04T10:00:00Z'))!;
    expect(fixed).toEqual([other, expect.objectContaining({ type: MODEL_RESOLVED, status: 'True', lastTransitionTime: '2026-12-04T10:00:00Z' })]);
  });
});
