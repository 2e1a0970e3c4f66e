// `npm run bench -- devices [--only=throughput,latency] [--devices=1000] [--seconds=10] [--latency-seconds=30] [--rate=100] [--qps=N]`
//
// A real control plane (build/control-plane) with the device CRDs, cloudcore and edgecore as processes (as
// installed), 1,000 Devices on the edge node applied through the API; this process plays the mappers
// (MQTT clients on edgecore's broker) and watches the Devices.
//
// Figures (one JSON line each):
//   twin_updates_per_s        twin/update messages accepted into the edge store per second (a result is
//                             published only after the commit), 4 mapper connections keeping 100 each in flight
//   report_to_status_p99_ms   twin/update published → the value seen in the Device status by a watch, at
//                             `rate` updates/s spread over 100 devices (plus p50 as an extra field)
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import * as k8s from '@kubernetes/client-node';
import mqtt, { type MqttClient } from 'mqtt';
import { stringify } from 'yaml';
import { startControlPlane, type ControlPlane } from '../support/control-plane.js';
import {
  CLOUDCORE_BIN,
  EDGECORE_BIN,
  ROOT,
  benchDir,
  cpuSeconds,
  freePort,
  note,
  onExit,
  percentile,
  report,
  rssKiB,
  sleep,
  start,
  runBench,
  type Proc,
} from './bench-support.js';

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=') as [string, string]));
const only = args.get('only')?.split(',');
const want = (section: string): boolean => !only || only.includes(section);
const DEVICES = Number(args.get('devices') ?? 1_000);
const SECONDS = Number(args.get('seconds') ?? 10);
const LATENCY_SECONDS = Number(args.get('latency-seconds') ?? 30);
const RATE = Number(args.get('rate') ?? 100);
const QPS = args.get('qps');
const NODE = 'bench-edge';
const NS = 'bench';
const CONNECTIONS = 4;
const WINDOW = 100;

interface System {
  cp: ControlPlane;
  cloud: Proc;
  edge: Proc;
  broker: string;
  edgeDb: string;
}

async function main(): Promise<void> {
  const system = await setUp();
  await applyDevices(system.cp);
  await waitForMembership(system.broker);
  if (want('throughput')) await throughput(system);
  if (want('latency')) await latency(system);
}

async function setUp(): Promise<System> {
  const cp = startControlPlane();
  onExit(() => cp.stop());
  await cp.kubectlOk(['apply', '-f', join(ROOT, 'build', 'crds')]);
  await cp.kubectlOk(['wait', '--for=condition=Established', 'crd/devices.devices.kubeedge.io', 'crd/devicemodels.devices.kubeedge.io', '--timeout=60s']);
  await cp.kubectlOk(['create', 'namespace', NS]);
  const dir = benchDir();
  const [hubPort, certPort, mqttPort] = [await freePort(), await freePort(), await freePort()];
  writeFileSync(
    join(dir, 'cloudcore.yaml'),
    stringify({
      logLevel: 'info',
      kubeAPI: { kubeconfig: cp.kubeconfig, ...(QPS ? { qps: Number(QPS), burst: Number(QPS) * 2 } : {}) },
      monitorServer: { port: 0 },
      modules: {
        cloudHub: {
          address: '127.0.0.1',
          port: hubPort,
          certServerAddress: '127.0.0.1',
          certServerPort: certPort,
          advertiseAddresses: ['127.0.0.1'],
          caCertFile: join(dir, 'ca.crt'),
          caKeyFile: join(dir, 'ca.key'),
          serverCertFile: join(dir, 'server.crt'),
          serverKeyFile: join(dir, 'server.key'),
        },
        edgeController: { source: 'kubernetes', webhookAddress: '127.0.0.1', webhookPort: 0 },
      },
    }),
  );
  const cloud = start(CLOUDCORE_BIN, ['--config', join(dir, 'cloudcore.yaml')]);
  await cloud.waitForLog((l) => l.msg === 'cloudcore ready');
  const edgeDb = join(dir, 'edge', 'edgecore.db');
  writeFileSync(
    join(dir, 'edgecore.yaml'),
    stringify({
      logLevel: 'warn',
      nodeName: NODE,
      database: { path: edgeDb },
      monitorServer: { port: 0 },
      modules: {
        edged: { nodeIP: '127.0.0.1', runtimeEndpoint: '' },
        eventBus: { internal: { port: mqttPort } },
        edgeHub: {
          server: `127.0.0.1:${hubPort}`,
          certServer: `https://127.0.0.1:${certPort}`,
          caFile: join(dir, 'edge', 'ca.crt'),
          certFile: join(dir, 'edge', 'node.crt'),
          keyFile: join(dir, 'edge', 'node.key'),
        },
      },
    }),
  );
  const { execFileSync } = await import('node:child_process');
  const token = execFileSync(process.execPath, [CLOUDCORE_BIN, '--config', join(dir, 'cloudcore.yaml'), 'token', 'create'], { encoding: 'utf8' }).trim();
  const edge = start(EDGECORE_BIN, ['--config', join(dir, 'edgecore.yaml'), '--token', token]);
  await sleep(3_000);
  return { cp, cloud, edge, broker: `mqtt://127.0.0.1:${mqttPort}`, edgeDb };
}

