import { describe, expect, it } from 'vitest';
import type { DeviceConfig } from '../../mappers/framework/device-config.js';
import { DeviceRegistry, fingerprintOf } from '../../mappers/framework/device-registry.js';

const device = (id: string, protocolName = 'modbus', port = 502): DeviceConfig => {
  const [namespace, name] = id.split('/') as [string, string];
  return { id, name, namespace, protocolName, protocolConfig: { ip: '127.0.0.1', port }, properties: [] };
};

describe('mapper device registry', () => {
  it('starts the devices of its protocols from a full membership and ignores the others', () => {
    const registry = new DeviceRegistry(['modbus']);
    const change = registry.sync([device('default/a'), device('default/b', 'virtual')]);
    expect(change).toEqual({ started: [device('default/a')], replaced: [], stopped: [] });
    expect(registry.ids()).toEqual(['default/a']);
  });

  it('keeps unchanged devices, replaces changed ones and stops missing ones on a new membership', () => {
    const registry = new DeviceRegistry(['modbus']);
    registry.sync([device('default/a'), device('default/b'), device('default/c')]);
    const change = registry.sync([device('default/a'), device('default/b', 'modbus', 503), device('default/d')]);
    expect(change).toEqual({ started: [device('default/d')], replaced: [device('default/b', 'modbus', 503)], stopped: ['default/c'] });
    expect(registry.get('default/b')?.protocolConfig.port).toBe(503);
  });

  it('applies membership/updated: a known id in added is a replacement, removed ids stop', () => {
    const registry = new DeviceRegistry(['modbus']);
    registry.sync([device('default/a'), device('default/b')]);
    const change = registry.update([device('default/a', 'modbus', 9), device('default/e')], ['default/b', 'default/unknown']);
    expect(change).toEqual({ started: [device('default/e')], replaced: [device('default/a', 'modbus', 9)], stopped: ['default/b'] });
  });

  it('stops a device that moved to a protocol it does not serve', () => {
    const registry = new DeviceRegistry(['modbus']);
    registry.sync([device('default/a')]);
    expect(registry.update([device('default/a', 'virtual')], [])).toEqual({ started: [], replaced: [], stopped: ['default/a'] });
  });

  it('fingerprints configurations independently of key order', () => {
    expect(fingerprintOf({ a: 1, b: { c: 2, d: [1, { e: 1, f: 2 }] } })).toBe(fingerprintOf({ b: { d: [1, { f: 2, e: 1 }], c: 2 }, a: 1 }));
    expect(fingerprintOf({ a: [1, 2] })).not.toBe(fingerprintOf({ a: [2, 1] }));
  });
});
