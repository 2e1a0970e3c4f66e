// `npm run bench -- edged [--pods=50] [--rate=4]` (as root: it runs containerd)
//
// A real control plane, cloudcore and edgecore as processes, and a private containerd with the offline
// images (build/cri). Pods are created through the API (what kubectl create does) on the edge node.
//
// Figures (one JSON line each):
//   create_to_running_p50_ms / _p99_ms   pod create sent → its container seen RUNNING in containerd; `pods`
//                                        pods (pod network), created at `rate` per second in two rounds
//   edgecore_rss_mb_0 / _10 / _50        edgecore's RSS with that many pods running, after 10 s of quiet
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { CriClient } from '../../edgecore/edged/cri/cri-client.js';
import { startControlPlane } from '../support/control-plane.js';
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
  runBench,
  sleep,
  start,
  type Proc,
} from './bench-support.js';

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=') as [string, string]));
const PODS = Number(args.get('pods') ?? 50);
const RATE = Number(args.get('rate') ?? 4);
const NODE = 'bench-edge';
const NS = 'bench';
const SCRIPTS = join(ROOT, 'build', 'cri');

/** containerd in a short workdir on its own bridge and RFC 5737 subnet (203.0.113.0/24), removed at exit. */
function startContainerd(): { endpoint: string; cgroupParent: string } {
  const workdir = mkdtempSync('/tmp/kb-');
  const cgroupParent = `/${workdir.slice('/tmp/'.length)}`;
  const env = { ...process.env, KE_CNI_SUBNET: '203.0.113.0/24', KE_CNI_BRIDGE: 'kb-cni0', KE_CRI_CGROUP_PARENT: cgroupParent };
  execFileSync(join(SCRIPTS, 'build-images.sh'), [join(workdir, 'images.tar')], { stdio: ['ignore', 'ignore', 'inherit'] });
  execFileSync(join(SCRIPTS, 'start-containerd.sh'), [workdir], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  onExit(() => execFileSync(join(SCRIPTS, 'stop-containerd.sh'), ['--purge', workdir], { env, stdio: 'ignore' }));
  return { endpoint: `unix://${workdir}/containerd.sock`, cgroupParent };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the edged benchmark runs containerd: run it as root');
  const cp = startControlPlane();
  onExit(() => cp.stop());
  const containerd = startContainerd();
  const dir = benchDir();
  const [hubPort, certPort, mqttPort] = [await freePort(), await freePort(), await freePort()];
  writeFileSync(
    join(dir, 'cloudcore.yaml'),
    stringify({
      logLevel: 'info',
      kubeAPI: { kubeconfig: cp.kubeconfig },
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
  writeFileSync(
    join(dir, 'edgecore.yaml'),
    stringify({
      logLevel: 'warn',
      nodeName: NODE,
      database: { path: join(dir, 'edge', 'edgecore.db') },
      monitorServer: { port: 0 },
      modules: {
        edged: {
          nodeIP: '127.0.0.1',
          runtimeEndpoint: containerd.endpoint,
          rootDirectory: join(dir, 'pods'),
          podLogsDirectory: join(dir, 'logs'),
          cgroupParent: containerd.cgroupParent,
          staticPodPath: join(dir, 'manifests'),
        },
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
  const token = execFileSync(process.execPath, [CLOUDCORE_BIN, '--config', join(dir, 'cloudcore.yaml'), 'token', 'create'], { encoding: 'utf8' }).trim();
  // The V8 flags build/install.sh gives edgecore; KE_BENCH_EDGE_NODE_ARGS tries others.
  const edge = start(EDGECORE_BIN, ['--config', join(dir, 'edgecore.yaml'), '--token', token], {
    nodeArgs: (process.env.KE_BENCH_EDGE_NODE_ARGS ?? '--max-semi-space-size=1').split(' ').filter(Boolean),
  });
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(cp.kubeconfig);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  await until(
    async () =>
      (await core.readNode({ name: NODE }).catch(() => undefined))?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
    60_000,
    'edge node Ready',
  );
  await core.createNamespace({ body: { metadata: { name: NS } } });
  await until(
    async () => Boolean(await core.readNamespacedServiceAccount({ name: 'default', namespace: NS }).catch(() => undefined)),
    30_000,
    'default service account',
  );
  const cri = new CriClient({ endpoint: containerd.endpoint });
  onExit(() => cri.close());

  report('edgecore_rss_mb_0', await settledRssMiB(edge), 'MiB', { pods: 0 });
  const samples: number[] = [];
  const first = Math.min(10, PODS);
  samples.push(...(await createAndWait(core, cri, 0, first)));
  report('edgecore_rss_mb_10', await settledRssMiB(edge), 'MiB', { pods: first });
  samples.push(...(await createAndWait(core, cri, first, PODS)));
  const rss50 = await settledRssMiB(edge);
  const sorted = samples.sort((a, b) => a - b);
  const extra = { pods: PODS, createdPerS: RATE, maxMs: Math.round(sorted.at(-1) ?? 0), edgeCpuS: cpuSeconds(edge.child.pid!) };
  report('create_to_running_p50_ms', percentile(sorted, 50), 'ms', extra);
  report('create_to_running_p99_ms', percentile(sorted, 99), 'ms', extra);
  report(`edgecore_rss_mb_${PODS}`, rss50, 'MiB', { pods: PODS, containerdShimsNote: 'containerd and its shims are not counted' });
  await core.deleteCollectionNamespacedPod({ namespace: NS, gracePeriodSeconds: 1 });
  await until(async () => (await cri.listContainers({ state: 'CONTAINER_RUNNING' })).length === 0, 120_000, 'pods stopped');
}

/** Creates pods [from, to) at RATE per second; returns create → RUNNING in containerd, per pod. */
async function createAndWait(core: k8s.CoreV1Api, cri: CriClient, from: number, to: number): Promise<number[]> {
  const sentAt = new Map<number, number>();
  const uidOf = new Map<string, number>();
  const latencies: number[] = [];
  let created = false;
  // containerd is watched from the first create on, so a pod that starts while others are still being
  // created is timed when it starts.
  const watcher = (async () => {
    const deadline = Date.now() + 180_000;
    while (!created || latencies.length < to - from) {
      if (Date.now() > deadline) throw new Error(`${to - from - latencies.length} pods not running after 180 s`);
      const now = performance.now();
      for (const c of await cri.listContainers({ state: 'CONTAINER_RUNNING' })) {
        const i = uidOf.get(c.labels['io.kubernetes.pod.uid'] ?? '');
        if (i === undefined || !sentAt.has(i)) continue;
        latencies.push(now - sentAt.get(i)!);
        sentAt.delete(i);
      }
      await sleep(10);
    }
  })();
  const t0 = performance.now();
  const creates: Array<Promise<unknown>> = [];
  for (let i = from; i < to; i++) {
    const wait = t0 + ((i - from) * 1000) / RATE - performance.now();
    if (wait > 1) await sleep(wait);
    sentAt.set(i, performance.now());
    creates.push(
      core
        .createNamespacedPod({
          namespace: NS,
          body: {
            metadata: { name: `p-${i}` },
            spec: {
              nodeName: NODE,
              terminationGracePeriodSeconds: 1,
              automountServiceAccountToken: false,
              containers: [{ name: 'app', image: 'localhost/lite/busybox:latest', imagePullPolicy: 'IfNotPresent', command: ['sleep', '3600'] }],
            },
          },
        })
        .then((pod) => uidOf.set(pod.metadata!.uid!, i)),
    );
  }
  await Promise.all(creates);
  created = true;
  await watcher;
  note(`${to} pods running`);
  return latencies;
}

async function settledRssMiB(proc: Proc): Promise<number> {
  await sleep(10_000);
  return rssKiB(proc.child.pid!) / 1024;
}

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

runBench(main);
