import { describe, expect, it } from 'vitest';
import { collectCycleOf, entryId, parseDeviceEntry } from '../../mappers/framework/device-config.js';
import {
  membershipGetPayload,
  parseDelta,
  parseMembershipResult,
  parseMembershipUpdated,
  stateUpdatePayload,
  twinUpdatePayload,
} from '../../mappers/framework/payloads.js';
import { MAX_TIMER_MS, deviceDurationMs } from '../../shared/device-types.js';
import { DELTA_SUBSCRIPTION, deviceIdOfDeltaTopic, membershipGetTopic, stateUpdateTopic, twinUpdateTopic } from '../../mappers/framework/topics.js';

const entry = {
  id: 'default/thermometer-1',
  name: 'thermometer-1',
  namespace: 'default',
  description: '',
  state: 'online',
  protocol: { protocolName: 'modbus', configData: { ip: '127.0.0.1', port: 5020, slaveID: 1 } },
  properties: [
    {
      name: 'temperature',
      type: 'FLOAT',
      accessMode: 'ReadOnly',
      collectCycle: 500,
      visitors: { protocolName: 'modbus', configData: { register: 'HoldingRegister', offset: 0, scale: 0.1 } },
    },
    { name: 'label', type: 'STRING', accessMode: 'ReadWrite' },
    { name: 'note', type: 'STRING', accessMode: 'ReadWrite', visitors: {} },
    { name: 'other', type: 'INT', visitors: { protocolName: 'opcua', configData: {} } },
    { name: 'broken', type: 'LONG', visitors: { protocolName: 'modbus', configData: {} } },
  ],
  twin: {},
};

describe('mapper topics', () => {
  it('builds KubeEdge topics with <namespace>/<name> device ids', () => {
    expect(membershipGetTopic('edge-1')).toBe('$hw/events/node/edge-1/membership/get');
    expect(twinUpdateTopic('default/t1')).toBe('$hw/events/device/default/t1/twin/update');
    expect(stateUpdateTopic('ns/t1')).toBe('$hw/events/device/ns/t1/state/update');
    expect(DELTA_SUBSCRIPTION).toBe('$hw/events/device/+/+/twin/update/delta');
  });

  it('reads the device id from a delta topic in both id forms', () => {
    expect(deviceIdOfDeltaTopic('$hw/events/device/ns/t1/twin/update/delta')).toBe('ns/t1');
    expect(deviceIdOfDeltaTopic('$hw/events/device/t1/twin/update/delta')).toBe('default/t1');
    expect(deviceIdOfDeltaTopic('$hw/events/device/a/b/c/twin/update/delta')).toBeUndefined();
    expect(deviceIdOfDeltaTopic('$hw/events/device/ns/t1/twin/update')).toBeUndefined();
  });
});

describe('mapper payloads', () => {
  it('builds one twin/update carrying every value with its lower-case type', () => {
    const body = twinUpdatePayload(
      [
        { name: 'temperature', type: 'float', value: '23.5' },
        { name: 'alarm', type: 'boolean', value: 'false' },
      ],
      { nowMs: 1234, eventId: 'e1' },
    );
    expect(body).toEqual({
      event_id: 'e1',
      timestamp: 1234,
      twin: { temperature: { actual: { value: '23.5' }, metadata: { type: 'float' } }, alarm: { actual: { value: 'false' }, metadata: { type: 'boolean' } } },
    });
  });

  it('builds state/update and membership/get', () => {
    expect(stateUpdatePayload('offline', { nowMs: 5, eventId: 'e' })).toEqual({ event_id: 'e', timestamp: 5, state: 'offline' });
    expect(typeof membershipGetPayload({ nowMs: 0 }).event_id).toBe('string');
  });

  it('parses membership results, updates and deltas', () => {
    expect(parseMembershipResult(JSON.stringify({ event_id: 'x', devices: [entry] }))).toEqual([entry]);
    const update = parseMembershipUpdated(Buffer.from(JSON.stringify({ added_devices: [entry], removed_devices: [{ name: 'old', namespace: 'ns' }] })));
    expect(update).toEqual({ added: [entry], removedIds: ['ns/old'] });
    expect(parseMembershipUpdated('{}')).toEqual({ added: [], removedIds: [] });
    expect(parseDelta(JSON.stringify({ twin: {}, delta: { setpoint: '30' } }))).toEqual({ setpoint: '30' });
  });

  it('refuses malformed payloads with ERR_INVALID_MESSAGE', () => {
    const bad = [
      () => parseDelta('not json'),
      () => parseDelta('[]'),
      () => parseDelta('{"delta": 5}'),
      () => parseDelta('{"delta": {"a": 1}}'),
      () => parseMembershipResult('{"devices": {}}'),
      () => parseMembershipUpdated('{"added_devices": 3}'),
      () => parseMembershipUpdated('{"removed_devices": [{}]}'),
    ];
    for (const parse of bad) expect(parse).toThrow(expect.objectContaining({ code: 'ERR_INVALID_MESSAGE' }));
  });
});

