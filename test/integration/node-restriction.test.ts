import type { ReportMessage } from '../../edgecore/contracts/messages.js';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { EdgeCore } from '../../edgecore/edgecore.js';
import { Operation, newMessage } from '../../shared/message.js';
import { eventually, tempDir, useControlPlane } from '../support/harness.js';
import { cloudSetup, edgeSetup, readEdgeStore, startCloud, startEdgeInProcess, type Cloud, type EdgeSetup } from '../support/daemons.js';
import type { ControlPlane } from '../support/control-plane.js';

// An edge may write to the cluster only what a kubelet may (issue 10 §2). The attacker is an in-process
// edgecore holding its own node certificate and sending crafted upstream messages, as a tampered edge would.
// cloudcore runs as build/rbac/cloudcore.yaml's ServiceAccount, which cannot write pods, events, Node status
// or Leases itself: every accepted write went out as the node and passed Node,RBAC and NodeRestriction. The
// forging tests give cloudcore the admin's credentials instead (the setup), so nothing but the node
// identity and cloudcore's own checks stands in the attacker's way.

const controlPlane = useControlPlane();
const MIRROR = 'kubernetes.io/config.mirror';

interface Env {
  cp: ControlPlane;
  cloud: Cloud;
  edge(name: string, nodeLabels?: string[]): Promise<{ core: EdgeCore; setup: EdgeSetup }>;
}

async function env(credentials: 'cloudcore' | 'admin' = 'cloudcore'): Promise<Env> {
  const cp = controlPlane();
  const dir = tempDir();
  const cloud = await startCloud(await cloudSetup(dir, { kubeconfig: credentials === 'admin' ? cp.kubeconfig : await cp.cloudcoreKubeconfig() }));
  const token = await cloud.token();
  const nodes: string[] = [];
  onTestFinished(async () => {
    if (nodes.length > 0) await cp.kubectl(['delete', 'node', ...nodes, '--ignore-not-found', '--wait=false']);
  });
  return {
    cp,
    cloud,
    async edge(name, nodeLabels = []) {
      nodes.push(name);
      const setup = edgeSetup(dir, name, cloud.setup, { edged: { enable: true, nodeLabels } });
      const core = await startEdgeInProcess(setup, token);
      await eventually(() => expect(core.edgeHub.status).toMatchObject({ type: 'connected', synced: true }));
      // Registered: pod reports need the Node (a mirror pod is owned by it).
      await eventually(async () => expect(await cp.kubectlOk(['get', 'node', name, '-o', 'name'])).toMatch(name));
      return { core, setup };
    },
  };
}

const json = async (cp: ControlPlane, args: string[]): Promise<any> => JSON.parse(await cp.kubectlOk([...args, '-o', 'json']));
const report = (edge: EdgeCore, operation: ReportMessage['operation'], resource: string, content: unknown): Promise<void> =>
  edge.bus.send('edgehub', newMessage({ source: 'edged', group: 'resource', operation, resource, content }));
const mirrorPod = (namespace: string, name: string, node: string, spec: Record<string, unknown> = {}): unknown => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace, annotations: { [MIRROR]: `hash-of-${name}` } },
  spec: { nodeName: node, containers: [{ name: 'c', image: 'busybox' }], ...spec },
});

/** Waits for `count` refused reports from `node` and returns their error codes. */
async function refusals(cloud: Cloud, node: string, count: number): Promise<string[]> {
  const refused = (): Array<{ code: string }> =>
    cloud.logs.filter((l) => l.msg === 'edge report refused' && l.nodeId === node).map((l) => l.err as { code: string });
  await eventually(() => expect(refused().length).toBe(count));
  return refused().map((e) => e.code);
}

