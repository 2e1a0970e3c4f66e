import { describe, expect, it } from 'vitest';
import {
  TwinPayloadError,
  applyDesired,
  applyEdgeUpdate,
  deltaOf,
  emptyTwin,
  parsePayload,
  parseTwinUpdate,
  toMsgTwin,
} from '../../edgecore/devicetwin/twin-rules.js';
import { deviceTopicBases, parseInboundTopic } from '../../edgecore/devicetwin/twin-topics.js';

const props = new Set(['temperature', 'setpoint']);
const payload = (v: unknown): Buffer => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v));

describe('twin rules (KubeEdge dtmanager)', () => {
  it('bumps the edge version and stamps a changed actual value, and leaves an unchanged one alone', () => {
    const first = applyEdgeUpdate(emptyTwin('float'), { actual: '21.5' }, 1_000);
    expect(first.changed).toBe(true);
    expect(first.record.actual).toEqual({ value: '21.5', timestamp: 1_000 });
    expect(first.record.actualVersion).toEqual({ cloud: 0, edge: 1 });
    const same = applyEdgeUpdate(first.record, { actual: '21.5' }, 2_000);
    expect(same.changed).toBe(false);
    expect(same.record.actualVersion.edge).toBe(1);
    expect(same.record.actual!.timestamp).toBe(1_000);
  });

  it('bumps the cloud version of expected when the desired value changes, and clears it when emptied', () => {
    const set = applyDesired(emptyTwin('int'), '30', 5);
    expect(set.record.expected).toEqual({ value: '30', timestamp: 5 });
    expect(set.record.expectedVersion).toEqual({ cloud: 1, edge: 0 });
    expect(applyDesired(set.record, '30', 6).changed).toBe(false);
    const cleared = applyDesired(set.record, '', 7);
    expect(cleared.record.expected).toBeUndefined();
    expect(cleared.record.expectedVersion.cloud).toBe(2);
  });

  it("keeps the stored type when a mapper's update names another (KubeEdge dealTwinCompare)", () => {
    const r = applyEdgeUpdate(emptyTwin('float'), { actual: '21.5', type: 'Updated' }, 1);
    expect(r.record.type).toBe('float');
    expect(applyEdgeUpdate(r.record, { type: 'Updated' }, 2)).toEqual({ record: r.record, changed: false });
  });

  it('does not mutate the record it was given', () => {
    const before = emptyTwin('int');
    applyEdgeUpdate(before, { actual: '1', expected: '2' }, 1);
    expect(before).toEqual(emptyTwin('int'));
  });

  it('reports as delta only the properties whose expected differs from actual', () => {
    const t = new Map([
      ['setpoint', applyDesired(emptyTwin('int'), '30', 1).record],
      ['temperature', applyEdgeUpdate(applyDesired(emptyTwin('int'), '5', 1).record, { actual: '5' }, 2).record],
    ]);
    expect(deltaOf(t)).toEqual({ setpoint: '30' });
  });

  it('refuses payloads that are not JSON objects, unknown properties, bad keys and long values, with code 400', () => {
    expect(() => parsePayload(payload('{not json'))).toThrow(TwinPayloadError);
    expect(() => parsePayload(payload('[1,2]'))).toThrow(/JSON object/);
    const bad = [
      { twin: 'x' },
      { twin: {} },
      { twin: { humidity: { actual: { value: '1' } } } },
      { twin: { 'bad key!': { actual: { value: '1' } } } },
      { twin: { temperature: { actual: { value: 'x'.repeat(513) } } } },
      { twin: { temperature: { actual: { value: { nested: true } } } } },
      { twin: { temperature: {} } },
    ];
    for (const body of bad) {
      const err = (() => {
        try {
          parseTwinUpdate(body, props);
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(err, JSON.stringify(body)).toBeInstanceOf(TwinPayloadError);
      expect((err as TwinPayloadError).resultCode).toBe(400);
    }
  });

  it('takes numbers and booleans as their string form and keeps the event id', () => {
    const { eventId, body } = parsePayload(payload({ event_id: 'e1', twin: { temperature: { actual: { value: 21.5 }, metadata: { type: 'float' } } } }));
    expect(eventId).toBe('e1');
    expect(parseTwinUpdate(body, props).get('temperature')).toEqual({ actual: '21.5', type: 'float' });
  });

  it('writes MsgTwin JSON with versions only when asked', () => {
    const r = applyEdgeUpdate(emptyTwin('float'), { actual: '1' }, 9).record;
    expect(toMsgTwin(r, false)).toEqual({ optional: true, metadata: { type: 'float' }, actual: { value: '1', metadata: { timestamp: 9 } } });
    expect(toMsgTwin(r, true).actual_version).toEqual({ cloud: 0, edge: 1 });
  });
});

describe('device topics', () => {
  it('reads both id forms and keeps the form for the reply', () => {
    expect(parseInboundTopic('$hw/events/device/plant/thermo/twin/update')).toEqual({
      kind: 'device',
      action: 'twin-update',
      namespace: 'plant',
      name: 'thermo',
      base: '$hw/events/device/plant/thermo',
    });
    expect(parseInboundTopic('$hw/events/device/thermo/state/update')).toEqual({
      kind: 'device',
      action: 'state-update',
      namespace: 'default',
      name: 'thermo',
      base: '$hw/events/device/thermo',
    });
    expect(parseInboundTopic('$hw/events/node/edge-1/membership/get')).toEqual({
      kind: 'membership-get',
      node: 'edge-1',
      base: '$hw/events/node/edge-1/membership',
    });
  });

  it('publishes on its own on both forms for a device in default, and on the two-segment form elsewhere', () => {
    expect(deviceTopicBases('default', 'thermo')).toEqual(['$hw/events/device/default/thermo', '$hw/events/device/thermo']);
    expect(deviceTopicBases('plant', 'thermo')).toEqual(['$hw/events/device/plant/thermo']);
  });

  it('ignores topics it does not answer', () => {
    for (const t of [
      '$hw/events/device/a/b/c/twin/update',
      '$hw/events/device//twin/update',
      '$hw/events/device/a/twin/update/result',
      '$hw/events/upload/x',
      'other',
    ]) {
      expect(parseInboundTopic(t), t).toBeUndefined();
    }
  });
});
