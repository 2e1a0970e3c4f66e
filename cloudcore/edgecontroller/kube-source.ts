import type { CoreV1Event, KubernetesObject, V1ConfigMap, V1Node, V1Pod, V1Secret } from '@kubernetes/client-node';
import type { Logger } from '../../shared/logger.js';
import { CoreError } from '../../shared/errors.js';
import { NULL_NAMESPACE, Operation, parseEdgeResource } from '../../shared/message.js';
import type { ReportMessage } from '../contracts/node-messages.js';
import type { KubeClients } from '../kube/kube-client.js';
import type { TokenBucket } from '../kube/rate-limiter.js';
import { Watched } from '../kube/watched.js';
import { EDGE_ROLE_LABEL, NodeKeeper, type EdgeNodeStatus } from './node-keeper.js';
import type { DesiredObject, ObjectSource, SourceChange } from './object-source.js';
import { ReferenceIndex } from '../kube/reference-index.js';
import { isMirrorPod, podReferences, type RefKey } from './pod-references.js';
import { PodAutonomyWebhook } from './pod-autonomy.js';
import { PodReports } from './pod-reports.js';
import type { CaSource } from '../../shared/pki/ca-source.js';

export interface KubeSourceOptions {
  clients: KubeClients;
  limiter: TokenBucket;
  logger: Logger;
  leaseDurationSeconds: number;
  leaseRenewIntervalMs: number;
  nodeStatusRefreshMs: number;
  /** Serve the pod autonomy webhook (absent: pods keep Kubernetes' default eviction). */
  autonomy?: { caSource: CaSource; host: string; address: string; port: number };
}

interface TrackedPod {
  node: string;
  uid: string;
  resourceVersion: string;
  refs: Set<RefKey>;
}

/**
 * The `kubernetes` source. A node should hold its Node, the pods bound to it, and the ConfigMaps and
 * Secrets those pods reference. Informers keep all four in memory; an index says which node needs which
 * referenced object; every change becomes a message for exactly the nodes it concerns.
 */
export class KubeSource implements ObjectSource {
  readonly ownedTypes = ['node', 'pod', 'configmap', 'secret'];
  private readonly nodes: Watched<V1Node>;
  private readonly pods: Watched<V1Pod>;
  private readonly configMaps: Watched<V1ConfigMap>;
  private readonly secrets: Watched<V1Secret>;
  private readonly keeper: NodeKeeper;
  private readonly edgeNodes = new Set<string>();
  /** Every pod with a nodeName, by node: a node that becomes an edge node finds its pods here. */
  private readonly podsByNodeName = new Map<string, Set<string>>();
  private readonly podNodeName = new Map<string, string>();
  /** Pods on edge nodes. */
  private readonly tracked = new Map<string, TrackedPod>();
  private readonly refs = new ReferenceIndex();
  private emit: ((change: SourceChange) => void) | undefined;
  private webhook: PodAutonomyWebhook | undefined;
  private readonly podReports: PodReports;

  constructor(private readonly options: KubeSourceOptions) {
    const { kc, core } = options.clients;
    const logger = options.logger;
    this.nodes = new Watched<V1Node>({
      name: 'edge nodes',
      kc,
      path: '/api/v1/nodes',
      labelSelector: EDGE_ROLE_LABEL,
      list: () => options.clients.rawList<V1Node>('/api/v1/nodes', EDGE_ROLE_LABEL),
      logger,
      onAdd: (n) => this.onNode(n, false),
      onUpdate: (n) => this.onNode(n, false),
      onDelete: (n) => this.onNode(n, true),
    });
    this.pods = new Watched<V1Pod>({ name: 'pods', kc, path: '/api/v1/pods', list: () => options.clients.rawList<V1Pod>('/api/v1/pods'), logger, onAdd: (p) => this.onPod(p, false), onUpdate: (p) => this.onPod(p, false), onDelete: (p) => this.onPod(p, true) });
    this.configMaps = new Watched<V1ConfigMap>({ name: 'configmaps', kc, path: '/api/v1/configmaps', list: () => options.clients.rawList<V1ConfigMap>('/api/v1/configmaps'), logger, onAdd: (o) => this.onReferenced('configmap', o, false), onUpdate: (o) => this.onReferenced('configmap', o, false), onDelete: (o) => this.onReferenced('configmap', o, true) });
    this.secrets = new Watched<V1Secret>({ name: 'secrets', kc, path: '/api/v1/secrets', list: () => options.clients.rawList<V1Secret>('/api/v1/secrets'), logger, onAdd: (o) => this.onReferenced('secret', o, false), onUpdate: (o) => this.onReferenced('secret', o, false), onDelete: (o) => this.onReferenced('secret', o, true) });
    const asNode = (node: string) => options.clients.asNode(node);
    this.podReports = new PodReports({ asNode, limiter: options.limiter, nodeUid: (node) => this.nodes.get(node)?.metadata?.uid, nodeOfPod: (key) => this.tracked.get(key), pod: (name, namespace) => this.pods.get(name, namespace) });
    this.keeper = new NodeKeeper({
      core,
      asNode,
      limiter: options.limiter,
      logger,
      cachedNode: (name) => this.nodes.get(name),
      leaseDurationSeconds: options.leaseDurationSeconds,
      leaseRenewIntervalMs: options.leaseRenewIntervalMs,
      statusRefreshMs: options.nodeStatusRefreshMs,
    });
  }

