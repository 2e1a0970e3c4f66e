import net from 'node:net';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { describe, expect, it, onTestFailed, onTestFinished } from 'vitest';
import { createLogger } from '../../shared/logger.js';
import { runMapper } from '../../mappers/framework/mapper.js';
import { createModbusDriver } from '../../mappers/modbus/modbus-driver.js';
import { eventually, freePort } from '../support/harness.js';
import { startModbusServer, type Registers } from '../support/modbus-server.js';

// The mappers against real components: an aedes broker, a modbus-serial TCP server, and an mqtt.js client
// playing edgecore's DeviceTwin (docs/devices.md, sections 3 and 5).

const NODE = 'edge-1';
const CYCLE_MS = 200;
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const THERMOMETER = 'default/thermometer-1';

interface Received {
  topic: string;
  body: any;
}

async function startBroker(port = 0, credentials?: { username: string; password: string }): Promise<{ port: number; url: string; stop(): Promise<void> }> {
  const broker = await Aedes.createBroker();
  if (credentials) {
    broker.authenticate = (_client, username, password, done) => done(null, username === credentials.username && password?.toString() === credentials.password);
  }
  const server = net.createServer(broker.handle);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const bound = (server.address() as net.AddressInfo).port;
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    })());
  onTestFinished(stop);
  return { port: bound, url: `mqtt://127.0.0.1:${bound}`, stop };
}

/** edgecore's side of the topics: answers membership/get with `devices` and records everything mappers send. */
async function edgePeer(url: string, devices: unknown[], credentials: { username?: string; password?: string } = {}) {
  const received: Received[] = [];
  const client = mqtt.connect(url, { reconnectPeriod: 100, ...credentials });
  client.on('message', (topic, payload) => {
    let body: unknown;
    try {
      body = JSON.parse(payload.toString());
    } catch {
      body = payload.toString();
    }
    received.push({ topic, body });
    if (topic === `$hw/events/node/${NODE}/membership/get`) {
      void client.publishAsync(`$hw/events/node/${NODE}/membership/get/result`, JSON.stringify({ event_id: 'r', timestamp: Date.now(), devices }));
    }
  });
  await client.subscribeAsync(['$hw/events/node/+/membership/get', '$hw/events/device/#'], { qos: 1 });
  onTestFinished(() => client.endAsync(true));
  const reports = (id: string, from = 0) =>
    received
      .slice(from)
      .filter((m) => m.topic === `$hw/events/device/${id}/twin/update`)
      .map((m) => m.body);
  return {
    received,
    reports,
    states: (id: string, from = 0) =>
      received
        .slice(from)
        .filter((m) => m.topic === `$hw/events/device/${id}/state/update`)
        .map((m) => m.body.state as string),
    membershipRequests: () => received.filter((m) => m.topic.endsWith('/membership/get')).length,
    /** The newest reported actual value of a property. */
    actual: (id: string, property: string, from = 0) =>
      reports(id, from)
        .reverse()
        .find((r) => r.twin[property])?.twin[property].actual.value as string | undefined,
    publish: (topic: string, payload: unknown) => client.publishAsync(topic, typeof payload === 'string' ? payload : JSON.stringify(payload)),
  };
}

const property = (name: string, type: string, accessMode: string, protocolName: string, configData: object) => ({
  name,
  type,
  accessMode,
  unit: '',
  minimum: '',
  maximum: '',
  collectCycle: CYCLE_MS,
  reportCycle: CYCLE_MS,
  reportToCloud: true,
  visitors: { protocolName, configData },
  desired: { value: '', metadata: {} },
});

function modbusDevice(name: string, port: number, properties: object[]) {
  return {
    id: `default/${name}`,
    name,
    namespace: 'default',
    description: '',
    state: 'unknown',
    last_online: '',
    model: 'thermometer-model',
    protocol: { protocolName: 'modbus', configData: { ip: '127.0.0.1', port, slaveID: 1 } },
    properties,
    attributes: {},
    twin: {},
  };
}

const thermometer = (port: number) =>
  modbusDevice('thermometer-1', port, [
    property('temperature', 'FLOAT', 'ReadOnly', 'modbus', { register: 'HoldingRegister', offset: 0, limit: 1, scale: 0.1 }),
    property('setpoint', 'INT', 'ReadWrite', 'modbus', { register: 'HoldingRegister', offset: 1, limit: 1 }),
    property('alarm', 'BOOLEAN', 'ReadWrite', 'modbus', { register: 'CoilRegister', offset: 0, limit: 1 }),
  ]);

