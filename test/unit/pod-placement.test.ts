import type { KubernetesObject, V1Node, V1Pod, V1PodSpec } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { PodPlacement, type PlacementChange, type ReferencedKind } from '../../cloudcore/edgecontroller/pod-placement.js';
import { MIRROR_ANNOTATION } from '../../cloudcore/edgecontroller/pod-references.js';

let rv = 100;
const meta = (name: string, namespace?: string) => ({ name, namespace, uid: `uid-${name}`, resourceVersion: String(rv++) });
const node = (name: string): V1Node => ({ metadata: meta(name) });
const pod = (name: string, nodeName: string | undefined, spec: Partial<V1PodSpec> = {}): V1Pod => ({
  metadata: meta(name, 'ns'),
  spec: { nodeName, containers: [{ name: 'c' }], ...spec },
});
/** A pod using ConfigMap `cm` as a volume and Secret `s` in its env. */
const podUsing = (name: string, nodeName: string, cm = 'cm', secret = 's'): V1Pod =>
  pod(name, nodeName, {
    volumes: [{ name: 'v', configMap: { name: cm } }],
    containers: [{ name: 'c', env: [{ name: 'E', valueFrom: { secretKeyRef: { name: secret, key: 'k' } } }] }],
  });
const summary = (changes: PlacementChange[]): string[] => changes.map((c) => `${c.node} ${c.operation} ${c.object.key}`);

/** The informer caches a placement reads, updated before the placement hears of a change (as informers do). */
function cluster() {
  const nodes = new Map<string, V1Node>();
  const pods = new Map<string, V1Pod>();
  const referenced = new Map<string, KubernetesObject>();
  const placement = new PodPlacement({
    node: (name) => nodes.get(name),
    pod: (namespace, name) => pods.get(`${namespace}/${name}`),
    referenced: (kind, namespace, name) => referenced.get(`${kind}/${namespace}/${name}`),
  });
  return {
    placement,
    edgeNode: (n: V1Node) => (nodes.set(n.metadata!.name!, n), placement.upsertNode(n)),
    dropNode: (n: V1Node) => (nodes.delete(n.metadata!.name!), placement.deleteNode(n)),
    putPod: (p: V1Pod) => (pods.set(`ns/${p.metadata!.name}`, p), placement.upsertPod(p)),
    dropPod: (p: V1Pod) => (pods.delete(`ns/${p.metadata!.name}`), placement.deletePod(p)),
    putRef: (kind: ReferencedKind, name: string) => {
      const object = { metadata: meta(name, 'ns') };
      referenced.set(`${kind}/ns/${name}`, object);
      return placement.upsertReferenced(kind, object);
    },
  };
}