describe('an edge writes to the cluster only what a kubelet may', () => {
  it("refuses mirror pods that reference another node's ConfigMap or the cluster's client CA, and ships neither down", async () => {
    const e = await env('admin');
    const { core: attacker, setup: attackerSetup } = await e.edge('nr-attacker');
    const { setup: victimSetup } = await e.edge('nr-victim');
    await e.cp.kubectlOk(['create', 'namespace', 'victim']);
    await e.cp.kubectlOk(['-n', 'victim', 'create', 'configmap', 'private', '--from-literal=k=v']);
    await e.cp.kubectlOk(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'owner', namespace: 'victim' },
        spec: { nodeName: 'nr-victim', containers: [{ name: 'c', image: 'busybox' }], volumes: [{ name: 'v', configMap: { name: 'private' } }] },
      }),
    );
    await eventually(() => expect(readEdgeStore(victimSetup.dbPath).has('victim/configmap/private')).toBe(true));

    await report(
      attacker,
      Operation.insert,
      'victim/pod/steal',
      mirrorPod('victim', 'steal', 'nr-attacker', { volumes: [{ name: 'v', configMap: { name: 'private' } }] }),
    );
    await report(
      attacker,
      Operation.insert,
      'kube-system/pod/steal-ca',
      mirrorPod('kube-system', 'steal-ca', 'nr-attacker', {
        containers: [
          {
            name: 'c',
            image: 'busybox',
            env: [{ name: 'CA', valueFrom: { configMapKeyRef: { name: 'extension-apiserver-authentication', key: 'client-ca-file' } } }],
          },
        ],
      }),
    );
    await report(attacker, Operation.insert, 'victim/pod/steal-sa', mirrorPod('victim', 'steal-sa', 'nr-attacker', { serviceAccountName: 'default' }));
    await report(
      attacker,
      Operation.insert,
      'victim/pod/steal-pvc',
      mirrorPod('victim', 'steal-pvc', 'nr-attacker', { volumes: [{ name: 'v', persistentVolumeClaim: { claimName: 'data' } }] }),
    );
    expect(await refusals(e.cloud, 'nr-attacker', 4)).toEqual(['ERR_FORBIDDEN', 'ERR_FORBIDDEN', 'ERR_FORBIDDEN', 'ERR_FORBIDDEN']);
    expect(await e.cp.kubectlOk(['get', 'pods', '-A', '-o', 'name'])).not.toMatch(/steal/);
    // Refused reports are dropped, not retried for ever.
    await eventually(() => expect(attacker.edgeHub.pendingUpstream()).toBe(0));
    const stolen = [...readEdgeStore(attackerSetup.dbPath).keys()].filter((k) => k.startsWith('victim/') || k.startsWith('kube-system/'));
    expect(stolen).toEqual([]);
    // Nor can the attacker ask for them.
    const query = await attacker.bus.request(
      'edgehub',
      newMessage({
        source: 'metamanager',
        group: 'resource',
        operation: Operation.query,
        resource: 'kube-system/configmap/extension-apiserver-authentication',
        content: null,
      }),
    );
    expect(query.operation).toBe(Operation.error);

    // The same request made with cloudcore's credentials as the node (what cloudcore's client does) is refused
    // by the cluster itself: NodeRestriction, not only cloudcore's own check, stands behind the rule.
    const uid = (await json(e.cp, ['get', 'node', 'nr-attacker'])).metadata.uid;
    const forged = mirrorPod('victim', 'steal', 'nr-attacker', { volumes: [{ name: 'v', configMap: { name: 'private' } }] }) as {
      metadata: Record<string, unknown>;
    };
    forged.metadata.ownerReferences = [{ apiVersion: 'v1', kind: 'Node', name: 'nr-attacker', uid, controller: true }];
    const asNode = await e.cp.kubectl(
      ['--kubeconfig', await e.cp.cloudcoreKubeconfig(), '--as=system:node:nr-attacker', '--as-group=system:nodes', 'create', '-f', '-'],
      JSON.stringify(forged),
    );
    expect(asNode.code).not.toBe(0);
    expect(asNode.stderr).toMatch(/forbidden.*configmaps/i);
  });

  it('ships a node nothing a mirror pod references, even one someone else created with references', async () => {
    const e = await env();
    const { setup } = await e.edge('nr-legacy');
    // As an older cloudcore writing with its own credentials could have: a mirror pod no node could create.
    await e.cp.kubectlOk(
      ['-n', 'kube-system', 'apply', '-f', '-'],
      JSON.stringify(
        mirrorPod('kube-system', 'legacy-mirror', 'nr-legacy', { volumes: [{ name: 'v', configMap: { name: 'extension-apiserver-authentication' } }] }),
      ),
    );
    onTestFinished(async () => void (await e.cp.kubectl(['-n', 'kube-system', 'delete', 'pod', 'legacy-mirror', '--grace-period=0', '--force'])));
    // What a pod references is sent before the pod: once the pod is there, the ConfigMap would have been too.
    await eventually(() => expect(readEdgeStore(setup.dbPath).has('kube-system/pod/legacy-mirror')).toBe(true));
    expect(readEdgeStore(setup.dbPath).has('kube-system/configmap/extension-apiserver-authentication')).toBe(false);
  });

  it("refuses mirror pods bound to another node, and deleting another node's mirror pod", async () => {
    const e = await env('admin');
    const { core: attacker } = await e.edge('nr-attacker-b');
    const { core: victim, setup: victimSetup } = await e.edge('nr-victim-b');
    await report(victim, Operation.insert, 'default/pod/victim-static', mirrorPod('default', 'victim-static', 'nr-victim-b'));
    // On the victim's edge: cloudcore's cache has it too.
    await eventually(() => expect(readEdgeStore(victimSetup.dbPath).has('default/pod/victim-static')).toBe(true));

    await report(attacker, Operation.insert, 'default/pod/planted', mirrorPod('default', 'planted', 'nr-victim-b'));
    await report(attacker, Operation.delete, 'default/pod/victim-static', { mirror: true });
    // Its own mirror of the same name and manifest hash would replace the victim's.
    await report(attacker, Operation.insert, 'default/pod/victim-static', mirrorPod('default', 'victim-static', 'nr-attacker-b'));
    expect(await refusals(e.cloud, 'nr-attacker-b', 3)).toEqual(['ERR_FORBIDDEN', 'ERR_FORBIDDEN', 'ERR_FORBIDDEN']);
    expect((await e.cp.kubectl(['get', 'pod', 'planted'])).code).not.toBe(0);
    const kept = await json(e.cp, ['get', 'pod', 'victim-static']);
    expect(kept.metadata.deletionTimestamp).toBeUndefined();
    expect(kept.spec.nodeName).toBe('nr-victim-b');
    await e.cp.kubectl(['delete', 'pod', 'victim-static', '--grace-period=0', '--force']);
  });

  it('keeps role and node-restriction labels an edge asks for off its Node, and registers it with the rest', async () => {
    const e = await env();
    await e.edge('nr-climber', [
      'node-role.kubernetes.io/control-plane=',
      'node-restriction.kubernetes.io/trusted=yes',
      'topology.kubernetes.io/zone=z1',
      'site.example.com/rack=7',
    ]);
    const node = await json(e.cp, ['get', 'node', 'nr-climber']);
    expect(node.metadata.labels).toMatchObject({ 'node-role.kubernetes.io/edge': '', 'topology.kubernetes.io/zone': 'z1', 'site.example.com/rack': '7' });
    expect(node.metadata.labels['node-role.kubernetes.io/control-plane']).toBeUndefined();
    expect(node.metadata.labels['node-restriction.kubernetes.io/trusted']).toBeUndefined();
    const warning = e.cloud.logs.find((l) => l.msg === 'node labels a kubelet may not set dropped from the node report' && l.nodeId === 'nr-climber');
    expect(warning?.labels).toEqual(['node-role.kubernetes.io/control-plane', 'node-restriction.kubernetes.io/trusted']);
    // The rest of the report landed.
    await eventually(async () =>
      expect((await json(e.cp, ['get', 'node', 'nr-climber'])).status.conditions.find((c: any) => c.type === 'Ready')?.status).toBe('True'),
    );
  });

  it("still makes a kubelet's writes as the node: static pod mirror, event, pod status, deletion, Node status and Lease", async () => {
    const e = await env();
    // cloudcore's own identity may write none of these.
    for (const [verb, resource, subresource] of [
      ['create', 'pods', ''],
      ['delete', 'pods', ''],
      ['patch', 'pods', 'status'],
      ['create', 'events', ''],
      ['patch', 'nodes', 'status'],
      ['create', 'leases.coordination.k8s.io', ''],
    ]) {
      const r = await e.cp.kubectl([
        'auth',
        'can-i',
        verb,
        resource,
        ...(subresource ? [`--subresource=${subresource}`] : []),
        '-A',
        '--as=system:serviceaccount:kubeedge:cloudcore',
      ]);
      expect(`${verb} ${resource} ${subresource}: ${r.stdout.trim()}`).toBe(`${verb} ${resource} ${subresource}: no`);
    }
    const { core: edge, setup } = await e.edge('nr-kubelet');
    await eventually(async () =>
      expect((await json(e.cp, ['get', 'node', 'nr-kubelet'])).status.conditions.find((c: any) => c.type === 'Ready')?.status).toBe('True'),
    );
    const node = await json(e.cp, ['get', 'node', 'nr-kubelet']);
    expect((await json(e.cp, ['-n', 'kube-node-lease', 'get', 'lease', 'nr-kubelet'])).spec.holderIdentity).toBe('nr-kubelet');

    await report(edge, Operation.insert, 'default/pod/kubelet-static', mirrorPod('default', 'kubelet-static', 'nr-kubelet'));
    await eventually(() => expect(readEdgeStore(setup.dbPath).has('default/pod/kubelet-static')).toBe(true));
    expect((await json(e.cp, ['get', 'pod', 'kubelet-static'])).metadata.ownerReferences).toEqual([
      expect.objectContaining({ kind: 'Node', name: 'nr-kubelet', uid: node.metadata.uid, controller: true }),
    ]);

    await e.cp.kubectlOk(['run', 'worker', '--image=busybox', '--restart=Never', '--overrides', JSON.stringify({ spec: { nodeName: 'nr-kubelet' } })]);
    const worker = await json(e.cp, ['get', 'pod', 'worker']);
    const at = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    await report(edge, Operation.update, 'default/podstatus/worker', {
      uid: worker.metadata.uid,
      status: { phase: 'Running', podIP: '192.0.2.20', startTime: at },
    });
    await report(edge, Operation.insert, 'default/event/worker.started', {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: 'worker.started', namespace: 'default' },
      involvedObject: { apiVersion: 'v1', kind: 'Pod', name: 'worker', namespace: 'default', uid: worker.metadata.uid },
      reason: 'Started',
      message: 'Started container',
      type: 'Normal',
      source: { component: 'kubelet', host: 'nr-kubelet' },
      firstTimestamp: at,
      lastTimestamp: at,
      count: 1,
    });
    await eventually(async () => expect((await json(e.cp, ['get', 'pod', 'worker'])).status.podIP).toBe('192.0.2.20'));
    await eventually(async () => expect((await json(e.cp, ['get', 'event', 'worker.started'])).reason).toBe('Started'));

    // A graceful delete waits for the node's confirmation (no kubelet here but the edge).
    await e.cp.kubectlOk(['delete', 'pod', 'worker', '--wait=false']);
    await report(edge, Operation.delete, 'default/pod/worker', { uid: worker.metadata.uid });
    await eventually(async () => expect((await e.cp.kubectl(['get', 'pod', 'worker'])).stderr).toMatch(/NotFound/));
    await report(edge, Operation.delete, 'default/pod/kubelet-static', { mirror: true });
    await eventually(async () => expect((await e.cp.kubectl(['get', 'pod', 'kubelet-static'])).stderr).toMatch(/NotFound/));
    expect(e.cloud.logs.filter((l) => l.msg === 'edge report refused')).toEqual([]);
  });
});
