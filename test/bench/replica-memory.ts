// `npm run bench -- replica-memory [--pods=10000] [--nodes=100] [--settle-seconds=60]`: what a cloudcore
// replica's informers cost when the cluster holds many edge pods (issue 12: every replica watches the whole
// cluster).
//
// A real control plane (build/control-plane) with edge Nodes that no edge ever connects to, and one real
// cloudcore process on the kubernetes source with its deployed RBAC (build/rbac/cloudcore.yaml).
//   replica_rss_mib_0_pods            the replica with the Nodes and ConfigMaps, no pods (first)
//   replica_rss_mib_N_pods_via_watch  the same process once the N pods arrived through its watch
//   replica_rss_mib_N_pods            a fresh replica that found the N pods in its first list
//   replica_heap_used_mib_N_pods      V8 heap in use (its nodejs_heap_size_used_bytes), same fresh replica
//   replica_rss_peak_mib_N_pods       the fresh replica's largest RSS (VmHWM), reached while it parses its lists
//   replica_kib_per_pod               (fresh replica with N pods − baseline) / N
// Memory is the median of samples every 2 s over 20 s, after --settle-seconds (60): a GC cannot be forced from
// outside, and the garbage of a large first list stays in the heap until V8's memory reducer collects it, which
// took ~40 s after `cloudcore ready` here.
import { join } from 'node:path';
import type { CoreV1Api, V1Pod } from '@kubernetes/client-node';
import { createKubeClients, MERGE_PATCH, apiStatus } from '../../cloudcore/kube/kube-client.js';
import { EDGE_ROLE_LABEL } from '../../cloudcore/edgecontroller/node-keeper.js';
import { startControlPlane } from '../support/control-plane.js';
import {
  CLOUDCORE_BIN,
  CLOUDCORE_V8_FLAGS,
  ROOT,
  nodeArgsFrom,
  benchDir,
  freePort,
  note,
  onExit,
  report,
  rssKiB,
  runBench,
  sleep,
  start,
  writeCloudConfig,
  type Proc,
} from './bench-support.js';

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=') as [string, string]));
const PODS = Number(args.get('pods') ?? 10_000);
const NODES = Number(args.get('nodes') ?? 100);
/** Apps (one ConfigMap each, like Deployments): a node runs pods of many apps, an app runs on many nodes. */
const APPS = 50;
const NAMESPACE = 'edge-apps';
const CONCURRENCY = 32;
const CREATE_TIMEOUT_MS = 15 * 60_000;
const SETTLE_MS = Number(args.get('settle-seconds') ?? 60) * 1000;
const MIB = 1024 * 1024;

interface Replica {
  proc: Proc;
  monitor: number;
}

interface Memory {
  rssMiB: number;
  heapUsedMiB: number;
  peakRssMiB: number;
}

runBench(async () => {
  if (!(PODS >= 0 && NODES > 0 && PODS <= 100_000 && NODES <= 5_000)) throw new Error('--pods must be 0–100000 and --nodes 1–5000');
  const cp = startControlPlane();
  onExit(() => cp.stop());
  // The device CRDs as deployed, so DeviceController's informers run as they would in a cluster.
  await cp.kubectlOk(['apply', '-f', join(ROOT, 'build', 'crds')]);
  await cp.kubectlOk(['wait', '--for=condition=Established', 'crd/devices.devices.kubeedge.io', 'crd/devicemodels.devices.kubeedge.io', '--timeout=60s']);
  const { core } = createKubeClients({ kubeconfig: cp.kubeconfig });
  const nodes = Array.from({ length: NODES }, (_, i) => `edge-${i}`);
  await createNodes(core, nodes);
  await createNamespace(core);
  await pool(APPS, CONCURRENCY, (a) => core.createNamespacedConfigMap({ namespace: NAMESPACE, body: configMap(a) }));
  const dir = benchDir();
  const monitor = await freePort();
  const files = await writeCloudConfig(dir, {
    kubeAPI: { kubeconfig: await cp.cloudcoreKubeconfig() },
    monitorServer: { address: '127.0.0.1', port: monitor },
    edgeController: { source: 'kubernetes', webhookAddress: '127.0.0.1', webhookPort: 0 },
  });
  const configArgs = ['--config', files.configPath, '--log-level', 'info'];

  const first = await startReplica(configArgs, monitor, 0);
  const baseline = await measure(first);
  report('replica_rss_mib_0_pods', baseline.rssMiB, 'MiB', { nodes: NODES, heapUsedMiB: baseline.heapUsedMiB });

  // The first replica stays up while the pods are created: it serves the pod autonomy webhook, as in a cluster.
  const createdIn = await createPods(core, nodes);
  note(`${PODS} pods created and given a status in ${(createdIn / 1000).toFixed(0)} s`);
  if (PODS > 0) note(`one pod as listed: ${await podJsonBytes(cp.kubectlOk)}`);
  const watched = await measure(first);
  report(`replica_rss_mib_${PODS}_pods_via_watch`, watched.rssMiB, 'MiB', { heapUsedMiB: watched.heapUsedMiB });
  await stopReplica(first);

  const fresh = await startReplica(configArgs, monitor, PODS);
  const full = await measure(fresh);
  report(`replica_rss_mib_${PODS}_pods`, full.rssMiB, 'MiB', { nodes: NODES, pods: PODS });
  report(`replica_heap_used_mib_${PODS}_pods`, full.heapUsedMiB, 'MiB', { baseline: baseline.heapUsedMiB });
  report(`replica_rss_peak_mib_${PODS}_pods`, rssKiB(fresh.proc.child.pid!, 'peak') / 1024, 'MiB', { baseline: baseline.peakRssMiB });
  if (PODS > 0) report('replica_rss_kib_per_pod', ((full.rssMiB - baseline.rssMiB) * 1024) / PODS, 'KiB');
  await stopReplica(fresh);
});