/** Broker, Modbus server, peer and an in-process modbus mapper, all torn down when the test ends. */
async function setup(extraDevices: (port: number) => unknown[] = () => []) {
  const broker = await startBroker(await freePort());
  const modbusPort = await freePort();
  const regs: Registers = { holding: [235, 21, 0, 0, 0, 1500], coils: [false] };
  const modbus = await startModbusServer(modbusPort, regs);
  const devices = [thermometer(modbusPort), ...extraDevices(modbusPort)];
  const peer = await edgePeer(broker.url, devices);
  const logs: { level: number; msg: string; [k: string]: unknown }[] = [];
  const logger = createLogger({ name: 'modbus-mapper', level: 'debug', destination: { write: (line: string) => void logs.push(JSON.parse(line)) } });
  onTestFailed(() =>
    console.error(
      logs
        .slice(-40)
        .map((l) => JSON.stringify(l).slice(0, 300))
        .join('\n'),
    ),
  );
  const fast = { initialDelayMs: 100, maxDelayMs: 400 };
  const mapper = runMapper({
    nodeName: NODE,
    protocols: ['modbus'],
    createDriver: createModbusDriver,
    broker: { url: broker.url },
    logger,
    deviceReconnect: fast,
    brokerReconnect: fast,
    membershipRetryMs: 1_000,
  });
  onTestFinished(() => mapper.stop());
  return { broker, modbusPort, regs, modbus, devices, peer, logs, mapper };
}