  async start(emit: (change: SourceChange) => void): Promise<void> {
    const startedAt = performance.now();
    // Changes before the initial lists are complete are not emitted: nodes connecting later resync.
    await this.nodes.start();
    await Promise.all([this.pods.start(), this.configMaps.start(), this.secrets.start()]);
    this.emit = emit;
    this.keeper.start();
    const autonomy = this.options.autonomy;
    if (autonomy) {
      this.webhook = new PodAutonomyWebhook({ ca: await autonomy.caSource.obtain(), host: autonomy.host, address: autonomy.address, port: autonomy.port, admission: this.options.clients.admission, isEdgeNode: (n) => this.edgeNodes.has(n), logger: this.options.logger });
      await this.webhook.start();
    }
    this.options.logger.info({ source: 'kubernetes', server: this.options.clients.server, edgeNodes: this.edgeNodes.size, edgePods: this.tracked.size, ms: Math.round(performance.now() - startedAt) }, 'edgecontroller watching the cluster');
  }

  async stop(): Promise<void> {
    this.emit = undefined;
    this.keeper.stop();
    await this.webhook?.stop();
    await Promise.all([this.nodes.stop(), this.pods.stop(), this.configMaps.stop(), this.secrets.stop()]);
  }

  /** The node, then what its pods use, then the pods (the order a resync sends them in). */
  *desired(node: string): Iterable<DesiredObject> {
    const own = this.edgeNodes.has(node) ? this.nodes.get(node) : undefined;
    if (own) yield toDesired(`${NULL_NAMESPACE}/node/${node}`, own);
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

  lookup(node: string, key: string): DesiredObject | undefined {
    const { namespace, type, name } = parseEdgeResource(key);
    if (name === undefined) return undefined;
    if (type === 'node') {
      const own = name === node ? this.nodes.get(node) : undefined;
      return own && toDesired(key, own);
    }
    if (type === 'pod') {
      const pod = this.tracked.get(`${namespace}/${name}`)?.node === node ? this.pods.get(name, namespace) : undefined;
      return pod && toDesired(key, pod);
    }
    const ref: RefKey = `${type}/${namespace}/${name}`;
    if ((type !== 'configmap' && type !== 'secret') || !this.refs.has(node, ref)) return undefined;
    const object = this.referenced(ref);
    return object && toDesired(key, object);
  }

  async report(message: ReportMessage): Promise<void> {
    const { node, object: { namespace, type, name } } = message;
    if (type === 'nodestatus') {
      if (name !== node) throw new CoreError('ERR_FORBIDDEN', `node ${node} may not report the status of node ${name}`);
      return this.keeper.report(node, (message.content ?? {}) as EdgeNodeStatus);
    }
    const reports = this.podReports;
    if (type === 'podstatus' && name !== undefined) return reports.status(node, namespace, name, message.content as { uid?: string; status?: unknown });
    if (type === 'pod' && name !== undefined && message.operation === Operation.insert) return reports.mirrorPod(node, namespace, name, message.content as V1Pod);
    if (type === 'pod' && name !== undefined && message.operation === Operation.delete) {
      const content = message.content as { uid?: string; mirror?: boolean } | null;
      return content?.mirror ? reports.deleteMirrorPod(node, namespace, name) : reports.confirmDeletion(node, namespace, name, content?.uid);
    }
    if (type === 'event' && message.operation === Operation.insert) return reports.event(node, namespace, message.content as CoreV1Event);
    throw new CoreError('ERR_INVALID_MESSAGE', `reports of type ${type} (${message.operation}) are not handled`);
  }

  connected(node: string): void {
    this.keeper.connected(node);
  }

  disconnected(node: string): void {
    this.keeper.disconnected(node);
  }

  private onNode(node: V1Node, deleted: boolean): void {
    const name = node.metadata!.name!;
    const key = `${NULL_NAMESPACE}/node/${name}`;
    if (deleted) {
      this.edgeNodes.delete(name);
      this.send(name, 'delete', toDesired(key, node));
    } else {
      const fresh = !this.edgeNodes.has(name);
      this.edgeNodes.add(name);
      this.send(name, fresh ? 'insert' : 'update', toDesired(key, node));
    }
    for (const podKey of this.podsByNodeName.get(name) ?? []) this.reconcilePod(podKey, this.podFromKey(podKey));
  }

  private onPod(pod: V1Pod, deleted: boolean): void {
    const key = `${pod.metadata!.namespace}/${pod.metadata!.name}`;
    const nodeName = deleted ? undefined : pod.spec?.nodeName || undefined;
    const previous = this.podNodeName.get(key);
    if (previous !== nodeName) {
      if (previous) this.podsByNodeName.get(previous)?.delete(key);
      if (nodeName) {
        let set = this.podsByNodeName.get(nodeName);
        if (!set) this.podsByNodeName.set(nodeName, (set = new Set()));
        set.add(key);
        this.podNodeName.set(key, nodeName);
      } else this.podNodeName.delete(key);
    }
    this.reconcilePod(key, deleted ? undefined : pod, deleted ? pod : undefined);
  }

  /**
   * Brings the edge view of one pod (and what it references) in line with the cluster. A mirror pod counts for
   * nothing it references: one the node created is accepted (as the node) only without references, so any it
   * has were put there by another hand (an older cloudcore writing with its own credentials, say), not by
   * the cluster binding a workload to the node.
   */
  private reconcilePod(key: string, pod: V1Pod | undefined, lastSeen?: V1Pod): void {
    const old = this.tracked.get(key);
    const nodeName = pod?.spec?.nodeName;
    const node = nodeName && this.edgeNodes.has(nodeName) ? nodeName : undefined;
    const refs = node && pod && !isMirrorPod(pod) ? podReferences(pod) : new Set<RefKey>();
    if (old && old.node !== node) {
      const final = lastSeen ?? pod;
      this.send(old.node, 'delete', { key: edgeKey('pod', key), uid: old.uid, resourceVersion: final?.metadata?.resourceVersion ?? old.resourceVersion, content: final ?? { metadata: { uid: old.uid } } });
      this.dropRefs(old.node, this.refs.remove(old.node, old.refs));
    }
    if (!node || !pod) {
      this.tracked.delete(key);
      return;
    }
    const sameNode = old?.node === node;
    const added = this.refs.add(node, sameNode ? [...refs].filter((r) => !old!.refs.has(r)) : refs);
    const removed = sameNode ? this.refs.remove(node, [...old!.refs].filter((r) => !refs.has(r))) : [];
    // What the pod uses goes first: edged, seeing the pod, finds its ConfigMaps and Secrets already there.
    for (const ref of added) {
      const object = this.referenced(ref);
      if (object) this.send(node, 'insert', toDesired(refToEdgeKey(ref), object));
    }
    this.send(node, sameNode ? 'update' : 'insert', toDesired(edgeKey('pod', key), pod));
    this.dropRefs(node, removed);
    this.tracked.set(key, { node, uid: pod.metadata!.uid!, resourceVersion: pod.metadata!.resourceVersion!, refs });
  }

  /** Objects no pod on the node references any more leave the node. */
  private dropRefs(node: string, gone: RefKey[]): void {
    for (const ref of gone) {
      const object = this.referenced(ref);
      if (object) this.send(node, 'delete', toDesired(refToEdgeKey(ref), object));
    }
  }

  private onReferenced(kind: 'configmap' | 'secret', object: V1ConfigMap | V1Secret, deleted: boolean): void {
    const ref: RefKey = `${kind}/${object.metadata!.namespace}/${object.metadata!.name}`;
    for (const node of this.refs.nodesFor(ref)) this.send(node, deleted ? 'delete' : 'update', toDesired(refToEdgeKey(ref), object));
  }

  private send(node: string, operation: SourceChange['operation'], object: DesiredObject): void {
    this.emit?.({ node, operation, object });
  }

  private podFromKey(key: string): V1Pod | undefined {
    const [namespace, name] = key.split('/');
    return this.pods.get(name!, namespace);
  }

  private referenced(ref: RefKey): KubernetesObject | undefined {
    const [kind, namespace, name] = ref.split('/');
    return kind === 'configmap' ? this.configMaps.get(name!, namespace) : this.secrets.get(name!, namespace);
  }
}

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