/** Starts cloudcore and waits until its informers' first lists hold exactly the expected edge pods. */
async function startReplica(configArgs: string[], monitor: number, pods: number): Promise<Replica> {
  const proc = start(CLOUDCORE_BIN, configArgs, { nodeArgs: nodeArgsFrom('KE_BENCH_CLOUD_NODE_ARGS', CLOUDCORE_V8_FLAGS) });
  const watching = await proc.waitForLog((l) => l.msg === 'edgecontroller watching the cluster', 300_000);
  await proc.waitForLog((l) => l.msg === 'cloudcore ready', 60_000);
  note(`cloudcore ready: ${watching.edgeNodes} edge nodes, ${watching.edgePods} edge pods, listed in ${watching.ms} ms`);
  if (watching.edgePods !== pods || watching.edgeNodes !== NODES) throw new Error(`cloudcore found ${watching.edgeNodes} nodes / ${watching.edgePods} pods`);
  return { proc, monitor };
}

async function stopReplica(replica: Replica): Promise<void> {
  replica.proc.child.kill('SIGTERM');
  const code = await Promise.race([replica.proc.exited, sleep(30_000).then(() => 'timeout' as const)]);
  if (code === 'timeout') replica.proc.child.kill('SIGKILL');
}

/** Medians of RSS (from /proc) and V8 heap in use (from /metrics) over the last 20 s of the settle period + 20 s. */
async function measure(replica: Replica): Promise<Memory> {
  const pid = replica.proc.child.pid!;
  const rss: number[] = [];
  const heap: number[] = [];
  // Sampled from the start, so the trace shows when the heap shrinks.
  for (let i = 0; i < SETTLE_MS / 2_000 + 10; i++) {
    rss.push(rssKiB(pid) / 1024);
    heap.push((await metric(replica.monitor, 'nodejs_heap_size_used_bytes')) / MIB);
    await sleep(2_000);
  }
  note(`every 2 s: rss MiB ${rss.map((v) => v.toFixed(0)).join(' ')}`);
  note(`every 2 s: heap used MiB ${heap.map((v) => v.toFixed(0)).join(' ')}`);
  return { rssMiB: round(median(rss.slice(-10))), heapUsedMiB: round(median(heap.slice(-10))), peakRssMiB: round(rssKiB(pid, 'peak') / 1024) };
}

async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.slice(name.length + 1)) : Number.NaN;
}

const round = (n: number): number => Math.round(n * 10) / 10;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length % 2 ? sorted[sorted.length >> 1]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
}

/** A pod's size as the API server lists it, and without managedFields (which the informers drop). */
async function podJsonBytes(kubectlOk: (args: string[]) => Promise<string>): Promise<string> {
  const list = JSON.parse(await kubectlOk(['get', '--raw', `/api/v1/namespaces/${NAMESPACE}/pods?limit=1`])) as { items: V1Pod[] };
  const pod = list.items[0]!;
  const whole = JSON.stringify(pod).length;
  delete pod.metadata!.managedFields;
  return `${whole} bytes of JSON, ${JSON.stringify(pod).length} without managedFields`;
}

/** Edge Nodes as cloudcore registers them (its label), created by the admin: no edge connects in this bench. */
async function createNodes(core: CoreV1Api, names: string[]): Promise<void> {
  await pool(names.length, CONCURRENCY, (i) =>
    core.createNode({
      body: {
        metadata: { name: names[i]!, labels: { [EDGE_ROLE_LABEL]: '', 'kubernetes.io/hostname': names[i]!, 'kubernetes.io/os': 'linux' } },
        spec: {},
      },
    }),
  );
}

async function createNamespace(core: CoreV1Api): Promise<void> {
  await core.createNamespace({ body: { metadata: { name: NAMESPACE } } });
  // The ServiceAccount admission plugin refuses pods until the controller manager made `default`.
  for (let i = 0; ; i++) {
    try {
      await core.readNamespacedServiceAccount({ name: 'default', namespace: NAMESPACE });
      return;
    } catch (err) {
      if (i > 300) throw err;
      await sleep(100);
    }
  }
}

