// `npm run bench -- sync [--only=latency,idle,resync] [--create-seconds=30] [--idle-seconds=330] [--resync-edges=1000]`
//
// cloudcore (in this process, kubernetes source) against a real control plane (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler from build/control-plane), with simulated edges that speak the real
// channel protocol and report a node status on connect like edged (test/bench/edge-simulator.ts).
//
// Figures (one JSON line each):
//   create_to_ack_p50_ms/p99_ms             pod create sent to the API → the edge's ACK of that pod reaching
//                                           cloudcore; 100 pods/s spread over 100 edge nodes
//   apiserver_writes_per_idle_node_per_min  every write the API server served (its own metrics: POST, PUT,
//                                           PATCH, DELETE; nothing subtracted) while 100 edges sat idle, per
//                                           node and minute; the window covers one node status refresh (300 s)
//   resync_1000x20_s                        cloudcore restart (stop → new instance → all 1,000 edges, holding
//                                           20 objects each, reconnected and resynced)
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { stringify } from 'yaml';
import type { CoreV1Api, V1ConfigMap, V1Pod } from '@kubernetes/client-node';
import { CloudCore } from '../../cloudcore/cloudcore.js';
import { loadCloudCoreConfig } from '../../cloudcore/config.js';
import { createKubeClients } from '../../cloudcore/kube/kube-client.js';
import type { OutboxItem } from '../../cloudcore/cloudhub/node-outbox.js';
import { createLogger } from '../../shared/logger.js';
import { startControlPlane, type ControlPlane } from '../support/control-plane.js';
import { benchDir, freePort, note, onExit, percentile, report, runBench, sleep } from './bench-support.js';
import { issueCerts, simStart, startFleet, waitSynced, type Fleet } from './simulator-fleet.js';

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=') as [string, string]));
const only = args.get('only')?.split(',');
const want = (section: string): boolean => !only || only.includes(section);
const CREATE_SECONDS = Number(args.get('create-seconds') ?? 30);
const IDLE_SECONDS = Number(args.get('idle-seconds') ?? 330);
const RESYNC_EDGES = Number(args.get('resync-edges') ?? 1_000);
const OBJECTS_PER_EDGE = 20;

async function main(): Promise<void> {
  if (want('latency') || want('idle')) await latencyAndIdle();
  if (want('resync')) await resync();
}

interface Bench {
  cp: ControlPlane;
  core: CoreV1Api;
  configPath: string;
  /** Called for every object an edge ACKed (edge key), with the time it was seen. */
  onAck?: (key: string, atMs: number) => void;
  cloud?: CloudCore;
}

async function setUp(qps: number): Promise<Bench> {
  const cp = startControlPlane();
  onExit(() => cp.stop());
  const dir = benchDir();
  const configPath = join(dir, 'cloudcore.yaml');
  writeFileSync(
    configPath,
    stringify({
      kubeAPI: { kubeconfig: cp.kubeconfig, qps, burst: qps * 2 },
      monitorServer: { port: 0 },
      modules: {
        cloudHub: {
          address: '127.0.0.1',
          port: await freePort(),
          certServerAddress: '127.0.0.1',
          certServerPort: await freePort(),
          advertiseAddresses: ['127.0.0.1'],
          nodeLimit: 20_000,
          caCertFile: join(dir, 'ca.crt'),
          caKeyFile: join(dir, 'ca.key'),
          serverCertFile: join(dir, 'server.crt'),
          serverKeyFile: join(dir, 'server.key'),
        },
        edgeController: { source: 'kubernetes', webhookAddress: '127.0.0.1', webhookPort: 0, podAutonomy: process.env.KE_BENCH_AUTONOMY !== '0' },
      },
    }),
  );
  return { cp, core: createKubeClients({ kubeconfig: cp.kubeconfig }).core, configPath };
}

async function startCloud(bench: Bench): Promise<CloudCore> {
  const cloud = new CloudCore({
    config: loadCloudCoreConfig({ file: bench.configPath }),
    logger: createLogger({ name: 'cloudcore', level: 'warn', destination: pino.destination({ fd: 2, sync: false }) }),
    observer: {
      delivered(_node: string, items: OutboxItem[]) {
        const now = performance.now();
        for (const item of items) if (item.version) bench.onAck?.(item.key, now);
      },
    },
  });
  await cloud.start();
  bench.cloud = cloud;
  return cloud;
}

