import type { V1ConfigMap, V1Node, V1Pod, V1Secret } from '@kubernetes/client-node';
import type { Logger } from '../../shared/logger.js';
import type { KubeClients } from '../kube/kube-client.js';
import { Watched } from '../kube/watched.js';
import { EDGE_ROLE_LABEL } from './node-keeper.js';
import type { DesiredObject, ObjectSource, SourceChange } from './object-source.js';
import { PodPlacement, type PlacementChange } from './pod-placement.js';

export interface KubeSourceOptions {
  clients: KubeClients;
  logger: Logger;
  /** Every change of an edge Node as the informer sees it (the kubelet front indexes their addresses). */
  onNode?(node: V1Node, deleted: boolean): void;
}

/**
 * The `kubernetes` source. A node should hold its Node, the pods bound to it, and the ConfigMaps and
 * Secrets those pods reference. Informers keep all four in memory; PodPlacement says which node needs which
 * of them; every change becomes a message for exactly the nodes it concerns.
 */
export class KubeSource implements ObjectSource {
  readonly ownedTypes = ['node', 'pod', 'configmap', 'secret'];
  private readonly nodes: Watched<V1Node>;
  private readonly pods: Watched<V1Pod>;
  private readonly configMaps: Watched<V1ConfigMap>;
  private readonly secrets: Watched<V1Secret>;
  private readonly placement: PodPlacement;
  private emit: ((change: SourceChange) => void) | undefined;

  constructor(private readonly options: KubeSourceOptions) {
    const { kc } = options.clients;
    const logger = options.logger;
    const placement = (this.placement = new PodPlacement({
      node: (name) => this.node(name),
      pod: (namespace, name) => this.pod(namespace, name),
      referenced: (kind, namespace, name) => (kind === 'configmap' ? this.configMaps.get(name, namespace) : this.secrets.get(name, namespace)),
    }));
    this.nodes = new Watched<V1Node>({
      name: 'edge nodes',
      kc,
      metrics: options.clients.metrics,
      path: '/api/v1/nodes',
      labelSelector: EDGE_ROLE_LABEL,
      list: () => options.clients.rawList<V1Node>('/api/v1/nodes', EDGE_ROLE_LABEL),
      logger,
      onAdd: (n) => (options.onNode?.(n, false), this.apply(placement.upsertNode(n))),
      onUpdate: (n) => (options.onNode?.(n, false), this.apply(placement.upsertNode(n))),
      onDelete: (n) => (options.onNode?.(n, true), this.apply(placement.deleteNode(n))),
    });
    this.pods = new Watched<V1Pod>({
      name: 'pods',
      kc,
      metrics: options.clients.metrics,
      path: '/api/v1/pods',
      list: () => options.clients.rawList<V1Pod>('/api/v1/pods'),
      logger,
      onAdd: (p) => this.apply(placement.upsertPod(p)),
      onUpdate: (p) => this.apply(placement.upsertPod(p)),
      onDelete: (p) => this.apply(placement.deletePod(p)),
    });
    this.configMaps = new Watched<V1ConfigMap>({
      name: 'configmaps',
      kc,
      metrics: options.clients.metrics,
      path: '/api/v1/configmaps',
      list: () => options.clients.rawList<V1ConfigMap>('/api/v1/configmaps'),
      logger,
      onAdd: (o) => this.apply(placement.upsertReferenced('configmap', o)),
      onUpdate: (o) => this.apply(placement.upsertReferenced('configmap', o)),
      onDelete: (o) => this.apply(placement.deleteReferenced('configmap', o)),
    });
    this.secrets = new Watched<V1Secret>({
      name: 'secrets',
      kc,
      metrics: options.clients.metrics,
      path: '/api/v1/secrets',
      list: () => options.clients.rawList<V1Secret>('/api/v1/secrets'),
      logger,
      onAdd: (o) => this.apply(placement.upsertReferenced('secret', o)),
      onUpdate: (o) => this.apply(placement.upsertReferenced('secret', o)),
      onDelete: (o) => this.apply(placement.deleteReferenced('secret', o)),
    });
  }

  async start(emit: (change: SourceChange) => void): Promise<void> {
    const startedAt = performance.now();
    // Changes before the initial lists are complete are not emitted: nodes connecting later resync.
    await this.nodes.start();
    await Promise.all([this.pods.start(), this.configMaps.start(), this.secrets.start()]);
    this.emit = emit;
    this.options.logger.info(
      {
        source: 'kubernetes',
        server: this.options.clients.server,
        edgeNodes: this.placement.edgeNodeCount,
        edgePods: this.placement.edgePodCount,
        ms: Math.round(performance.now() - startedAt),
      },
      'edgecontroller watching the cluster',
    );
  }

  async stop(): Promise<void> {
    this.emit = undefined;
    await Promise.all([this.nodes.stop(), this.pods.stop(), this.configMaps.stop(), this.secrets.stop()]);
  }

  /** The node, then what its pods use, then the pods (the order a resync sends them in). */
  desired(node: string): Iterable<DesiredObject> {
    return this.placement.desired(node);
  }

  lookup(node: string, key: string): DesiredObject | undefined {
    return this.placement.lookup(node, key);
  }

  /** An edge Node as the informer has it. */
  node(name: string): V1Node | undefined {
    return this.nodes.get(name);
  }

  /** A pod as the informer has it. */
  pod(namespace: string, name: string): V1Pod | undefined {
    return this.pods.get(name, namespace);
  }

  /** The edge node a pod (`<namespace>/<name>`) is bound to, and its uid, when it is on an edge node. */
  nodeOfPod(key: string): { node: string; uid: string } | undefined {
    return this.placement.nodeOfPod(key);
  }

  isEdgeNode(name: string): boolean {
    return this.placement.isEdgeNode(name);
  }

  /** The index follows the informers from their first list; messages go out once every list is in. */
  private apply(changes: PlacementChange[]): void {
    for (const change of changes) this.emit?.(change);
  }
}