describe('mapper device config', () => {
  it('keeps the properties with a visitor of the device protocol and reports the broken ones', () => {
    const { device, problems } = parseDeviceEntry(entry);
    expect(device).toMatchObject({
      id: 'default/thermometer-1',
      name: 'thermometer-1',
      namespace: 'default',
      protocolName: 'modbus',
      protocolConfig: { port: 5020 },
    });
    expect(device?.properties).toEqual([
      { name: 'temperature', type: 'float', accessMode: 'ReadOnly', collectCycleMs: 500, visitor: { register: 'HoldingRegister', offset: 0, scale: 0.1 } },
    ]);
    expect(problems).toEqual([expect.stringContaining('properties[4] (broken): type "LONG"')]);
  });

  it('derives ids from namespace and name, defaulting the namespace', () => {
    expect(entryId({ id: 'ns/a' })).toBe('ns/a');
    expect(entryId({ name: 'a', namespace: 'ns' })).toBe('ns/a');
    expect(entryId({ id: 'a' })).toBe('default/a');
    expect(entryId({})).toBeUndefined();
    expect(parseDeviceEntry({ id: 'a/b/c', protocol: { protocolName: 'modbus' } }).device).toBeUndefined();
    expect(parseDeviceEntry({ id: 'a/b' }).problems).toEqual(['device a/b: no protocol.protocolName']);
  });

  it('reads collectCycle in milliseconds, 0 or absent meaning 1000', () => {
    expect(collectCycleOf(undefined)).toBe(1000);
    expect(collectCycleOf(0)).toBe(1000);
    expect(collectCycleOf('250')).toBe(250);
    expect(collectCycleOf(1)).toBe(10);
    expect(collectCycleOf(86_400_000)).toBe(86_400_000);
  });

  it("reads KubeEdge's nanosecond cycles (before 1.18) as nanoseconds and never leaves the timer's range", () => {
    // The documented sample: "10 seconds, in nanoseconds".
    expect(collectCycleOf(10_000_000_000)).toBe(10_000);
    expect(collectCycleOf(1_000_000_000)).toBe(1_000);
    expect(collectCycleOf(100_000_000)).toBe(100);
    expect(collectCycleOf(99_999_999)).toBe(99_999_999);
    expect(collectCycleOf(100_000_001)).toBe(100);
    // Beyond what setTimeout takes (2^31 - 1 ms), in either unit.
    expect(collectCycleOf(9e18)).toBe(MAX_TIMER_MS);
    expect(deviceDurationMs(Number.MAX_SAFE_INTEGER, 1000, 10)).toBe(MAX_TIMER_MS);
    expect(deviceDurationMs(-5, 1000, 10)).toBe(1000);
    expect(deviceDurationMs('x', 1000, 10)).toBe(1000);
  });

  it('leaves out a property without a type (a Device with no model), saying why', () => {
    const { device, problems } = parseDeviceEntry({ ...entry, properties: [{ ...entry.properties[0], type: '' }] });
    expect(device?.properties).toEqual([]);
    expect(problems).toEqual([expect.stringContaining('(temperature): no type')]);
  });
});
