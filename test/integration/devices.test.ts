import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { EdgeCore } from '../../edgecore/edgecore.js';
import { Operation, newMessage } from '../../shared/message.js';
import { eventually, freePort, tcpProxy, tempDir, useControlPlane } from '../support/harness.js';
import { cloudSetup, edgeSetup, readEdgeStore, spawnDaemon, startCloud, startEdgeInProcess, type Cloud, type EdgeSetup } from '../support/daemons.js';
import { startModbusServer } from '../support/modbus-server.js';
import { mosquittoPub, mosquittoSub, startMosquitto } from '../support/mosquitto.js';
import type { ControlPlane } from '../support/control-plane.js';
import { mqttPeer } from '../support/mqtt-peer.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const controlPlane = useControlPlane();

interface Env {
  cp: ControlPlane;
  cloud: Cloud;
  dir: string;
  token: string;
  edge(name: string, opts?: { hubPort?: number; eventBus?: Record<string, unknown> }): Promise<{ core: EdgeCore; setup: EdgeSetup; broker: string }>;
}

async function env(): Promise<Env> {
  const cp = controlPlane();
  await cp.installCrds();
  const dir = tempDir();
  const cloud = await startCloud(await cloudSetup(dir, { kubeconfig: cp.kubeconfig }));
  const token = await cloud.token();
  return {
    cp,
    cloud,
    dir,
    token,
    async edge(name, opts = {}) {
      const setup = edgeSetup(dir, name, cloud.setup, { devices: true, hubPort: opts.hubPort, eventBus: opts.eventBus });
      const core = await startEdgeInProcess(setup, token);
      await eventually(() => expect(core.edgeHub.status).toMatchObject({ type: 'connected', synced: true }));
      return { core, setup, broker: `mqtt://127.0.0.1:${core.eventBus!.port}` };
    },
  };
}

/** A DeviceModel and a Device (a thermometer with a read-only temperature and a writable setpoint). */
function thermometer(namespace: string, name: string, node: string, desiredSetpoint?: string, modbusPort = 5020): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'List',
    items: [
      {
        apiVersion: 'devices.kubeedge.io/v1beta1',
        kind: 'DeviceModel',
        metadata: { name: 'thermometer-model', namespace },
        spec: {
          protocol: 'modbus',
          properties: [
            { name: 'temperature', type: 'FLOAT', accessMode: 'ReadOnly', unit: '°C' },
            { name: 'setpoint', type: 'INT', accessMode: 'ReadWrite' },
          ],
        },
      },
      {
        apiVersion: 'devices.kubeedge.io/v1beta1',
        kind: 'Device',
        metadata: { name, namespace },
        spec: {
          deviceModelRef: { name: 'thermometer-model' },
          nodeName: node,
          protocol: { protocolName: 'modbus', configData: { ip: '127.0.0.1', port: modbusPort, slaveID: 1 } },
          properties: [
            {
              name: 'temperature',
              collectCycle: 1000,
              reportToCloud: true,
              visitors: { protocolName: 'modbus', configData: { register: 'HoldingRegister', offset: 0, limit: 1, scale: 0.1 } },
            },
            {
              name: 'setpoint',
              collectCycle: 1000,
              ...(desiredSetpoint ? { desired: { value: desiredSetpoint } } : {}),
              visitors: { protocolName: 'modbus', configData: { register: 'HoldingRegister', offset: 1, limit: 1, scale: 1 } },
            },
          ],
        },
      },
    ],
  });
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const json = async (cp: ControlPlane, args: string[]): Promise<any> => JSON.parse(await cp.kubectlOk([...args, '-o', 'json']));
const reported = (device: any, property: string): string | undefined => device.status?.twins?.find((t: any) => t.propertyName === property)?.reported?.value;
const twinUpdate = (values: Record<string, string>): unknown => ({
  event_id: `e-${Date.now()}`,
  timestamp: Date.now(),
  twin: Object.fromEntries(Object.entries(values).map(([k, v]) => [k, { actual: { value: v }, metadata: { type: 'float' } }])),
});

