import type { KubernetesObject, V1Node, V1Pod } from '@kubernetes/client-node';
import { NULL_NAMESPACE, parseEdgeResource } from '../../shared/message.js';
import { ReferenceIndex } from '../kube/reference-index.js';
import type { DesiredObject, SourceChange } from './object-source.js';
import { isMirrorPod, podReferences, type RefKey } from './pod-references.js';

export type ReferencedKind = 'configmap' | 'secret';

/** An object message for one node: what every call of PodPlacement returns. */
export type PlacementChange = SourceChange;

/**
 * The objects as they are now (the informer caches). The placement reads them and keeps none: the caches
 * already hold every pod, ConfigMap and Secret (a pod may arrive after what it references), and a second copy
 * would have to be kept in step with them.
 */
export interface PlacementObjects {
  /** An edge Node. */
  node(name: string): V1Node | undefined;
  pod(namespace: string, name: string): V1Pod | undefined;
  referenced(kind: ReferencedKind, namespace: string, name: string): KubernetesObject | undefined;
}

interface TrackedPod {
  node: string;
  uid: string;
  resourceVersion: string;
  refs: Set<RefKey>;
}

/**
 * Which edge node holds which pod, ConfigMap and Secret. A node holds its Node, the pods bound to it, and the
 * ConfigMaps and Secrets those pods reference, counted per pod: one leaves a node with the last pod there that
 * uses it. Fed with the objects as they change; every call returns the object messages that bring the nodes
 * up to date, in the order they must go out.
 */
export class PodPlacement {
  private readonly edgeNodes = new Set<string>();
  /** Every pod with a nodeName, by node: a node that becomes an edge node finds its pods here. */
  private readonly podsByNodeName = new Map<string, Set<string>>();
  private readonly podNodeName = new Map<string, string>();
  /** Pods on edge nodes. */
  private readonly tracked = new Map<string, TrackedPod>();
  private readonly refs = new ReferenceIndex();

  constructor(private readonly objects: PlacementObjects) {}

  /** A Node with the edge role appeared or changed: it gets its Node, and the pods already bound to it. */
  upsertNode(node: V1Node): PlacementChange[] {
    const name = node.metadata!.name!;
    const fresh = !this.edgeNodes.has(name);
    this.edgeNodes.add(name);
    return [{ node: name, operation: fresh ? 'insert' : 'update', object: toDesired(nodeKey(name), node) }, ...this.reconcilePodsOf(name)];
  }

  /** The Node is gone (or lost the edge role): its pods and what they use leave it. */
  deleteNode(node: V1Node): PlacementChange[] {
    const name = node.metadata!.name!;
    this.edgeNodes.delete(name);
    return [{ node: name, operation: 'delete', object: toDesired(nodeKey(name), node) }, ...this.reconcilePodsOf(name)];
  }

  upsertPod(pod: V1Pod): PlacementChange[] {
    const key = this.index(pod, pod.spec?.nodeName || undefined);
    return this.reconcilePod(key, pod);
  }

  deletePod(pod: V1Pod): PlacementChange[] {
    const key = this.index(pod, undefined);
    return this.reconcilePod(key, undefined, pod);
  }

  /** A ConfigMap or Secret changed: an update for the nodes whose pods use it (the others get it when needed). */
  upsertReferenced(kind: ReferencedKind, object: KubernetesObject): PlacementChange[] {
    return this.toUsers(kind, object, 'update');
  }

  deleteReferenced(kind: ReferencedKind, object: KubernetesObject): PlacementChange[] {
    return this.toUsers(kind, object, 'delete');
  }

  /** The node, then what its pods use, then the pods (the order a resync sends them in). */
  *desired(node: string): Iterable<DesiredObject> {
    const own = this.edgeNodes.has(node) ? this.objects.node(node) : undefined;
    if (own) yield toDesired(nodeKey(node), own);
    for (const ref of this.refs.refsOf(node)) {
      const object = this.referenced(ref);
      if (object) yield toDesired(refToEdgeKey(ref), object);
    }
    for (const podKey of this.podsByNodeName.get(node) ?? []) {
      if (this.tracked.get(podKey)?.node !== node) continue;
      const pod = this.podFromKey(podKey);
      if (pod) yield toDesired(edgeKey('pod', podKey), pod);
    }
  }

  /** One object the node may read: its own Node, its pods, what they reference; undefined otherwise. */
  lookup(node: string, key: string): DesiredObject | undefined {
    const { namespace, type, name } = parseEdgeResource(key);
    if (name === undefined) return undefined;
    if (type === 'node') {
      const own = name === node ? this.objects.node(node) : undefined;
      return own && toDesired(key, own);
    }
    if (type === 'pod') {
      const pod = this.tracked.get(`${namespace}/${name}`)?.node === node ? this.objects.pod(namespace, name) : undefined;
      return pod && toDesired(key, pod);
    }
    const ref: RefKey = `${type}/${namespace}/${name}`;
    if ((type !== 'configmap' && type !== 'secret') || !this.refs.has(node, ref)) return undefined;
    const object = this.referenced(ref);
    return object && toDesired(key, object);
  }

  isEdgeNode(name: string): boolean {
    return this.edgeNodes.has(name);
  }

