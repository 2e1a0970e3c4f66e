import { describe, expect, it, onTestFinished } from 'vitest';
import type { EdgeCore } from '../../edgecore/edgecore.js';
import { Operation, newMessage } from '../../shared/message.js';
import { eventually, tempDir, useControlPlane } from '../support/harness.js';
import { cloudSetup, edgeSetup, readEdgeStore, startCloud, startEdgeInProcess, type Cloud, type EdgeSetup } from '../support/daemons.js';
import type { ControlPlane } from '../support/control-plane.js';

// Short enough to see NotReady and eviction within a test: the node controller gives up on a silent node
// after 10 s, and pods without our tolerations are evicted 5 s after the taint.
const controlPlane = useControlPlane({
  controllerManagerArgs: ['--node-monitor-grace-period=10s', '--node-monitor-period=2s'],
  apiserverArgs: ['--default-not-ready-toleration-seconds=5', '--default-unreachable-toleration-seconds=5'],
});

interface Env {
  cp: ControlPlane;
  cloud: Cloud;
  dir: string;
  token: string;
  edge(name: string): Promise<{ core: EdgeCore; setup: EdgeSetup }>;
}

async function env(): Promise<Env> {
  const cp = controlPlane();
  const dir = tempDir();
  // cloudcore as deployed: its ServiceAccount bound to build/rbac/cloudcore.yaml, not the admin.
  const cloud = await startCloud(await cloudSetup(dir, { kubeconfig: await cp.cloudcoreKubeconfig() }));
  const token = await cloud.token();
  const nodes: string[] = [];
  onTestFinished(async () => {
    // Leftover NotReady nodes would push the node controller into disruption mode for the next test.
    if (nodes.length > 0) await cp.kubectl(['delete', 'node', ...nodes, '--ignore-not-found', '--wait=false']);
  });
  return {
    cp,
    cloud,
    dir,
    token,
    async edge(name) {
      nodes.push(name);
      // Edges sharing this machine report distinct Hostname addresses: the apiserver dials that address.
      const setup = edgeSetup(dir, name, cloud.setup, { edged: { enable: true, hostnameOverride: name } });
      const core = await startEdgeInProcess(setup, token);
      await eventually(() => expect(core.edgeHub.status).toMatchObject({ type: 'connected', synced: true }));
      return { core, setup };
    },
  };
}

const json = async (cp: ControlPlane, args: string[]): Promise<any> => JSON.parse(await cp.kubectlOk([...args, '-o', 'json']));
const ready = (node: any): string | undefined => node.status?.conditions?.find((c: any) => c.type === 'Ready')?.status;