/** Simulated edges joined to the cloud; resolves once each is synced and a Ready edge Node. */
async function joinEdges(bench: Bench, names: string[]): Promise<Fleet> {
  const hub = bench.cloud!.cloudHub;
  const certs = await issueCerts(hub.certificateAuthority, names);
  const fleet = startFleet(1);
  onExit(() => fleet.kill());
  fleet.send(simStart(`wss://127.0.0.1:${hub.hubPort}`, certs, certs.nodes, { reportNodeStatus: true }));
  await waitSynced(fleet, names.length, 180_000);
  const deadline = Date.now() + 180_000;
  for (;;) {
    const nodes = await bench.core.listNode({ labelSelector: 'node-role.kubernetes.io/edge' });
    const ready = nodes.items.filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).length;
    if (ready === names.length) break;
    if (Date.now() > deadline) throw new Error(`only ${ready}/${names.length} edge nodes Ready`);
    await sleep(500);
  }
  return fleet;
}

async function createNamespace(bench: Bench, name: string): Promise<void> {
  await bench.core.createNamespace({ body: { metadata: { name } } });
  // The ServiceAccount admission plugin refuses pods until the controller manager made `default`.
  for (let i = 0; ; i++) {
    try {
      await bench.core.readNamespacedServiceAccount({ name: 'default', namespace: name });
      return;
    } catch (err) {
      if (i > 100) throw err;
      await sleep(100);
    }
  }
}

function pod(namespace: string, name: string, node: string, configMap?: string): V1Pod {
  return {
    metadata: { name, namespace },
    spec: {
      nodeName: node,
      automountServiceAccountToken: false,
      containers: [
        { name: 'app', image: 'busybox', command: ['sleep', '3600'], ...(configMap ? { volumeMounts: [{ name: 'cfg', mountPath: '/etc/cfg' }] } : {}) },
      ],
      ...(configMap ? { volumes: [{ name: 'cfg', configMap: { name: configMap } }] } : {}),
    },
  };
}