/** Creates the pods, then gives each the status an edge reports; returns the milliseconds it took. */
async function createPods(core: CoreV1Api, nodes: string[]): Promise<number> {
  const startedAt = Date.now();
  let lastNote = startedAt;
  let done = 0;
  await pool(PODS, CONCURRENCY, async (j) => {
    if (Date.now() - startedAt > CREATE_TIMEOUT_MS) throw new Error(`pod creation took over ${CREATE_TIMEOUT_MS / 60_000} min (${done} of ${PODS})`);
    const body = pod(j, nodes[Math.floor(j / APPS) % nodes.length]!);
    await retried(() => core.createNamespacedPod({ namespace: NAMESPACE, body }), true);
    await retried(() => core.patchNamespacedPodStatus({ name: body.metadata!.name!, namespace: NAMESPACE, body: { status: podStatus(j) } }, MERGE_PATCH));
    if (++done % 1000 === 0 && Date.now() - lastNote > 5_000) {
      note(`${done} pods after ${((Date.now() - startedAt) / 1000).toFixed(0)} s`);
      lastNote = Date.now();
    }
  });
  return Date.now() - startedAt;
}

/** A few tries for an API server busy on 2 cores; a create that answered 409 after a retry had succeeded. */
async function retried(call: () => Promise<unknown>, create = false): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await call();
      return;
    } catch (err) {
      if (create && attempt > 1 && apiStatus(err) === 409) return;
      const status = apiStatus(err);
      if (attempt >= 5 || (status !== undefined && status !== 429 && status < 500)) throw err;
      await sleep(200 * attempt);
    }
  }
}

async function pool(count: number, concurrency: number, work: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) await work(next++);
    }),
  );
}

function configMap(app: number): { metadata: { name: string; namespace: string; labels: Record<string, string> }; data: Record<string, string> } {
  return {
    metadata: { name: `app-${app}-config`, namespace: NAMESPACE, labels: { app: `app-${app}` } },
    data: {
      'app.properties': `listen=0.0.0.0:8080\nlog.level=info\nupstream=https://collector.example.com/app-${app}\n`.repeat(4),
      'features.yaml': 'sampling: 0.1\nbuffer: 4096\nretries: 3\n',
    },
  };
}

/** A pod as a Deployment would make it for an edge app, with the tolerations the pod autonomy webhook adds. */
function pod(j: number, node: string): V1Pod {
  const app = `app-${j % APPS}`;
  return {
    metadata: {
      name: `${app}-6f7c9d8b5-${j.toString(36).padStart(5, '0')}`,
      namespace: NAMESPACE,
      labels: { app, 'pod-template-hash': '6f7c9d8b5', tier: 'edge' },
      annotations: { 'kubectl.kubernetes.io/restartedAt': '2026-12-01T10:00:00Z' },
    },
    spec: {
      nodeName: node,
      automountServiceAccountToken: false,
      containers: [
        {
          name: 'app',
          image: `registry.example.com/edge/${app}:1.4.2`,
          args: ['--config=/etc/app/app.properties', '--port=8080'],
          ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
          env: [
            { name: 'APP_NAME', value: app },
            { name: 'LOG_FORMAT', value: 'json' },
            { name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
            { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
          ],
          resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { cpu: '200m', memory: '128Mi' } },
          volumeMounts: [{ name: 'config', mountPath: '/etc/app', readOnly: true }],
          readinessProbe: { httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 10 },
        },
      ],
      volumes: [{ name: 'config', configMap: { name: `${app}-config` } }],
      tolerations: [
        { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute' },
        { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute' },
      ],
    },
  };
}

/**
 * The status of a running pod on an edge that is away: Ready false, as the node lifecycle controller would set
 * it (so it has nothing to rewrite), the rest as the edge last reported.
 */
function podStatus(j: number): object {
  // Plain JSON for the patch (client-node's typed status holds Date objects).
  const at = new Date(Date.UTC(2026, 11, 1, 10, 0, j % 60)).toISOString().replace('.000', '');
  const ip = `10.${(j >> 16) & 255}.${(j >> 8) & 255}.${j & 255}`;
  const condition = (type: string, status: string) => ({ type, status, lastProbeTime: null, lastTransitionTime: at });
  return {
    phase: 'Running',
    hostIP: '192.168.0.10',
    podIP: ip,
    podIPs: [{ ip }],
    startTime: at,
    qosClass: 'Burstable',
    conditions: [
      condition('PodReadyToStartContainers', 'True'),
      condition('Initialized', 'True'),
      condition('Ready', 'False'),
      condition('ContainersReady', 'False'),
      condition('PodScheduled', 'True'),
    ],
    containerStatuses: [
      {
        name: 'app',
        image: `registry.example.com/edge/app-${j % APPS}:1.4.2`,
        imageID: `registry.example.com/edge/app-${j % APPS}@sha256:${'3f'.repeat(32)}`,
        containerID: `containerd://${(j * 2654435761).toString(16).padStart(16, '0').repeat(4)}`,
        ready: false,
        started: true,
        restartCount: 0,
        state: { running: { startedAt: at } },
      },
    ],
  };
}