  /** The edge node a pod (`<namespace>/<name>`) is bound to, and its uid, when it is on an edge node. */
  nodeOfPod(key: string): { node: string; uid: string } | undefined {
    return this.tracked.get(key);
  }

  get edgeNodeCount(): number {
    return this.edgeNodes.size;
  }

  get edgePodCount(): number {
    return this.tracked.size;
  }

  /** Files the pod under the node it names (none once deleted); returns its key. */
  private index(pod: V1Pod, nodeName: string | undefined): string {
    const key = `${pod.metadata!.namespace}/${pod.metadata!.name}`;
    const previous = this.podNodeName.get(key);
    if (previous === nodeName) return key;
    if (previous) this.podsByNodeName.get(previous)?.delete(key);
    if (nodeName) {
      let set = this.podsByNodeName.get(nodeName);
      if (!set) this.podsByNodeName.set(nodeName, (set = new Set()));
      set.add(key);
      this.podNodeName.set(key, nodeName);
    } else this.podNodeName.delete(key);
    return key;
  }

  private reconcilePodsOf(node: string): PlacementChange[] {
    return [...(this.podsByNodeName.get(node) ?? [])].flatMap((podKey) => this.reconcilePod(podKey, this.podFromKey(podKey)));
  }

  /**
   * Brings the edge view of one pod (and what it references) in line with the cluster. A mirror pod counts for
   * nothing it references: one the node created is accepted (as the node) only without references, so any it
   * has were put there by another hand (an older cloudcore writing with its own credentials, say), not by
   * the cluster binding a workload to the node.
   */
  private reconcilePod(key: string, pod: V1Pod | undefined, lastSeen?: V1Pod): PlacementChange[] {
    const old = this.tracked.get(key);
    const nodeName = pod?.spec?.nodeName;
    const node = nodeName && this.edgeNodes.has(nodeName) ? nodeName : undefined;
    const refs = node && pod && !isMirrorPod(pod) ? podReferences(pod) : new Set<RefKey>();
    const changes: PlacementChange[] = [];
    if (old && old.node !== node) {
      const final = lastSeen ?? pod;
      changes.push({
        node: old.node,
        operation: 'delete',
        object: {
          key: edgeKey('pod', key),
          uid: old.uid,
          resourceVersion: final?.metadata?.resourceVersion ?? old.resourceVersion,
          content: final ?? { metadata: { uid: old.uid } },
        },
      });
      changes.push(...this.refChanges(old.node, 'delete', this.refs.remove(old.node, old.refs)));
    }
    if (!node || !pod) {
      this.tracked.delete(key);
      return changes;
    }
    const sameNode = old?.node === node;
    const added = this.refs.add(node, sameNode ? [...refs].filter((r) => !old!.refs.has(r)) : refs);
    const removed = sameNode
      ? this.refs.remove(
          node,
          [...old!.refs].filter((r) => !refs.has(r)),
        )
      : [];
    // What the pod uses goes first: edged, seeing the pod, finds its ConfigMaps and Secrets already there.
    changes.push(...this.refChanges(node, 'insert', added));
    changes.push({ node, operation: sameNode ? 'update' : 'insert', object: toDesired(edgeKey('pod', key), pod) });
    // Objects no pod on the node references any more leave the node, after the pod that stopped using them.
    changes.push(...this.refChanges(node, 'delete', removed));
    this.tracked.set(key, { node, uid: pod.metadata!.uid!, resourceVersion: pod.metadata!.resourceVersion!, refs });
    return changes;
  }

  /** Messages for referenced objects a node started or stopped needing; one not created yet is sent when it is. */
  private refChanges(node: string, operation: 'insert' | 'delete', refs: RefKey[]): PlacementChange[] {
    return refs.flatMap((ref) => {
      const object = this.referenced(ref);
      return object ? [{ node, operation, object: toDesired(refToEdgeKey(ref), object) }] : [];
    });
  }

  private toUsers(kind: ReferencedKind, object: KubernetesObject, operation: 'update' | 'delete'): PlacementChange[] {
    const ref: RefKey = `${kind}/${object.metadata!.namespace}/${object.metadata!.name}`;
    return [...this.refs.nodesFor(ref)].map((node) => ({ node, operation, object: toDesired(refToEdgeKey(ref), object) }));
  }

  private podFromKey(key: string): V1Pod | undefined {
    const [namespace, name] = key.split('/');
    return this.objects.pod(namespace!, name!);
  }

  private referenced(ref: RefKey): KubernetesObject | undefined {
    const [kind, namespace, name] = ref.split('/');
    return this.objects.referenced(kind as ReferencedKind, namespace!, name!);
  }
}

const nodeKey = (name: string): string => `${NULL_NAMESPACE}/node/${name}`;

function edgeKey(type: string, namespacedName: string): string {
  const [namespace, name] = namespacedName.split('/');
  return `${namespace}/${type}/${name}`;
}

function refToEdgeKey(ref: RefKey): string {
  const [kind, namespace, name] = ref.split('/');
  return `${namespace}/${kind}/${name}`;
}

function toDesired(key: string, object: KubernetesObject): DesiredObject {
  return { key, uid: object.metadata?.uid ?? '', resourceVersion: object.metadata?.resourceVersion ?? '', content: object };
}
