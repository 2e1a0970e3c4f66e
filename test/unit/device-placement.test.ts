import { describe, expect, it } from 'vitest';
import { DevicePlacement } from '../../cloudcore/devicecontroller/device-placement.js';
import { statusPatch } from '../../cloudcore/devicecontroller/device-status.js';
import type { Device, DeviceModel } from '../../shared/device-types.js';

let rv = 100;
const device = (name: string, node: string | undefined, model = 'm', extra: Partial<Device['spec']> = {}): Device => ({
  metadata: { name, namespace: 'ns', uid: `uid-${name}`, resourceVersion: String(rv++) },
  spec: { nodeName: node, deviceModelRef: { name: model }, properties: [{ name: 'temperature' }], ...extra },
});
const model = (name: string): DeviceModel => ({
  metadata: { name, namespace: 'ns', uid: `uid-${name}`, resourceVersion: String(rv++) },
  spec: { properties: [{ name: 'temperature', type: 'FLOAT' }] },
});
const summary = (changes: ReturnType<DevicePlacement['upsertDevice']>): string[] => changes.map((c) => `${c.node} ${c.operation} ${c.object.key}`);

describe('device placement', () => {
  it('sends a device and its model to its node, the model once for all devices that use it', () => {
    const p = new DevicePlacement();
    expect(summary(p.upsertModel(model('m')))).toEqual([]);
    expect(summary(p.upsertDevice(device('a', 'n1')))).toEqual(['n1 insert ns/device/a', 'n1 insert ns/devicemodel/m']);
    expect(summary(p.upsertDevice(device('b', 'n1')))).toEqual(['n1 insert ns/device/b']);
    expect([...p.desired('n1')].map((o) => o.key).sort()).toEqual(['ns/device/a', 'ns/device/b', 'ns/devicemodel/m']);
    expect(summary(p.deleteDevice(device('a', 'n1')))).toEqual(['n1 delete ns/device/a']);
    expect(summary(p.deleteDevice(device('b', 'n1')))).toEqual(['n1 delete ns/device/b', 'n1 delete ns/devicemodel/m']);
  });

  it('moves a device between nodes: deleted from the old one, with its model when unused, inserted on the new', () => {
    const p = new DevicePlacement();
    p.upsertModel(model('m'));
    p.upsertDevice(device('a', 'n1'));
    expect(summary(p.upsertDevice(device('a', 'n2')))).toEqual([
      'n1 delete ns/device/a',
      'n1 delete ns/devicemodel/m',
      'n2 insert ns/device/a',
      'n2 insert ns/devicemodel/m',
    ]);
    expect(p.nodeOf('ns', 'a')).toBe('n2');
    expect(summary(p.upsertDevice(device('a', undefined)))).toEqual(['n2 delete ns/device/a', 'n2 delete ns/devicemodel/m']);
  });

  it('sends a model created after its devices, and model changes to the nodes using it', () => {
    const p = new DevicePlacement();
    p.upsertDevice(device('a', 'n1', 'late'));
    expect(summary(p.upsertModel(model('late')))).toEqual(['n1 insert ns/devicemodel/late']);
    expect(summary(p.upsertModel(model('late')))).toEqual(['n1 update ns/devicemodel/late']);
    expect(summary(p.deleteModel(model('late')))).toEqual(['n1 delete ns/devicemodel/late']);
  });

  it('does not echo a status-only change down, and sends the device without its status', () => {
    const p = new DevicePlacement();
    const d = device('a', 'n1');
    p.upsertDevice(d);
    const withStatus: Device = { ...d, metadata: { ...d.metadata, resourceVersion: String(rv++) }, status: { state: 'online' } };
    expect(p.upsertDevice(withStatus)).toEqual([]);
    const [sent] = [...p.desired('n1')];
    expect(sent!.resourceVersion).toBe(d.metadata.resourceVersion);
    expect((sent!.content as Device).status).toBeUndefined();
    const changed = p.upsertDevice({ ...withStatus, spec: { ...withStatus.spec, properties: [{ name: 'temperature', desired: { value: '3' } }] } });
    expect(summary(changed)).toEqual(['n1 update ns/device/a']);
  });
});

describe('device status patch', () => {
  const d = device('a', 'n1', 'm', { properties: [{ name: 'temperature' }, { name: 'setpoint' }] });

  it('keeps twins of the device properties and drops those of removed ones', () => {
    const patch = statusPatch(d, {
      twins: [
        { propertyName: 'temperature', reported: { value: '1', metadata: { timestamp: '5' } } },
        { propertyName: 'gone', reported: { value: '2' } },
      ],
      state: 'online',
      lastOnlineTime: 't',
    });
    expect(patch).toEqual({
      status: { twins: [{ propertyName: 'temperature', reported: { value: '1', metadata: { timestamp: '5' } } }], state: 'online', lastOnlineTime: 't' },
    });
  });

  it('refuses malformed reports with ERR_INVALID_MESSAGE', () => {
    for (const bad of [
      null,
      {},
      { twins: 'x' },
      { twins: [{}] },
      { twins: [{ propertyName: 'temperature', reported: { value: 1 } }] },
      { twins: [], state: 'exploded' },
    ]) {
      expect(() => statusPatch(d, bad), JSON.stringify(bad)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_MESSAGE' }));
    }
  });
});