async function applyDevices(cp: ControlPlane): Promise<void> {
  const model = {
    apiVersion: 'devices.kubeedge.io/v1beta1',
    kind: 'DeviceModel',
    metadata: { name: 'sensor', namespace: NS },
    spec: {
      protocol: 'virtual',
      properties: [
        { name: 'temperature', type: 'FLOAT', accessMode: 'ReadOnly' },
        { name: 'humidity', type: 'FLOAT', accessMode: 'ReadOnly' },
      ],
    },
  };
  const devices = Array.from({ length: DEVICES }, (_, i) => ({
    apiVersion: 'devices.kubeedge.io/v1beta1',
    kind: 'Device',
    metadata: { name: `sensor-${i}`, namespace: NS },
    spec: {
      deviceModelRef: { name: 'sensor' },
      nodeName: NODE,
      protocol: { protocolName: 'virtual' },
      properties: [{ name: 'temperature' }, { name: 'humidity' }],
    },
  }));
  const t0 = performance.now();
  for (let i = 0; i < devices.length; i += 250)
    await cp.kubectlOk(
      ['apply', '-f', '-'],
      JSON.stringify({ apiVersion: 'v1', kind: 'List', items: i === 0 ? [model, ...devices.slice(0, 250)] : devices.slice(i, i + 250) }),
    );
  note(`applied ${DEVICES} devices in ${Math.round(performance.now() - t0)} ms`);
}

async function connect(url: string): Promise<MqttClient> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 500 });
  onExit(() => client.end(true));
  return client;
}

async function waitForMembership(broker: string): Promise<void> {
  const client = await connect(broker);
  const deadline = Date.now() + 120_000;
  let count = 0;
  client.on('message', (_t, p) => (count = (JSON.parse(p.toString()) as { devices: unknown[] }).devices.length));
  await client.subscribeAsync(`$hw/events/node/${NODE}/membership/get/result`);
  while (count < DEVICES) {
    if (Date.now() > deadline) throw new Error(`only ${count}/${DEVICES} devices on the edge after 120 s`);
    await client.publishAsync(`$hw/events/node/${NODE}/membership/get`, '{}');
    await sleep(500);
  }
  await client.endAsync();
  note(`${DEVICES} devices on ${NODE}`);
}