/** Writes the API server served so far, by verb and resource, from its own metrics. */
function apiWrites(cp: ControlPlane): Map<string, number> {
  const metrics = execFileSync(join(cp.binDir, 'kubectl'), ['--kubeconfig', cp.kubeconfig, 'get', '--raw', '/metrics'], {
    encoding: 'utf8',
    maxBuffer: 256 << 20,
  });
  const byKind = new Map<string, number>();
  for (const line of metrics.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const labels = Object.fromEntries([...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (!['POST', 'PUT', 'PATCH', 'DELETE', 'DELETECOLLECTION'].includes(labels.verb ?? '')) continue;
    const kind = `${labels.verb} ${labels.resource}${labels.subresource ? `/${labels.subresource}` : ''}`;
    byKind.set(kind, (byKind.get(kind) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return byKind;
}

async function latencyAndIdle(): Promise<void> {
  const EDGES = 100;
  const RATE = 100;
  const bench = await setUp(100);
  await startCloud(bench);
  const names = Array.from({ length: EDGES }, (_, i) => `edge-${i}`);
  const fleet = await joinEdges(bench, names);
  note(`${EDGES} simulated edges joined: Nodes Ready, Leases renewed by cloudcore`);
  await createNamespace(bench, 'bench');

  const sentAt = new Map<string, number>();
  const latencies: number[] = [];
  const createMs: number[] = [];
  let failures = 0;
  bench.onAck = (key, at) => {
    const t = sentAt.get(key);
    if (t === undefined) return;
    sentAt.delete(key);
    latencies.push(at - t);
  };
  // Paced at RATE per second; each create is sent without waiting for the previous one.
  const run = async (prefix: string, count: number): Promise<void> => {
    const t0 = performance.now();
    const inflight: Array<Promise<unknown>> = [];
    for (let i = 0; i < count; i++) {
      const due = t0 + (i * 1000) / RATE;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      const name = `${prefix}-${i}`;
      const sent = performance.now();
      sentAt.set(`bench/pod/${name}`, sent);
      inflight.push(
        bench.core.createNamespacedPod({ namespace: 'bench', body: pod('bench', name, names[i % EDGES]!) }).then(
          () => createMs.push(performance.now() - sent),
          (err: unknown) => {
            failures++;
            sentAt.delete(`bench/pod/${name}`);
            note(`create ${name} failed: ${String(err).slice(0, 200)}`);
          },
        ),
      );
    }
    await Promise.all(inflight);
    const deadline = Date.now() + 60_000;
    while (sentAt.size > 0 && Date.now() < deadline) await sleep(50);
  };
  if (want('latency')) {
    await run('warmup', 2 * RATE);
    latencies.length = 0;
    createMs.length = 0;
    await run('p', CREATE_SECONDS * RATE);
    const sorted = [...latencies].sort((a, b) => a - b);
    const api = [...createMs].sort((a, b) => a - b);
    // apiCreate: the create call alone (admission, including the pod autonomy webhook, and the etcd write).
    const extra = {
      pods: CREATE_SECONDS * RATE,
      acked: sorted.length,
      failures,
      unacked: sentAt.size,
      edges: EDGES,
      podsPerS: RATE,
      maxMs: Math.round(sorted.at(-1) ?? 0),
      apiCreateP50Ms: Math.round(percentile(api, 50)),
      apiCreateP99Ms: Math.round(percentile(api, 99)),
    };
    report('create_to_ack_p50_ms', percentile(sorted, 50), 'ms', extra);
    report('create_to_ack_p99_ms', percentile(sorted, 99), 'ms', extra);
  }

  if (want('idle')) {
    await sleep(10_000);
    const before = apiWrites(bench.cp);
    const t0 = Date.now();
    note(`measuring API writes with ${EDGES} idle edges for ${IDLE_SECONDS} s`);
    await sleep(IDLE_SECONDS * 1000);
    const after = apiWrites(bench.cp);
    const minutes = (Date.now() - t0) / 60_000;
    const delta = [...after].map(([k, v]) => [k, v - (before.get(k) ?? 0)] as const).filter(([, v]) => v > 0);
    const total = delta.reduce((sum, [, v]) => sum + v, 0);
    report('apiserver_writes_per_idle_node_per_min', total / EDGES / minutes, 'writes', {
      edges: EDGES,
      windowS: Math.round(minutes * 60),
      totalWrites: total,
      byKind: Object.fromEntries(delta),
    });
    const status = await fleet.status();
    if (status.synced !== EDGES) note(`warning: only ${status.synced}/${EDGES} edges synced at the end`);
  }
  await tearDown(bench, fleet);
}

async function resync(): Promise<void> {
  const bench = await setUp(300);
  await startCloud(bench);
  const names = Array.from({ length: RESYNC_EDGES }, (_, i) => `edge-${i}`);
  const fleet = await joinEdges(bench, names);
  note(`${RESYNC_EDGES} simulated edges joined`);
  await createNamespace(bench, 'fleet');

  // Each edge: 10 pods, each mounting its own ConfigMap = 20 objects (plus the edge's own Node).
  const t0 = performance.now();
  const work: Array<() => Promise<unknown>> = [];
  const perKind = OBJECTS_PER_EDGE / 2;
  for (const node of names) {
    for (let j = 0; j < perKind; j++) {
      const cm: V1ConfigMap = {
        metadata: { name: `${node}-cfg-${j}`, namespace: 'fleet' },
        data: { 'settings.json': JSON.stringify({ node, j, threshold: 42, mode: 'auto' }) },
      };
      work.push(() => bench.core.createNamespacedConfigMap({ namespace: 'fleet', body: cm }));
      work.push(() => bench.core.createNamespacedPod({ namespace: 'fleet', body: pod('fleet', `${node}-app-${j}`, node, cm.metadata!.name) }));
    }
  }
  await pool(work, 32);
  note(`created ${work.length} objects in ${Math.round(performance.now() - t0)} ms`);
  const expected = RESYNC_EDGES * (OBJECTS_PER_EDGE + 1);
  await until(
    async () => (await fleet.status()).objects === expected,
    300_000,
    async () => `edges hold ${(await fleet.status()).objects}/${expected} objects`,
  );

  let resent = 0;
  bench.onAck = () => resent++;
  const before = await fleet.status();
  const stoppedAt = Date.now();
  await bench.cloud!.stop();
  const startAt = Date.now();
  await startCloud(bench);
  const cloudStartMs = Date.now() - startAt;
  await until(
    async () => {
      const s = await fleet.status();
      return s.synced === RESYNC_EDGES && s.lastSyncedAtMs > startAt && s.reconnects >= before.reconnects + RESYNC_EDGES;
    },
    300_000,
    async () => JSON.stringify(await fleet.status()),
  );
  const seconds = (Date.now() - stoppedAt) / 1000;
  const after = await fleet.status();
  report('resync_1000x20_s', seconds, 's', {
    edges: RESYNC_EDGES,
    objectsPerEdge: OBJECTS_PER_EDGE,
    cloudStartMs,
    objectsResent: resent,
    edgeObjectsAfter: after.objects,
    expected,
  });
  await tearDown(bench, fleet);
}

async function tearDown(bench: Bench, fleet: Fleet): Promise<void> {
  fleet.kill();
  await bench.cloud?.stop();
  bench.cp.stop();
}

async function pool(work: Array<() => Promise<unknown>>, concurrency: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < work.length) await work[next++]!();
    }),
  );
}

async function until(check: () => Promise<boolean>, timeoutMs: number, describe: () => Promise<string>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastNote = Date.now();
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${await describe()}`);
    if (Date.now() - lastNote > 10_000) {
      note(await describe());
      lastNote = Date.now();
    }
    await sleep(200);
  }
}

runBench(main);