describe('devices through a real cluster: kubectl, DeviceController, DeviceTwin, EventBus (MQTT)', () => {
  it(
    'reads a Modbus thermometer into kubectl through the modbus mapper, writes a desired setpoint to its register, and ' + 'catches up after a cut link',
    async () => {
      const e = await env();
      const proxy = await tcpProxy(e.cloud.setup.hubPort);
      const { core, broker } = await e.edge('dev-edge-m', { hubPort: proxy.port });
      const modbusPort = await freePort();
      const regs = { holding: [235, 20], coils: [] as boolean[] };
      const modbus = await startModbusServer(modbusPort, regs);
      const mapper = spawnDaemon(join(ROOT, 'dist', 'mappers', 'modbus', 'main.js'), ['--broker', broker, '--node-name', 'dev-edge-m'], 'modbus-mapper');
      await e.cp.kubectlOk(['apply', '-f', '-'], thermometer('default', 'thermo-m', 'dev-edge-m', undefined, modbusPort));

      // Register 0 holds tenths of a degree (scale 0.1).
      await eventually(
        async () => {
          const device = await json(e.cp, ['get', 'device', 'thermo-m']);
          expect(reported(device, 'temperature')).toBe('23.5');
          expect(device.status.state).toBe('online');
        },
        20_000,
        100,
      );
      regs.holding[0] = 241;
      await eventually(async () => expect(reported(await json(e.cp, ['get', 'device', 'thermo-m']), 'temperature')).toBe('24.1'), 10_000, 100);

      await e.cp.kubectlOk([
        'patch',
        'device',
        'thermo-m',
        '--type=json',
        '-p',
        JSON.stringify([{ op: 'add', path: '/spec/properties/1/desired', value: { value: '30' } }]),
      ]);
      await eventually(() => expect(regs.holding[1]).toBe(30), 10_000, 50);
      await eventually(
        async () => {
          const twin = (await json(e.cp, ['get', 'device', 'thermo-m'])).status.twins.find((t: any) => t.propertyName === 'setpoint');
          expect(twin).toMatchObject({ reported: { value: '30' }, observedDesired: { value: '30' } });
        },
        10_000,
        100,
      );

      // The link to the cloud is cut: the mapper keeps reporting into the edge store; the newest value goes up
      // once the link is back.
      proxy.block();
      proxy.cut();
      await eventually(() => expect(core.edgeHub.status.type).not.toBe('connected'));
      regs.holding[0] = 199;
      await eventually(() => expect(core.deviceTwin!.devices.get('default/thermo-m')!.twins.get('temperature')!.actual!.value).toBe('19.9'), 10_000, 50);
      regs.holding[0] = 187;
      await eventually(() => expect(core.deviceTwin!.devices.get('default/thermo-m')!.twins.get('temperature')!.actual!.value).toBe('18.7'), 10_000, 50);
      expect(reported(await json(e.cp, ['get', 'device', 'thermo-m']), 'temperature')).toBe('24.1');
      proxy.unblock();
      await eventually(async () => expect(reported(await json(e.cp, ['get', 'device', 'thermo-m']), 'temperature')).toBe('18.7'), 30_000, 100);

      // The device goes away: the mapper says so and the status follows.
      await modbus.stop();
      await eventually(async () => expect((await json(e.cp, ['get', 'device', 'thermo-m'])).status.state).toBe('offline'), 20_000, 200);
      await mapper.kill('SIGTERM');
      expect((await mapper.exited).code).toBe(0);
    },
  );

  it('shows a value a mapper reports in the Device status, and brings a desired value to the mapper as a delta', async () => {
    const e = await env();
    const { setup, broker } = await e.edge('dev-edge-a');
    const mapper = await mqttPeer(broker, ['$hw/events/node/dev-edge-a/membership/#', '$hw/events/device/#']);
    await e.cp.kubectlOk(['apply', '-f', '-'], thermometer('default', 'thermo-a', 'dev-edge-a'));

    // The device and its model reach the edge store, and the mapper learns the device with its configuration.
    await eventually(() =>
      expect([...readEdgeStore(setup.dbPath).keys()].filter((k) => k.includes('device')).sort()).toEqual([
        'default/device/thermo-a',
        'default/devicemodel/thermometer-model',
      ]),
    );
    const added = await mapper.next('$hw/events/node/dev-edge-a/membership/updated', (p) => p.added_devices?.some((d: any) => d.id === 'default/thermo-a'));
    const entry = added.added_devices.find((d: any) => d.id === 'default/thermo-a');
    expect(entry.protocol).toEqual({ protocolName: 'modbus', configData: { ip: '127.0.0.1', port: 5020, slaveID: 1 } });
    expect(entry.properties.map((p: any) => [p.name, p.type, p.accessMode, p.visitors.configData.offset])).toEqual([
      ['temperature', 'FLOAT', 'ReadOnly', 0],
      ['setpoint', 'INT', 'ReadWrite', 1],
    ]);
    await mapper.publish('$hw/events/node/dev-edge-a/membership/get', { event_id: 'm1' });
    expect((await mapper.next('$hw/events/node/dev-edge-a/membership/get/result', (p) => p.event_id === 'm1')).devices.map((d: any) => d.id)).toEqual([
      'default/thermo-a',
    ]);

    // Mapper → edge → cloud: the reported value and state land in the Device status.
    await mapper.publish('$hw/events/device/default/thermo-a/twin/update', twinUpdate({ temperature: '21.5' }));
    const result = await mapper.next('$hw/events/device/default/thermo-a/twin/update/result');
    expect(result.twin.temperature.actual.value).toBe('21.5');
    await mapper.publish('$hw/events/device/default/thermo-a/state/update', { event_id: 's1', state: 'online' });
    await eventually(
      async () => {
        const device = await json(e.cp, ['get', 'device', 'thermo-a']);
        expect(reported(device, 'temperature')).toBe('21.5');
        expect(device.status.state).toBe('online');
        expect(device.status.lastOnlineTime).toMatch(/^\d{4}-/);
      },
      10_000,
      100,
    );
    expect(await e.cp.kubectlOk(['get', 'devices', '--no-headers'])).toMatch(/thermo-a\s+dev-edge-a\s+thermometer-model\s+modbus\s+online/);

    // kubectl sets a desired value → the mapper is asked to write it.
    const since = mapper.messages.length;
    await e.cp.kubectlOk([
      'patch',
      'device',
      'thermo-a',
      '--type=json',
      '-p',
      JSON.stringify([{ op: 'add', path: '/spec/properties/1/desired', value: { value: '30' } }]),
    ]);
    const delta = await mapper.next('$hw/events/device/default/thermo-a/twin/update/delta', (p) => p.delta?.setpoint === '30', since);
    expect(delta.twin.setpoint.expected.value).toBe('30');
    // The mapper wrote it and reports it back: the delta is settled, the status shows both sides.
    await mapper.publish('$hw/events/device/default/thermo-a/twin/update', twinUpdate({ setpoint: '30' }));
    await eventually(
      async () => {
        const twin = (await json(e.cp, ['get', 'device', 'thermo-a'])).status.twins.find((t: any) => t.propertyName === 'setpoint');
        expect(twin).toMatchObject({ reported: { value: '30' }, observedDesired: { value: '30' } });
      },
      10_000,
      100,
    );
  });

  it("speaks KubeEdge's payloads to mosquitto_pub/mosquitto_sub on both device id forms, keeping twin types and giving cloud deltas an event id", async () => {
    const e = await env();
    const { core, broker } = await e.edge('dev-edge-k');
    await e.cp.kubectlOk(['apply', '-f', '-'], thermometer('default', 'thermo-k', 'dev-edge-k'));
    await eventually(() => expect(core.deviceTwin!.devices.has('default/thermo-k')).toBe(true));
    // A mapper of KubeEdge < 1.17 (one id segment) and one of today (two), as command-line clients.
    const legacy = await mosquittoSub(broker, ['$hw/events/device/thermo-k/twin/update/delta', '$hw/events/device/thermo-k/+/update/result']);
    const current = await mosquittoSub(broker, ['$hw/events/device/default/thermo-k/twin/update/delta']);

    // state/update/result is KubeEdge's DeviceMsg: device {name, state, lastOnlineTime}.
    await mosquittoPub(broker, '$hw/events/device/thermo-k/state/update', { event_id: 'st-1', timestamp: Date.now(), state: 'online' });
    const state = await legacy.next('$hw/events/device/thermo-k/state/update/result', (p) => p.event_id === 'st-1');
    expect(Object.keys(state.device).sort()).toEqual(['lastOnlineTime', 'name', 'state']);
    expect(state.device).toMatchObject({ name: 'thermo-k', state: 'online', lastOnlineTime: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) });

    // A mapper's metadata.type does not replace the model's type (KubeEdge dealTwinCompare).
    await mosquittoPub(broker, '$hw/events/device/thermo-k/twin/update', {
      event_id: 'tw-1',
      timestamp: Date.now(),
      twin: { temperature: { actual: { value: '21.5' }, metadata: { type: 'Updated' } } },
    });
    expect((await legacy.next('$hw/events/device/thermo-k/twin/update/result', (p) => p.event_id === 'tw-1')).twin.temperature.metadata).toEqual({
      type: 'float',
    });
    const typeOf = (device: any): string | undefined => device.status?.twins?.find((t: any) => t.propertyName === 'temperature')?.reported?.metadata?.type;
    await eventually(
      async () => {
        const device = await json(e.cp, ['get', 'device', 'thermo-k']);
        expect(reported(device, 'temperature')).toBe('21.5');
        expect(typeOf(device)).toBe('float');
      },
      10_000,
      100,
    );

    // A desired value from the cloud reaches both forms, under one fresh event id.
    await e.cp.kubectlOk([
      'patch',
      'device',
      'thermo-k',
      '--type=json',
      '-p',
      JSON.stringify([{ op: 'add', path: '/spec/properties/1/desired', value: { value: '30' } }]),
    ]);
    const oldForm = await legacy.next('$hw/events/device/thermo-k/twin/update/delta', (p) => p.delta?.setpoint === '30');
    const newForm = await current.next('$hw/events/device/default/thermo-k/twin/update/delta', (p) => p.delta?.setpoint === '30');
    expect(oldForm.event_id).toMatch(UUID);
    expect(newForm.event_id).toBe(oldForm.event_id);
    // The legacy mapper writes it and reports back on its own form; the status shows both sides and kept its type.
    await mosquittoPub(broker, '$hw/events/device/thermo-k/twin/update', {
      event_id: '',
      timestamp: Date.now(),
      twin: { setpoint: { actual: { value: '30' }, metadata: { type: 'int' } } },
    });
    await eventually(
      async () => {
        const device = await json(e.cp, ['get', 'device', 'thermo-k']);
        expect(device.status.twins.find((t: any) => t.propertyName === 'setpoint')).toMatchObject({
          reported: { value: '30' },
          observedDesired: { value: '30' },
        });
        expect(typeOf(device)).toBe('float');
      },
      10_000,
      100,
    );
  });

  it(
    'stores a Device without deviceModelRef and one whose model property has no type, and says in its status and the ' + 'log why mappers cannot serve it',
    async () => {
      const e = await env();
      const model = {
        apiVersion: 'devices.kubeedge.io/v1beta1',
        kind: 'DeviceModel',
        metadata: { name: 'untyped-model', namespace: 'default' },
        spec: { protocol: 'modbus', properties: [{ name: 'temperature', type: 'FLOAT' }, { name: 'mode' }] },
      };
      const device = (name: string, ref?: string) => ({
        apiVersion: 'devices.kubeedge.io/v1beta1',
        kind: 'Device',
        metadata: { name, namespace: 'default' },
        spec: {
          ...(ref && { deviceModelRef: { name: ref } }),
          nodeName: 'dev-edge-n',
          protocol: { protocolName: 'modbus', configData: { ip: '127.0.0.1', port: 1 } },
          properties: ['temperature', 'mode'].map((p, offset) => ({
            name: p,
            visitors: { protocolName: 'modbus', configData: { register: 'HoldingRegister', offset } },
          })),
        },
      });
      const { broker } = await e.edge('dev-edge-n');
      const mapper = spawnDaemon(join(ROOT, 'dist', 'mappers', 'modbus', 'main.js'), ['--broker', broker, '--node-name', 'dev-edge-n'], 'modbus-mapper');
      await e.cp.kubectlOk(
        ['apply', '-f', '-'],
        JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [model, device('no-model'), device('untyped', 'untyped-model')] }),
      );
      const condition = async (name: string): Promise<any> =>
        (await json(e.cp, ['get', 'device', name])).status?.conditions?.find((c: any) => c.type === 'ModelResolved');
      await eventually(
        async () => {
          expect(await condition('no-model')).toMatchObject({ status: 'False', reason: 'NoDeviceModelRef' });
          expect(await condition('untyped')).toMatchObject({ status: 'False', reason: 'PropertyTypeMissing', message: expect.stringContaining('mode') });
        },
        15_000,
        200,
      );
      const warned = (id: string) => e.cloud.logs.filter((l) => l.msg === 'device cannot be served by mappers' && l.deviceId === id);
      expect(warned('default/no-model')).toHaveLength(1);
      expect(warned('default/untyped')[0]).toMatchObject({ reason: 'PropertyTypeMissing' });
      // The edge hands the devices to mappers anyway; the mapper says which properties it cannot collect.
      // (The model may reach the edge after its device: wait for the entry that has it.)
      const problems = async (id: string, count: number): Promise<string[]> =>
        (await mapper.waitForLog((l) => l.msg === 'membership entry has problems' && l.deviceId === id && (l.problems as string[]).length === count))
          .problems as string[];
      expect(await problems('default/no-model', 2)).toEqual([expect.stringContaining('(temperature): no type'), expect.stringContaining('(mode): no type')]);
      expect(await problems('default/untyped', 1)).toEqual([expect.stringContaining('(mode): no type')]);

      // The model gets its type: the condition turns True.
      model.spec.properties[1] = { name: 'mode', type: 'STRING' };
      await e.cp.kubectlOk(['apply', '-f', '-'], JSON.stringify(model));
      await eventually(async () => expect(await condition('untyped')).toMatchObject({ status: 'True' }), 15_000, 200);
    },
  );

  it('keeps taking reports while the cloud is away and delivers the newest when it is back', async () => {
    const e = await env();
    const { core, broker } = await e.edge('dev-edge-b');
    const mapper = await mqttPeer(broker, ['$hw/events/device/#']);
    await e.cp.kubectlOk(['apply', '-f', '-'], thermometer('default', 'thermo-b', 'dev-edge-b'));
    await eventually(() => expect(core.deviceTwin!.devices.has('default/thermo-b')).toBe(true));

    await e.cloud.kill('SIGKILL');
    await eventually(() => expect(core.edgeHub.status.type).not.toBe('connected'));
    for (let i = 1; i <= 20; i++) {
      await mapper.publish('$hw/events/device/default/thermo-b/twin/update', { event_id: `off-${i}`, twin: { temperature: { actual: { value: `${i}.5` } } } });
    }
    // Every report was taken at the edge (a result means it is on disk), and waits there coalesced.
    await mapper.next('$hw/events/device/default/thermo-b/twin/update/result', (p) => p.event_id === 'off-20');
    expect(core.edgeHub.pendingUpstream()).toBe(1);

    const cloud = await startCloud(e.cloud.setup, 'cloudcore-again');
    onTestFinished(() => void cloud.kill());
    await eventually(async () => expect(reported(await json(e.cp, ['get', 'device', 'thermo-b']), 'temperature')).toBe('20.5'), 30_000, 200);
    await eventually(() => expect(core.edgeHub.pendingUpstream()).toBe(0));
  });

  it('answers garbage on device topics with an error on the result topic and keeps serving', async () => {
    const e = await env();
    const { core, broker } = await e.edge('dev-edge-c');
    const mapper = await mqttPeer(broker, ['$hw/events/device/#']);
    await e.cp.kubectlOk(['apply', '-f', '-'], thermometer('default', 'thermo-c', 'dev-edge-c'));
    await eventually(() => expect(core.deviceTwin!.devices.has('default/thermo-c')).toBe(true));
    const base = '$hw/events/device/default/thermo-c';

    await mapper.publish(`${base}/twin/update`, '\u0000{garbage');
    expect(await mapper.next(`${base}/twin/update/result`, (p) => p.code !== undefined)).toMatchObject({
      code: 400,
      reason: expect.stringMatching(/not JSON/),
    });
    await mapper.publish(`${base}/twin/update`, { event_id: 'x1', twin: { humidity: { actual: { value: '3' } } } });
    expect(await mapper.next(`${base}/twin/update/result`, (p) => p.event_id === 'x1')).toMatchObject({
      code: 400,
      reason: expect.stringMatching(/no property "humidity"/),
    });
    await mapper.publish(`${base}/state/update`, { event_id: 'x2', state: 'exploded' });
    expect(await mapper.next(`${base}/state/update/result`, (p) => p.event_id === 'x2')).toMatchObject({ code: 400 });
    await mapper.publish('$hw/events/device/default/nope/twin/update', { event_id: 'x3', twin: { temperature: { actual: { value: '1' } } } });
    expect(await mapper.next('$hw/events/device/default/nope/twin/update/result', (p) => p.event_id === 'x3')).toMatchObject({ code: 404 });

    // Nothing of the garbage was stored or sent up; a good update right after is taken.
    await mapper.publish(`${base}/twin/update`, twinUpdate({ temperature: '18.0' }));
    await eventually(async () => expect(reported(await json(e.cp, ['get', 'device', 'thermo-c']), 'temperature')).toBe('18.0'), 10_000, 100);
    const twins = (await json(e.cp, ['get', 'device', 'thermo-c'])).status.twins.map((t: any) => t.propertyName);
    expect(twins).toEqual(['temperature']);
  });

  it('moves a device between nodes, tells both mappers, and refuses a report from a node the device is not on', async () => {
    const e = await env();
    const a = await e.edge('dev-edge-d');
    const b = await e.edge('dev-edge-e');
    const mapperA = await mqttPeer(a.broker, ['$hw/events/node/+/membership/updated']);
    const mapperB = await mqttPeer(b.broker, ['$hw/events/node/+/membership/updated']);
    await e.cp.kubectlOk(['apply', '-f', '-'], thermometer('default', 'thermo-d', 'dev-edge-d'));
    await eventually(() => expect(readEdgeStore(a.setup.dbPath).has('default/device/thermo-d')).toBe(true));

    // Node e forges a status for node d's device: refused, logged, and dropped from e's outbox.
    await b.core.bus.send(
      'edgehub',
      newMessage({
        source: 'devicetwin',
        group: 'twin',
        operation: Operation.update,
        resource: 'default/devicestatus/thermo-d',
        content: { twins: [{ propertyName: 'temperature', reported: { value: '99' } }] },
      }),
    );
    await eventually(() =>
      expect(
        e.cloud.logs.some((l) => l.msg === 'device report refused' && l.nodeId === 'dev-edge-e' && (l.err as { code: string }).code === 'ERR_FORBIDDEN'),
      ).toBe(true),
    );
    await eventually(() => expect(b.core.edgeHub.pendingUpstream()).toBe(0));
    expect(reported(await json(e.cp, ['get', 'device', 'thermo-d']), 'temperature')).toBeUndefined();

    await e.cp.kubectlOk(['patch', 'device', 'thermo-d', '--type=merge', '-p', '{"spec":{"nodeName":"dev-edge-e"}}']);
    await eventually(() => {
      expect([...readEdgeStore(a.setup.dbPath).keys()].filter((k) => k.includes('device'))).toEqual([]);
      expect(readEdgeStore(b.setup.dbPath).has('default/device/thermo-d')).toBe(true);
    });
    await mapperA.next('$hw/events/node/dev-edge-d/membership/updated', (p) => p.removed_devices?.some((d: any) => d.id === 'default/thermo-d'));
    await mapperB.next('$hw/events/node/dev-edge-e/membership/updated', (p) => p.added_devices?.some((d: any) => d.id === 'default/thermo-d'));
    expect(a.core.deviceTwin!.devices.size).toBe(0);

    await e.cp.kubectlOk(['delete', 'device', 'thermo-d']);
    await mapperB.next('$hw/events/node/dev-edge-e/membership/updated', (p) => p.removed_devices?.some((d: any) => d.id === 'default/thermo-d'));
  });

  it('serves mappers on an external mosquitto broker and on the embedded one at once (mode both)', async () => {
    const e = await env();
    const mosquitto = await startMosquitto();
    const { core, broker } = await e.edge('dev-edge-x', { eventBus: { mode: 'both', external: { url: `tcp://127.0.0.1:${mosquitto.port}` } } });
    const external = await mqttPeer(mosquitto.url, ['$hw/events/device/#']);
    const internal = await mqttPeer(broker, ['$hw/events/device/#']);
    await e.cp.kubectlOk(['apply', '-f', '-'], thermometer('default', 'thermo-x', 'dev-edge-x'));
    await eventually(() => expect(core.deviceTwin!.devices.has('default/thermo-x')).toBe(true));

    // A mapper on mosquitto reports; the result goes to both brokers and the value to the cloud.
    await eventually(async () => {
      await external.publish('$hw/events/device/default/thermo-x/twin/update', { event_id: 'ext-1', twin: { temperature: { actual: { value: '17.25' } } } });
      await external.next('$hw/events/device/default/thermo-x/twin/update/result', (p) => p.event_id === 'ext-1', 0, 1_000);
    }, 20_000);
    await internal.next('$hw/events/device/default/thermo-x/twin/update/result', (p) => p.event_id === 'ext-1');
    await eventually(async () => expect(reported(await json(e.cp, ['get', 'device', 'thermo-x']), 'temperature')).toBe('17.25'), 10_000, 100);
    // And one on the embedded broker is heard as well.
    await internal.publish('$hw/events/device/default/thermo-x/twin/update', { event_id: 'int-1', twin: { temperature: { actual: { value: '17.5' } } } });
    await external.next('$hw/events/device/default/thermo-x/twin/update/result', (p) => p.event_id === 'int-1');
  });
});