/** Each connection keeps WINDOW updates in flight over its share of devices; counts results. */
async function throughput(s: System): Promise<void> {
  let accepted = 0;
  let errors = 0;
  let running = true;
  let seq = 0;
  const clients = await Promise.all(Array.from({ length: CONNECTIONS }, () => connect(s.broker)));
  // Connection c serves the devices with index ≡ c (mod CONNECTIONS) and hears only their results.
  const send = (client: MqttClient, c: number): void => {
    if (!running) return;
    const n = seq++;
    const device = (n * CONNECTIONS + c) % DEVICES;
    void client.publishAsync(
      `$hw/events/device/${NS}/sensor-${device}/twin/update`,
      JSON.stringify({
        event_id: `t${n}`,
        timestamp: Date.now(),
        twin: { temperature: { actual: { value: String(20 + (n % 1000) / 100) }, metadata: { type: 'float' } } },
      }),
    );
  };
  await Promise.all(
    clients.map(async (client, c) => {
      client.on('message', (_topic, payload) => {
        if (payload.includes('"code"')) errors++;
        else accepted++;
        send(client, c);
      });
      const topics = Array.from({ length: DEVICES }, (_, d) => d)
        .filter((d) => d % CONNECTIONS === c)
        .map((d) => `$hw/events/device/${NS}/sensor-${d}/twin/update/result`);
      await client.subscribeAsync(topics);
    }),
  );
  const edgeCpu0 = cpuSeconds(s.edge.child.pid!);
  for (const [c, client] of clients.entries()) for (let i = 0; i < WINDOW; i++) send(client, c);
  await sleep(2_000);
  const a0 = accepted;
  const cpu0 = cpuSeconds(s.edge.child.pid!);
  const t0 = performance.now();
  await sleep(SECONDS * 1000);
  const perSecond = ((accepted - a0) / (performance.now() - t0)) * 1000;
  const cpu = cpuSeconds(s.edge.child.pid!) - cpu0;
  running = false;
  report('twin_updates_per_s', perSecond, 'updates/s', {
    devices: DEVICES,
    connections: CONNECTIONS,
    inFlight: WINDOW,
    seconds: SECONDS,
    errors,
    edgeCpuPerS: Math.round((cpu / SECONDS) * 100) / 100,
    edgeRssMiB: Math.round(rssKiB(s.edge.child.pid!) / 1024),
    warmupCpuS: Math.round((cpu0 - edgeCpu0) * 10) / 10,
  });
  await Promise.all(clients.map((c) => c.endAsync()));
  await drained(s);
}

/** Waits until the edge's upstream outbox is empty (the cloud took every status). */
async function drained(s: System): Promise<void> {
  const db = new Database(s.edgeDb, { readonly: true });
  const deadline = Date.now() + 300_000;
  try {
    for (;;) {
      const n = (db.prepare('SELECT count(*) AS n FROM upstream').get() as { n: number }).n;
      if (n === 0) return;
      if (Date.now() > deadline) throw new Error(`${n} reports still waiting at the edge after 300 s`);
      await sleep(500);
    }
  } finally {
    db.close();
  }
}

/** RATE updates/s over 100 devices, each value unique; latency until a watch sees it in the status. */
async function latency(s: System): Promise<void> {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(s.cp.kubeconfig);
  const pending = new Map<string, number>();
  const samples: number[] = [];
  let superseded = 0;
  const watch = await new k8s.Watch(kc).watch(
    `/apis/devices.kubeedge.io/v1beta1/namespaces/${NS}/devices`,
    {},
    (_phase, obj: { metadata: { name: string }; status?: { twins?: Array<{ propertyName: string; reported?: { value: string } }> } }) => {
      const value = obj.status?.twins?.find((t) => t.propertyName === 'humidity')?.reported?.value;
      if (!value) return;
      const key = `${obj.metadata.name}=${value}`;
      const sent = pending.get(key);
      if (sent === undefined) return;
      samples.push(performance.now() - sent);
      // Older values of this device that never showed were coalesced away at the edge: newer wins.
      for (const k of pending.keys()) if (k.startsWith(`${obj.metadata.name}=`) && pending.get(k)! < sent) (pending.delete(k), superseded++);
      pending.delete(key);
    },
    () => undefined,
  );
  onExit(() => watch.abort());
  const client = await connect(s.broker);
  const total = RATE * LATENCY_SECONDS;
  const t0 = performance.now();
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    const name = `sensor-${i % 100}`;
    const value = `${i}.5`;
    pending.set(`${name}=${value}`, performance.now());
    void client.publishAsync(`$hw/events/device/${NS}/${name}/twin/update`, JSON.stringify({ event_id: `l${i}`, twin: { humidity: { actual: { value } } } }));
  }
  const deadline = Date.now() + 30_000;
  while (pending.size > 0 && Date.now() < deadline) await sleep(100);
  const sorted = samples.sort((a, b) => a - b);
  const extra = {
    updates: total,
    updatesPerS: RATE,
    devices: 100,
    seen: sorted.length,
    superseded,
    missing: pending.size,
    p50Ms: Math.round(percentile(sorted, 50)),
    maxMs: Math.round(sorted.at(-1) ?? 0),
    cloudCpuS: cpuSeconds(s.cloud.child.pid!),
    qps: QPS ?? 'default',
  };
  report('report_to_status_p99_ms', percentile(sorted, 99), 'ms', extra);
  await client.endAsync();
}

runBench(main);