describe('cloudcore on a real cluster (kube-apiserver, controller-manager, scheduler; kubectl as the client)', () => {
  it('turns a joining edge into a Ready edge Node kept alive by Lease renewals, NotReady once the edge is gone', async () => {
    const e = await env();
    const { core, setup } = await e.edge('kube-edge-a');
    await eventually(async () => expect(ready(await json(e.cp, ['get', 'node', 'kube-edge-a']))).toBe('True'));
    const node = await json(e.cp, ['get', 'node', 'kube-edge-a']);
    expect(node.metadata.labels).toMatchObject({ 'node-role.kubernetes.io/edge': '', 'kubernetes.io/hostname': 'kube-edge-a' });
    expect(node.status.addresses.map((a: any) => a.type)).toEqual(['InternalIP', 'Hostname']);
    expect(node.status.addresses[1].address).toBe('kube-edge-a');
    // Where the apiserver sends kubectl logs/exec for this node; cloudcore relays (nothing listens on the edge).
    expect(node.status.daemonEndpoints.kubeletEndpoint.Port).toBe(10350);
    expect(Number(node.status.capacity.cpu)).toBeGreaterThan(0);
    expect(node.status.nodeInfo.kubeletVersion).toMatch(/^v1\.33\.13-kubeedge-ts-/);
    const lease = await json(e.cp, ['get', 'lease', '-n', 'kube-node-lease', 'kube-edge-a']);
    expect(lease.spec.holderIdentity).toBe('kube-edge-a');
    // Owned by the Node, as a kubelet's Lease is: deleting the Node removes it.
    expect(lease.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'Node', name: 'kube-edge-a', uid: node.metadata.uid })]);
    await eventually(
      async () =>
        expect(new Date((await json(e.cp, ['get', 'lease', '-n', 'kube-node-lease', 'kube-edge-a'])).spec.renewTime).getTime()).toBeGreaterThan(
          new Date(lease.spec.renewTime).getTime(),
        ),
      15_000,
    );
    // The edge's own Node reaches its store (edged reads it later).
    await eventually(() => expect(readEdgeStore(setup.dbPath).has('null/node/kube-edge-a')).toBe(true));

    // A cloudcore restart does not rewrite the status of a node whose edge reports nothing new.
    const heartbeat = (n: any): string => n.status.conditions.find((c: any) => c.type === 'Ready').lastHeartbeatTime;
    const beat = heartbeat(await json(e.cp, ['get', 'node', 'kube-edge-a']));
    await e.cloud.kill('SIGTERM');
    const cloud = await startCloud(e.cloud.setup, 'cloudcore-restarted');
    await eventually(() => expect(core.edgeHub.status).toMatchObject({ type: 'connected', synced: true }));
    await eventually(() => expect(cloud.logs.some((l) => l.msg === 'edge session open')).toBe(true));
    await new Promise((r) => setTimeout(r, 2_000));
    expect(heartbeat(await json(e.cp, ['get', 'node', 'kube-edge-a']))).toBe(beat);

    await core.stop();
    await eventually(async () => expect(ready(await json(e.cp, ['get', 'node', 'kube-edge-a']))).toBe('Unknown'), 40_000);
    expect(await e.cp.kubectlOk(['get', 'node', 'kube-edge-a', '--no-headers'])).toMatch(/NotReady/);
    const again = await startEdgeInProcess(setup);
    onTestFinished(() => again.stop());
    await eventually(async () => expect(ready(await json(e.cp, ['get', 'node', 'kube-edge-a']))).toBe('True'), 20_000);
  });

  it('delivers pods bound to the edge with the ConfigMaps and Secrets they reference, and follows changes', async () => {
    const e = await env();
    const { setup } = await e.edge('kube-edge-b');
    await e.cp.kubectlOk(['create', 'namespace', 'shop']);
    await e.cp.kubectlOk(['-n', 'shop', 'create', 'configmap', 'settings', '--from-literal=mode=one']);
    await e.cp.kubectlOk(['-n', 'shop', 'create', 'secret', 'generic', 'creds', '--from-literal=pw=x']);
    await e.cp.kubectlOk(['-n', 'shop', 'create', 'configmap', 'unrelated', '--from-literal=a=b']);
    await e.cp.kubectlOk(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'till', namespace: 'shop' },
        spec: {
          nodeName: 'kube-edge-b',
          containers: [{ name: 'c', image: 'busybox', env: [{ name: 'PW', valueFrom: { secretKeyRef: { name: 'creds', key: 'pw' } } }] }],
          volumes: [{ name: 'cfg', configMap: { name: 'settings' } }],
        },
      }),
    );
    await eventually(() => {
      const store = readEdgeStore(setup.dbPath);
      // kube-root-ca.crt comes with the service account volume every pod gets; `unrelated` must not come.
      expect([...store.keys()].filter((k) => k.startsWith('shop/')).sort()).toEqual([
        'shop/configmap/kube-root-ca.crt',
        'shop/configmap/settings',
        'shop/pod/till',
        'shop/secret/creds',
      ]);
    });
    const before = readEdgeStore(setup.dbPath).get('shop/configmap/settings')!.resourceVersion;
    await e.cp.kubectlOk(['-n', 'shop', 'patch', 'configmap', 'settings', '-p', '{"data":{"mode":"two"}}']);
    await eventually(() => {
      const cm = readEdgeStore(setup.dbPath).get('shop/configmap/settings')!;
      expect(Number(cm.resourceVersion)).toBeGreaterThan(Number(before));
      expect(JSON.parse(cm.value).data).toEqual({ mode: 'two' });
    });
    // Server-side-apply bookkeeping stays in the cloud.
    expect(JSON.parse(readEdgeStore(setup.dbPath).get('shop/pod/till')!.value).metadata.managedFields).toBeUndefined();
    await e.cp.kubectlOk(['-n', 'shop', 'delete', 'pod', 'till', '--grace-period=0', '--force']);
    await eventually(() => expect([...readEdgeStore(setup.dbPath).keys()].filter((k) => k.startsWith('shop/'))).toEqual([]));
  });

  it('removes a pod deleted while the edge was offline once it reconnects', async () => {
    const e = await env();
    const { core, setup } = await e.edge('kube-edge-c');
    await e.cp.kubectlOk(['run', 'gone-soon', '--image=busybox', '--restart=Never', '--overrides', JSON.stringify({ spec: { nodeName: 'kube-edge-c' } })]);
    await e.cp.kubectlOk(['run', 'stays', '--image=busybox', '--restart=Never', '--overrides', JSON.stringify({ spec: { nodeName: 'kube-edge-c' } })]);
    await eventually(() => expect(readEdgeStore(setup.dbPath).has('default/pod/gone-soon')).toBe(true));
    await core.stop();
    await e.cp.kubectlOk(['delete', 'pod', 'gone-soon', '--grace-period=0', '--force']);
    const again = await startEdgeInProcess(setup);
    onTestFinished(() => again.stop());
    await eventually(() => {
      const store = readEdgeStore(setup.dbPath);
      expect(store.has('default/pod/gone-soon')).toBe(false);
      expect(store.has('default/pod/stays')).toBe(true);
    });
    await e.cp.kubectlOk(['delete', 'pod', 'stays', '--grace-period=0', '--force']);
  });

  it('shows a pod status written on the edge in kubectl, and refuses writes for another node', async () => {
    const e = await env();
    const { core: a } = await e.edge('kube-edge-d');
    await e.edge('kube-edge-e');
    await e.cp.kubectlOk(['run', 'mine', '--image=busybox', '--restart=Never', '--overrides', JSON.stringify({ spec: { nodeName: 'kube-edge-d' } })]);
    await e.cp.kubectlOk(['run', 'theirs', '--image=busybox', '--restart=Never', '--overrides', JSON.stringify({ spec: { nodeName: 'kube-edge-e' } })]);
    const mine = await json(e.cp, ['get', 'pod', 'mine']);
    const startTime = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const status = {
      phase: 'Running',
      podIP: '192.0.2.10',
      startTime,
      conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: startTime }],
      containerStatuses: [{ name: 'mine', ready: true, restartCount: 0, image: 'busybox', imageID: '', state: { running: { startedAt: startTime } } }],
    };
    await a.bus.send(
      'edgehub',
      newMessage({
        source: 'edged',
        group: 'resource',
        operation: Operation.update,
        resource: 'default/podstatus/mine',
        content: { uid: mine.metadata.uid, status },
      }),
    );
    await eventually(async () => {
      const pod = await json(e.cp, ['get', 'pod', 'mine']);
      expect(pod.status.phase).toBe('Running');
      expect(pod.status.podIP).toBe('192.0.2.10');
      expect(pod.status.containerStatuses[0].state.running).toBeDefined();
    });

    // Node d writes a status for a pod on node e and for node e itself: both refused, nothing changes.
    await a.bus.send(
      'edgehub',
      newMessage({
        source: 'edged',
        group: 'resource',
        operation: Operation.update,
        resource: 'default/podstatus/theirs',
        content: { status: { ...status, podIP: '192.0.2.66' } },
      }),
    );
    await a.bus.send(
      'edgehub',
      newMessage({
        source: 'edged',
        group: 'resource',
        operation: Operation.update,
        resource: 'null/nodestatus/kube-edge-e',
        content: { labels: { hijacked: 'yes' }, addresses: [{ type: 'InternalIP', address: '203.0.113.1' }] },
      }),
    );
    await eventually(() => expect(e.cloud.logs.filter((l) => l.msg === 'edge report refused' && l.nodeId === 'kube-edge-d').length).toBe(2));
    const refusals = e.cloud.logs.filter((l) => l.msg === 'edge report refused').map((l) => l.err as { code: string; message: string });
    expect(refusals.every((r) => r.code === 'ERR_FORBIDDEN')).toBe(true);
    expect((await json(e.cp, ['get', 'pod', 'theirs'])).status.podIP).toBeUndefined();
    expect((await json(e.cp, ['get', 'node', 'kube-edge-e'])).status.addresses.map((x: any) => x.address)).not.toContain('203.0.113.1');
    // Refused reports are ACKed (dropped), so they do not wait in the edge outbox for ever.
    await eventually(() => expect(a.edgeHub.pendingUpstream()).toBe(0));
    await e.cp.kubectlOk(['delete', 'pod', 'mine', 'theirs', '--grace-period=0', '--force']);
  });

  it('keeps the pods of a disconnected edge node, while a pod that opted out is evicted', async () => {
    const e = await env();
    // Two edge nodes, so the node controller is not in full-disruption mode (where it evicts nothing anyway).
    await e.edge('kube-edge-f');
    const { core: g, setup } = await e.edge('kube-edge-g');
    await e.cp.kubectlOk(['run', 'kept', '--image=busybox', '--restart=Never', '--overrides', JSON.stringify({ spec: { nodeName: 'kube-edge-g' } })]);
    await e.cp.kubectlOk([
      'run',
      'evictable',
      '--image=busybox',
      '--restart=Never',
      '--annotations=kubeedge-ts.io/evict-when-unreachable=true',
      '--overrides',
      JSON.stringify({ spec: { nodeName: 'kube-edge-g' } }),
    ]);
    const kept = await json(e.cp, ['get', 'pod', 'kept']);
    const unreachable = kept.spec.tolerations.find((t: any) => t.key === 'node.kubernetes.io/unreachable');
    expect(unreachable).toEqual({ key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute' });
    expect(
      (await json(e.cp, ['get', 'pod', 'evictable'])).spec.tolerations.find((t: any) => t.key === 'node.kubernetes.io/unreachable').tolerationSeconds,
    ).toBe(5);
    await eventually(() => expect(readEdgeStore(setup.dbPath).has('default/pod/kept')).toBe(true));

    await g.stop();
    await eventually(
      async () =>
        expect((await json(e.cp, ['get', 'node', 'kube-edge-g'])).spec.taints?.map((t: any) => `${t.key}:${t.effect}`)).toContain(
          'node.kubernetes.io/unreachable:NoExecute',
        ),
      40_000,
    );
    // The taint controller evicts the opted-out pod 5 s after the taint: a graceful delete, so it stays
    // Terminating until its node confirms (no kubelet here). The kept pod must not be touched.
    await eventually(async () => expect((await json(e.cp, ['get', 'pod', 'evictable'])).metadata.deletionTimestamp).toBeDefined(), 40_000);
    await new Promise((r) => setTimeout(r, 6_000));
    expect((await json(e.cp, ['get', 'pod', 'kept'])).metadata.deletionTimestamp).toBeUndefined();

    // Back online, the edge learns of the eviction and still holds the kept pod unchanged.
    const again = await startEdgeInProcess(setup);
    onTestFinished(() => again.stop());
    await eventually(() => {
      const store = readEdgeStore(setup.dbPath);
      expect(store.get('default/pod/kept')?.value).not.toMatch(/deletionTimestamp/);
      expect(store.get('default/pod/evictable')?.value).toMatch(/deletionTimestamp/);
    }, 20_000);
    await e.cp.kubectlOk(['delete', 'pod', 'kept', 'evictable', '--grace-period=0', '--force']);
  });

  it('serves edges while the device CRDs are missing, and syncs devices once they are installed', async () => {
    const e = await env();
    const { setup } = await e.edge('kube-edge-h');
    expect(e.cloud.logs.some((l) => l.msg === 'device CRDs not installed; devices sync once they are')).toBe(true);
    await e.cp.installCrds();
    await e.cp.kubectlOk(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'devices.kubeedge.io/v1beta1',
        kind: 'Device',
        metadata: { name: 'late', namespace: 'default' },
        spec: { deviceModelRef: { name: 'none-yet' }, nodeName: 'kube-edge-h' },
      }),
    );
    // The device watch retries with a backoff of up to 30 s.
    await eventually(() => expect(readEdgeStore(setup.dbPath).has('default/device/late')).toBe(true), 60_000, 200);
    await e.cp.kubectlOk(['delete', 'device', 'late']);
  });
});
