import { X509Certificate, createPrivateKey } from 'node:crypto';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { EdgeCore } from '../../edgecore/edgecore.js';
import { POD_UID_LABEL } from '../../edgecore/edged/runtime-config.js';
import { CertificateAuthority } from '../../shared/pki/certificate-authority.js';
import { issueCerts, simStart, startSim, waitSynced, type Sim } from '../bench/simulator-fleet.js';
import { useContainerd } from '../support/containerd.js';
import { cloudSetup, edgeSetup, readEdgeStore, startCloud, startEdgeInProcess, type Cloud, type CloudSetup, type EdgeSetup } from '../support/daemons.js';
import { startHaproxy, type Haproxy } from '../support/haproxy.js';
import { eventually, freePort, tempDir, useControlPlane } from '../support/harness.js';
import { ReadySampler } from '../support/ready-sampler.js';

// Issue 12, the cluster scenarios: three cloudcore replicas on a real cluster behind a real HAProxy (TCP mode,
// checking each replica's /readyz), 300 simulated edges and two real edgecores running pods on containerd, all
// dialling the balancer's one address. The controller-manager runs with its default node grace period, and
// every edge node's Ready condition is sampled throughout: balancing, kill -9 of a replica and a rolling
// restart must not make one node NotReady, restart or evict a container, or lose an object or a report.

const controlPlane = useControlPlane();
const containerd = useContainerd();
const IMAGE = 'localhost/lite/busybox:latest';
const SIMS = 300;
const REAL = ['real-edge-1', 'real-edge-2'];
/** Shorter cycles than the defaults (10 s reports, 30 s observation) so the test takes minutes, not ten. */
const REBALANCE = { reportIntervalMs: 2_000, observeMs: 10_000, shedPerSecond: 50 };

interface Replica {
  id: string;
  setup: CloudSetup;
  monitor: number;
  cloud?: Cloud;
}

async function connected(r: Replica): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${r.monitor}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('cloudcore_connected_edges '));
  if (!line) throw new Error(`${r.id}: cloudcore_connected_edges not exported`);
  return Number(line.split(' ')[1]);
}