describe('modbus mapper', () => {
  it('reports all register values in one twin/update and a changed register within two cycles', async () => {
    const { regs, peer } = await setup();
    const first = await eventually(() => {
      const r = peer.reports(THERMOMETER).find((b) => b.twin.temperature && b.twin.setpoint && b.twin.alarm);
      expect(r).toBeDefined();
      return r;
    });
    expect(first.twin).toEqual({
      temperature: { actual: { value: '23.5' }, metadata: { type: 'float' } },
      setpoint: { actual: { value: '21' }, metadata: { type: 'int' } },
      alarm: { actual: { value: 'false' }, metadata: { type: 'boolean' } },
    });
    expect(typeof first.event_id).toBe('string');
    expect(typeof first.timestamp).toBe('number');
    await eventually(() => expect(peer.states(THERMOMETER)).toContain('online'));

    regs.holding[0] = 250;
    regs.holding[1] = 0xfffe;
    const changedAt = Date.now();
    await eventually(() => expect(peer.actual(THERMOMETER, 'temperature')).toBe('25'), 5_000);
    expect(Date.now() - changedAt).toBeLessThan(2 * CYCLE_MS + 300);
    await eventually(() => expect(peer.actual(THERMOMETER, 'setpoint')).toBe('-2'), 2_000);
    // Only state changes are published (plus a refresh every 30 s).
    expect(peer.states(THERMOMETER)).toEqual(['online']);
  });

  it('writes deltas to a holding register and a coil, reports the new actuals, and never writes a ReadOnly property', async () => {
    const { regs, peer, logs } = await setup();
    await eventually(() => expect(peer.actual(THERMOMETER, 'setpoint')).toBe('21'));
    const from = peer.received.length;
    await peer.publish(`$hw/events/device/${THERMOMETER}/twin/update/delta`, {
      event_id: 'd1',
      timestamp: Date.now(),
      twin: {},
      delta: { temperature: '99.9', setpoint: '30', alarm: 'true' },
    });
    await eventually(() => expect([regs.holding[1], regs.coils[0]]).toEqual([30, true]));
    expect(regs.holding[0]).toBe(235);
    await eventually(() => {
      expect(peer.actual(THERMOMETER, 'setpoint', from)).toBe('30');
      expect(peer.actual(THERMOMETER, 'alarm', from)).toBe('true');
    });
    await eventually(() => expect(peer.actual(THERMOMETER, 'temperature', from)).toBe('23.5'));
    expect(logs.some((l) => l.msg === 'delta for a ReadOnly property, not written' && l.property === 'temperature')).toBe(true);
  });

  it('reports offline while the Modbus server is down, then online again with values flowing', async () => {
    const { modbusPort, regs, modbus, peer } = await setup();
    await eventually(() => expect(peer.states(THERMOMETER)).toEqual(['online']));
    await modbus.stop();
    await eventually(() => expect(peer.states(THERMOMETER)).toEqual(['online', 'offline']), 10_000);
    regs.holding[0] = 199;
    const from = peer.received.length;
    await startModbusServer(modbusPort, regs);
    await eventually(() => expect(peer.states(THERMOMETER)).toEqual(['online', 'offline', 'online']), 10_000);
    await eventually(() => expect(peer.actual(THERMOMETER, 'temperature', from)).toBe('19.9'));
  });

  it('reconnects to a restarted broker, asks for membership again and reports again', async () => {
    const { broker, peer, logs } = await setup();
    await eventually(() => expect(peer.reports(THERMOMETER).length).toBeGreaterThan(0));
    const asked = peer.membershipRequests();
    await broker.stop();
    await eventually(() => expect(logs.some((l) => l.msg === 'broker connection lost, reconnecting')).toBe(true));
    await startBroker(broker.port);
    const from = peer.received.length;
    await eventually(() => expect(peer.membershipRequests()).toBeGreaterThan(asked), 10_000);
    await eventually(() => expect(peer.reports(THERMOMETER, from).length).toBeGreaterThan(0), 10_000);
    // The restarted peer has no state: the mapper tells it again.
    await eventually(() => expect(peer.states(THERMOMETER, from)).toContain('online'));
  });

  it('stops reporting a device removed by membership/updated and resumes when it is added again', async () => {
    const meter = (port: number) => modbusDevice('meter-2', port, [property('power', 'INT', 'ReadOnly', 'modbus', { register: 'HoldingRegister', offset: 5 })]);
    const { peer, mapper, devices } = await setup((port) => [meter(port)]);
    await eventually(() => expect(peer.actual('default/meter-2', 'power')).toBe('1500'));
    await eventually(() => expect(peer.reports(THERMOMETER).length).toBeGreaterThan(0));
    const updated = `$hw/events/node/${NODE}/membership/updated`;
    await peer.publish(updated, { event_id: 'u1', timestamp: Date.now(), added_devices: [], removed_devices: [devices[0]] });
    await eventually(() => expect(mapper.deviceIds()).toEqual(['default/meter-2']));
    // From the next meter report on (a read in flight may still land), three more cycles carry no thermometer.
    const start = peer.received.length;
    await eventually(() => expect(peer.reports('default/meter-2', start).length).toBeGreaterThan(0));
    const from = peer.received.findIndex((m, i) => i >= start && m.topic.endsWith('meter-2/twin/update'));
    await eventually(() => expect(peer.reports('default/meter-2', from).length).toBeGreaterThanOrEqual(4));
    expect(peer.reports(THERMOMETER, from)).toEqual([]);

    await peer.publish(updated, { event_id: 'u2', timestamp: Date.now(), added_devices: [devices[0]], removed_devices: [] });
    await eventually(() => expect(peer.reports(THERMOMETER, from).length).toBeGreaterThan(0));
  });

  it('logs and ignores garbage deltas and membership messages, and keeps working', async () => {
    const { regs, peer, logs, mapper } = await setup();
    await eventually(() => expect(peer.reports(THERMOMETER).length).toBeGreaterThan(0));
    const delta = `$hw/events/device/${THERMOMETER}/twin/update/delta`;
    for (const garbage of ['not json', '[]', '{"delta": 5}', '{"delta": {"setpoint": 7}}', '\u0000\u00ff']) await peer.publish(delta, garbage);
    await peer.publish(delta, { delta: { setpoint: 'abc', nosuch: '1' } });
    await peer.publish('$hw/events/device/default/nope/twin/update/delta', { delta: { x: '1' } });
    await peer.publish(`$hw/events/node/${NODE}/membership/updated`, '{"added_devices": 3}');
    await peer.publish(`$hw/events/node/${NODE}/membership/get/result`, 'nope');
    await peer.publish(delta, { delta: { setpoint: '42' } });
    await eventually(() => expect(regs.holding[1]).toBe(42));
    await eventually(() => expect(peer.actual(THERMOMETER, 'setpoint')).toBe('42'));
    expect(logs.filter((l) => l.msg === 'bad message ignored').length).toBeGreaterThanOrEqual(7);
    expect(logs.some((l) => l.msg === 'delta value does not fit the property type, not written')).toBe(true);
    expect(mapper.deviceIds()).toEqual([THERMOMETER]);
  });
});