describe('pod placement', () => {
  it('sends what a pod on an edge node uses first, then the pod', () => {
    const c = cluster();
    c.edgeNode(node('n1'));
    expect(summary(c.putRef('configmap', 'cm'))).toEqual([]);
    expect(summary(c.putRef('secret', 's'))).toEqual([]);
    expect(summary(c.putPod(podUsing('a', 'n1')))).toEqual(['n1 insert ns/configmap/cm', 'n1 insert ns/secret/s', 'n1 insert ns/pod/a']);
    // A second pod using the same objects brings only itself.
    expect(summary(c.putPod(podUsing('b', 'n1')))).toEqual(['n1 insert ns/pod/b']);
    expect(c.placement.nodeOfPod('ns/a')).toEqual(expect.objectContaining({ node: 'n1', uid: 'uid-a' }));
  });

  it('sends nothing for a pod on a node that is not an edge node, or not bound yet', () => {
    const c = cluster();
    c.putRef('configmap', 'cm');
    expect(c.putPod(podUsing('a', 'cloud-node'))).toEqual([]);
    expect(c.putPod(pod('b', undefined))).toEqual([]);
    expect(c.placement.nodeOfPod('ns/a')).toBeUndefined();
    expect(c.placement.isEdgeNode('cloud-node')).toBe(false);
  });

  it('brings a node that becomes an edge node the pods already bound to it, and takes them when it goes', () => {
    const c = cluster();
    c.putRef('configmap', 'cm');
    c.putRef('secret', 's');
    c.putPod(podUsing('a', 'n1'));
    const n1 = node('n1');
    expect(summary(c.edgeNode(n1))).toEqual(['n1 insert null/node/n1', 'n1 insert ns/configmap/cm', 'n1 insert ns/secret/s', 'n1 insert ns/pod/a']);
    expect(c.placement.isEdgeNode('n1')).toBe(true);
    expect(summary(c.edgeNode(n1))).toEqual(['n1 update null/node/n1', 'n1 update ns/pod/a']);
    expect(summary(c.dropNode(n1))).toEqual(['n1 delete null/node/n1', 'n1 delete ns/pod/a', 'n1 delete ns/configmap/cm', 'n1 delete ns/secret/s']);
    expect(c.placement.isEdgeNode('n1')).toBe(false);
  });

  it('moves a pod: deleted from the old node with what no other pod there uses, inserted on the new one', () => {
    const c = cluster();
    c.edgeNode(node('n1'));
    c.edgeNode(node('n2'));
    c.putRef('configmap', 'cm');
    c.putRef('secret', 's');
    c.putRef('secret', 'other');
    c.putPod(podUsing('a', 'n1'));
    c.putPod(podUsing('b', 'n1', 'cm', 'other'));
    // cm stays on n1 for pod b; s goes with pod a.
    expect(summary(c.putPod(podUsing('a', 'n2')))).toEqual([
      'n1 delete ns/pod/a',
      'n1 delete ns/secret/s',
      'n2 insert ns/configmap/cm',
      'n2 insert ns/secret/s',
      'n2 insert ns/pod/a',
    ]);
    expect(c.placement.nodeOfPod('ns/a')?.node).toBe('n2');
    expect(summary(c.dropPod(podUsing('a', 'n2')))).toEqual(['n2 delete ns/pod/a', 'n2 delete ns/configmap/cm', 'n2 delete ns/secret/s']);
    expect(c.placement.nodeOfPod('ns/a')).toBeUndefined();
  });

  it('drops an object a pod stops using after the pod update, and sends one created after its pod', () => {
    const c = cluster();
    c.edgeNode(node('n1'));
    c.putRef('configmap', 'cm');
    c.putPod(podUsing('a', 'n1', 'cm', 'late'));
    expect(summary(c.putRef('secret', 'late'))).toEqual(['n1 update ns/secret/late']);
    expect(summary(c.putPod(pod('a', 'n1')))).toEqual(['n1 update ns/pod/a', 'n1 delete ns/configmap/cm', 'n1 delete ns/secret/late']);
  });

  it('sends a ConfigMap change only to the nodes whose pods use it', () => {
    const c = cluster();
    for (const n of ['n1', 'n2', 'n3']) c.edgeNode(node(n));
    c.putRef('configmap', 'cm');
    c.putPod(podUsing('a', 'n1'));
    c.putPod(podUsing('b', 'n2', 'cm', 's2'));
    c.putPod(pod('c', 'n3'));
    expect(summary(c.putRef('configmap', 'cm')).sort()).toEqual(['n1 update ns/configmap/cm', 'n2 update ns/configmap/cm']);
    expect(summary(c.putRef('configmap', 'unused'))).toEqual([]);
    const object = { metadata: meta('cm', 'ns') };
    expect(summary(c.placement.deleteReferenced('configmap', object)).sort()).toEqual(['n1 delete ns/configmap/cm', 'n2 delete ns/configmap/cm']);
  });

  it('counts nothing a mirror pod references', () => {
    const c = cluster();
    c.edgeNode(node('n1'));
    c.putRef('configmap', 'cm');
    c.putRef('secret', 's');
    const mirror = podUsing('static-web', 'n1');
    mirror.metadata!.annotations = { [MIRROR_ANNOTATION]: 'hash' };
    expect(summary(c.putPod(mirror))).toEqual(['n1 insert ns/pod/static-web']);
    expect(c.placement.lookup('n1', 'ns/configmap/cm')).toBeUndefined();
    expect(summary(c.putRef('configmap', 'cm'))).toEqual([]);
  });

  it('lists what a node holds: its Node, then what its pods use, then the pods', () => {
    const c = cluster();
    c.putRef('configmap', 'cm');
    c.putRef('secret', 's');
    c.edgeNode(node('n1'));
    c.edgeNode(node('n2'));
    c.putPod(podUsing('a', 'n1'));
    c.putPod(pod('b', 'n1'));
    c.putPod(pod('elsewhere', 'n2'));
    expect([...c.placement.desired('n1')].map((o) => o.key)).toEqual(['null/node/n1', 'ns/configmap/cm', 'ns/secret/s', 'ns/pod/a', 'ns/pod/b']);
    expect([...c.placement.desired('unknown')]).toEqual([]);
  });

  it("answers a node's lookups only for its own objects", () => {
    const c = cluster();
    c.putRef('configmap', 'cm');
    c.putRef('secret', 's');
    c.edgeNode(node('n1'));
    c.edgeNode(node('n2'));
    c.putPod(podUsing('a', 'n1'));
    expect(c.placement.lookup('n1', 'ns/pod/a')?.uid).toBe('uid-a');
    expect(c.placement.lookup('n2', 'ns/pod/a')).toBeUndefined();
    expect(c.placement.lookup('n1', 'null/node/n1')?.uid).toBe('uid-n1');
    expect(c.placement.lookup('n1', 'null/node/n2')).toBeUndefined();
    expect(c.placement.lookup('n1', 'ns/configmap/cm')?.uid).toBe('uid-cm');
    expect(c.placement.lookup('n2', 'ns/configmap/cm')).toBeUndefined();
    expect(c.placement.lookup('n1', 'ns/service/cm')).toBeUndefined();
  });
});