describe('three cloudcore replicas on a cluster behind HAProxy, with simulated and real edges', () => {
  it('balances, survives kill -9 and a rolling restart with every node Ready, no container restarted, nothing lost', { timeout: 900_000 }, async () => {
    const cp = controlPlane();
    const dir = tempDir('ke-replicas-');
    const kubeconfig = await cp.cloudcoreKubeconfig();
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfig);
    const core = kc.makeApiClient(CoreV1Api);
    onTestFinished(async () => {
      await cp.kubectl(['delete', 'pods', '--all', '--wait=false']);
      await cp.kubectl(['delete', 'nodes', '--all', '--wait=false']);
    });

    // Three replicas (sharing the CA in the cluster); the lease timing is the kubelet's (10 s renewals, 40 s lease).
    const replicas: Replica[] = [];
    for (const id of ['replica-a', 'replica-b', 'replica-c']) {
      const monitor = await freePort();
      const setup = await cloudSetup(join(dir, id), {
        kubeconfig,
        monitorServer: { port: monitor, shutdownDelaySeconds: 2 },
        cloudHub: { rebalance: { replicaId: id, ...REBALANCE } },
        edgeController: { leaseRenewIntervalMs: 10_000, leaseDurationSeconds: 40 },
      });
      replicas.push({ id, setup, monitor });
    }
    const [a, b, c] = replicas as [Replica, Replica, Replica];
    const start = async (r: Replica): Promise<void> => {
      r.cloud = await startCloud(r.setup, r.id);
    };
    await start(a);
    const lb: Haproxy = await startHaproxy(
      dir,
      replicas.map((r) => ({ name: r.id, hubPort: r.setup.hubPort, certPort: r.setup.certPort, monitorPort: r.monitor })),
      { waitUp: [a.id] },
    );
    const counts = (): Promise<number[]> =>
      Promise.all(replicas.map((r) => (r.cloud && r.cloud.child.exitCode === null && r.cloud.child.signalCode === null ? connected(r) : 0)));

    // 300 simulated edges, each reporting a numbered node status every 20 s, through the balancer only.
    const sim: Sim = startSim();
    onTestFinished(() => void sim.proc.kill('SIGKILL'));
    const names = Array.from({ length: SIMS }, (_, i) => `sim-${i}`);
    // The replicas share the edge CA through Secret kubeedge/casecret (KubeEdge's keys: DER certificate and SEC1 key).
    const secret = (await core.readNamespacedSecret({ name: 'casecret', namespace: 'kubeedge' })).data!;
    const ca = await CertificateAuthority.fromPem(
      new X509Certificate(Buffer.from(secret.cadata!, 'base64')).toString(),
      createPrivateKey({ key: Buffer.from(secret.cakeydata!, 'base64'), format: 'der', type: 'sec1' })
        .export({ format: 'pem', type: 'pkcs8' })
        .toString(),
    );
    const certs = await issueCerts(ca, names);
    sim.proc.send(
      simStart(`wss://127.0.0.1:${lb.hubPort}`, certs, certs.nodes, {
        reportNodeStatus: true,
        reportEveryMs: 20_000,
        connectConcurrency: 50,
        reconnect: { initialDelayMs: 500, maxDelayMs: 5_000 },
      }),
    );

    // Two real edgecores, each running a pod with a ConfigMap volume on the test's containerd.
    await cp.kubectlOk(['create', 'configmap', 'shared-config', '--from-literal=round=0']);
    const token = await a.cloud!.token();
    const edges: Array<{ setup: EdgeSetup; core: EdgeCore }> = [];
    for (const node of REAL) {
      const setup = edgeSetup(dir, node, a.setup, {
        hubPort: lb.hubPort,
        edgeHub: { certServer: `https://127.0.0.1:${lb.certPort}` },
        edged: {
          enable: true,
          nodeIP: '127.0.0.1',
          runtimeEndpoint: containerd().endpoint,
          rootDirectory: join(dir, node, 'pods'),
          podLogsDirectory: join(dir, node, 'logs'),
          cgroupParent: containerd().cgroupParent,
          relistIntervalMs: 1_000,
        },
      });
      edges.push({ setup, core: await startEdgeInProcess(setup, token) });
    }
    const pod = (name: string, node: string): string =>
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: 'default' },
        spec: {
          nodeSelector: { 'kubernetes.io/hostname': node },
          terminationGracePeriodSeconds: 2,
          containers: [
            {
              name: 'main',
              image: IMAGE,
              imagePullPolicy: 'IfNotPresent',
              command: ['sh', '-c', 'exec sleep 3600'],
              volumeMounts: [{ name: 'cfg', mountPath: '/cfg' }],
            },
          ],
          volumes: [{ name: 'cfg', configMap: { name: 'shared-config' } }],
        },
      });
    const podOf = async (name: string): Promise<any> => JSON.parse(await cp.kubectlOk(['get', 'pod', name, '-o', 'json']));
    const running = async (name: string): Promise<any> =>
      eventually(
        async () => {
          const p = await podOf(name);
          expect(p.status.phase).toBe('Running');
          return p;
        },
        120_000,
        500,
      );
    for (const node of REAL) await cp.kubectlOk(['apply', '-f', '-'], pod(`${node}-app`, node));
    const firstPods = await Promise.all(REAL.map((n) => running(`${n}-app`)));
    const containersOf = async (uid: string): Promise<Array<{ id: string; attempt: number }>> =>
      (await containerd().client.listContainers({ labels: { [POD_UID_LABEL]: uid } })).map((x) => ({ id: x.id, attempt: x.metadata.attempt }));
    const firstContainers = await Promise.all(firstPods.map((p) => containersOf(p.metadata.uid)));
    expect(firstContainers.map((l) => l.length)).toEqual([1, 1]);

    await waitSynced(sim, SIMS, 240_000);
    const isEdge = (name: string): boolean => name.startsWith('sim-') || REAL.includes(name);
    const sampler = new ReadySampler(core, isEdge);
    await eventually(
      async () => {
        const now = await sampler.sample();
        expect(now.size).toBe(SIMS + REAL.length);
        expect([...now.values()].filter((s) => s !== 'True')).toEqual([]);
      },
      120_000,
      1_000,
    );
    expect(await counts()).toEqual([SIMS + REAL.length, 0, 0]);
    sampler.start();
    onTestFinished(() => sampler.stop());
    let round = 0;
    const touchConfig = (): Promise<string> =>
      cp.kubectlOk(['patch', 'configmap', 'shared-config', '-p', JSON.stringify({ data: { round: String(++round) } })]);

    // 1. Two replicas join one holding 302 edges: balanced within tolerance, in at most two shedding rounds.
    await Promise.all([start(b), start(c)]);
    await touchConfig();
    const balanced = await eventually(
      async () => {
        const now = await counts();
        const total = now.reduce((x, y) => x + y, 0);
        const e = Math.ceil(total / 3);
        expect(total).toBe(SIMS + REAL.length);
        for (const n of now) expect(n).toBeLessThanOrEqual(Math.max(e * 1.1, e + 5));
        return now;
      },
      180_000,
      500,
    );
    const rounds = a.cloud!.logs.filter((l) => l.msg === 'rebalancing: sending edges to replicas with room').length;
    expect(rounds, `balanced at ${balanced.join(' / ')}`).toBeGreaterThanOrEqual(1);
    expect(rounds).toBeLessThanOrEqual(2);

    /** Every edge connected to a live replica and resynced. */
    const allBack = async (): Promise<void> => {
      await eventually(
        async () => {
          const now = await counts();
          expect(now.reduce((x, y) => x + y, 0)).toBe(SIMS + REAL.length);
          expect((await sim.status()).synced).toBe(SIMS);
        },
        120_000,
        500,
      );
      for (const e of edges) await eventually(() => expect(e.core.edgeHub.status).toMatchObject({ type: 'connected', synced: true }), 60_000);
    };

    // 2. kill -9 of the replica holding the first real edge: its edges are back on the other two.
    const ownerOf = async (node: string): Promise<string> =>
      (await core.readNode({ name: node })).metadata!.annotations!['kubeedge-ts.io/owner']!.split('/')[0]!;
    const victimId = await ownerOf(REAL[0]!);
    const killed = replicas.find((r) => r.id === victimId)!;
    const beforeKill = await counts();
    expect(beforeKill[replicas.indexOf(killed)]).toBeGreaterThan(SIMS / 6);
    killed.cloud!.child.kill('SIGKILL');
    await killed.cloud!.exited;
    await touchConfig();
    await allBack();
    expect(await ownerOf(REAL[0]!)).not.toBe(victimId);
    // Back up for the rolling restart (it takes a share again through the balancer and the others' shedding).
    await start(killed);
    await cp.kubectlOk(['apply', '-f', '-'], pod('after-failover', REAL[0]!));

    // 3. A rolling restart, as an upgrade does: SIGTERM one at a time, back and UP in the balancer before the next.
    const restarted: number[] = [];
    for (const [i, r] of replicas.entries()) {
      await eventually(async () => expect((await lb.stats()).filter((s) => s.status !== 'UP')).toEqual([]), 60_000, 250);
      // Each holds a share before it goes (the one back from kill -9 gets its share from the others' shedding).
      restarted.push(
        await eventually(async () => ((await counts())[i]! > SIMS / 6 ? (await counts())[i]! : Promise.reject(new Error('no share yet'))), 120_000, 500),
      );
      r.cloud!.child.kill('SIGTERM');
      expect(await r.cloud!.exited).toEqual({ code: 0, signal: null });
      await touchConfig();
      await start(r);
      await allBack();
    }
    await running('after-failover');

    // Every report made at the edges reaches the cluster: the simulated edges stop reporting, every report is
    // acknowledged, and each Node carries its edge's newest one.
    const made = await eventually(
      async () => {
        const r = await sim.reports(true);
        const unacked = Object.entries(r.nodes).filter(([, v]) => v.acked !== v.made);
        expect(unacked).toEqual([]);
        return r.nodes;
      },
      60_000,
      500,
    );
    expect(Object.values(made).every((v) => v.made >= 2)).toBe(true);
    const lost = await eventually(
      async () => {
        const nodes = (await core.listNode()).items.filter((n) => n.metadata!.name!.startsWith('sim-'));
        const wrong = nodes.filter((n) => n.status?.nodeInfo?.bootID !== `sim-${made[n.metadata!.name!]!.made}`).map((n) => n.metadata!.name);
        expect(nodes.length).toBe(SIMS);
        expect(wrong).toEqual([]);
        return wrong.length;
      },
      30_000,
      500,
    );
    expect(lost).toBe(0);

    // Objects: each real edge holds exactly the cluster's version of its pods and of the ConfigMaps they use
    // (shared-config, changed at every step above, and the service account's kube-root-ca.crt).
    const cm = JSON.parse(await cp.kubectlOk(['get', 'configmap', 'shared-config', '-o', 'json']));
    expect(cm.data.round).toBe(String(round));
    for (const e of edges) {
      const node = e.setup.nodeName;
      await eventually(
        async () => {
          const pods = JSON.parse(await cp.kubectlOk(['get', 'pods', '--field-selector', `spec.nodeName=${node}`, '-o', 'json'])).items;
          const configMaps = JSON.parse(await cp.kubectlOk(['get', 'configmaps', '-o', 'json'])).items.filter((c: any) =>
            ['shared-config', 'kube-root-ca.crt'].includes(c.metadata.name),
          );
          const store = readEdgeStore(e.setup.dbPath);
          const held = [...store.entries()].filter(([k]) => /\/(pod|configmap)\//.test(k)).map(([k, v]) => [k, v.resourceVersion]);
          const want = [
            ...pods.map((p: any) => [`default/pod/${p.metadata.name}`, p.metadata.resourceVersion]),
            ...configMaps.map((c: any) => [`default/configmap/${c.metadata.name}`, c.metadata.resourceVersion]),
          ];
          expect(held.sort()).toEqual(want.sort());
        },
        30_000,
        500,
      );
    }

    // The pods ran through all of it: same uid, never restarted, the same container.
    for (const [i, first] of firstPods.entries()) {
      const now = await podOf(first.metadata.name);
      expect(now.metadata.uid).toBe(first.metadata.uid);
      expect(now.status.phase).toBe('Running');
      expect(now.status.containerStatuses.map((s: any) => s.restartCount)).toEqual([0]);
      expect(await containersOf(first.metadata.uid)).toEqual(firstContainers[i]);
    }

    // Every node stayed Ready: no sampled transition, and no NodeNotReady event from the controller-manager.
    await sampler.stop();
    expect(sampler.samples).toBeGreaterThan(10);
    expect(sampler.transitions).toEqual([]);
    const events = JSON.parse(await cp.kubectlOk(['get', 'events', '-A', '--field-selector', 'reason=NodeNotReady', '-o', 'json'])).items;
    expect(events.map((e: any) => e.involvedObject.name)).toEqual([]);
    console.info(
      JSON.stringify({
        balanced,
        rounds,
        killed: victimId,
        edgesOnKilled: beforeKill[replicas.indexOf(killed)],
        edgesOnRestarted: restarted,
        readySamples: sampler.samples,
      }),
    );
  });
});