describe('mapper processes', () => {
  it("takes KubeEdge's nanosecond collectCycle sample as 10 s: no busy loop, no TimeoutOverflowWarning", async () => {
    const broker = await startBroker(0);
    const modbusPort = await freePort();
    await startModbusServer(modbusPort, { holding: [235, 21], coils: [] });
    // collectCycle 10000000000 is "10 seconds, in nanoseconds" (KubeEdge < 1.18); 10^17 ns is beyond any timer.
    const slow = (name: string, offset: number, cycle: number) => ({
      ...property(name, 'INT', 'ReadOnly', 'modbus', { register: 'HoldingRegister', offset, limit: 1 }),
      collectCycle: cycle,
      reportCycle: cycle,
    });
    const device = modbusDevice('slow-1', modbusPort, [slow('temperature', 0, 10_000_000_000), slow('setpoint', 1, 1e17)]);
    const peer = await edgePeer(broker.url, [device]);
    const child = spawn(process.execPath, [`${ROOT}dist/mappers/modbus/main.js`, '--broker', broker.url, '--node-name', NODE], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    onTestFinished(() => void (child.exitCode === null && child.signalCode === null && child.kill('SIGKILL')));
    onTestFailed(() => console.error(`--- modbus mapper ---\n${(stdout + stderr).slice(-4000)}`));

    // The first collect reads both; the next one, 10 s on, only the temperature.
    await eventually(() => expect(peer.reports('default/slow-1')).toHaveLength(1), 15_000);
    const first = Date.now();
    await eventually(() => expect(peer.reports('default/slow-1')).toHaveLength(2), 30_000, 100);
    expect(Date.now() - first).toBeGreaterThanOrEqual(9_000);
    expect(Object.keys(peer.reports('default/slow-1')[1].twin)).toEqual(['temperature']);
    expect(stderr).not.toContain('TimeoutOverflowWarning');
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
    expect(stderr).not.toContain('TimeoutOverflowWarning');
  });

  it('the compiled modbus and virtual mappers log in, report their devices and exit 0 on SIGTERM', async () => {
    const credentials = { username: 'mapper', password: 's3cret' };
    const broker = await startBroker(0, credentials);
    const modbusPort = await freePort();
    const modbus = await startModbusServer(modbusPort, { holding: [235, 21], coils: [true] });
    const virtual = {
      id: 'default/demo-1',
      name: 'demo-1',
      namespace: 'default',
      protocol: { protocolName: 'virtual', configData: {} },
      properties: [
        property('wave', 'FLOAT', 'ReadOnly', 'virtual', { kind: 'sine', min: 20, max: 30, periodMs: 10_000 }),
        property('mode', 'STRING', 'ReadWrite', 'virtual', { kind: 'constant', initial: 'auto' }),
      ],
    };
    const peer = await edgePeer(broker.url, [thermometer(modbusPort), virtual], credentials);
    const procs = ['modbus', 'virtual'].map((name) => {
      const child = spawn(
        process.execPath,
        [
          `${ROOT}dist/mappers/${name}/main.js`,
          '--broker',
          broker.url,
          '--node-name',
          NODE,
          '--username',
          credentials.username,
          '--password',
          credentials.password,
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      const output: string[] = [];
      child.stdout.on('data', (d: Buffer) => output.push(d.toString()));
      child.stderr.on('data', (d: Buffer) => output.push(d.toString()));
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      onTestFinished(() => void (child.exitCode === null && child.signalCode === null && child.kill('SIGKILL')));
      onTestFailed(() => console.error(`--- ${name} mapper ---\n${output.join('').slice(-4000)}`));
      return { child, exited };
    });
    await eventually(() => expect(peer.actual(THERMOMETER, 'temperature')).toBe('23.5'), 15_000);
    await eventually(() => expect(peer.actual('default/demo-1', 'mode')).toBe('auto'), 15_000);
    const wave = Number(peer.actual('default/demo-1', 'wave'));
    expect(wave).toBeGreaterThanOrEqual(20);
    expect(wave).toBeLessThanOrEqual(30);
    await peer.publish('$hw/events/device/default/demo-1/twin/update/delta', { delta: { mode: 'manual' } });
    await eventually(() => expect(peer.actual('default/demo-1', 'mode')).toBe('manual'));

    for (const p of procs) p.child.kill('SIGTERM');
    expect(await Promise.all(procs.map((p) => p.exited))).toEqual([0, 0]);
    // The modbus mapper closed its device connection on the way out.
    await eventually(() => expect(modbus.connections()).toBe(0));
  });
});
