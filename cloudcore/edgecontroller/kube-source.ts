import type { CoreV1Event, V1ConfigMap, V1Node, V1Pod, V1Secret } from '@kubernetes/client-node';
import type { Logger } from '../../shared/logger.js';
import { CoreError } from '../../shared/errors.js';
import { Operation } from '../../shared/message.js';
import type { ReportMessage } from '../contracts/node-messages.js';
import type { KubeClients } from '../kube/kube-client.js';
import type { TokenBucket } from '../kube/rate-limiter.js';
import { Watched } from '../kube/watched.js';
import { EDGE_ROLE_LABEL, NodeKeeper, type EdgeNodeStatus } from './node-keeper.js';
import type { DesiredObject, ObjectSource, SourceChange } from './object-source.js';
import { PodAutonomyWebhook } from './pod-autonomy.js';
import { PodPlacement, type PlacementChange } from './pod-placement.js';
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
  private readonly keeper: NodeKeeper;
  private readonly placement: PodPlacement;
  private emit: ((change: SourceChange) => void) | undefined;
  private webhook: PodAutonomyWebhook | undefined;
  private readonly podReports: PodReports;

  constructor(private readonly options: KubeSourceOptions) {
    const { kc, core } = options.clients;
    const logger = options.logger;
    const placement = (this.placement = new PodPlacement({
      node: (name) => this.nodes.get(name),
      pod: (namespace, name) => this.pods.get(name, namespace),
      referenced: (kind, namespace, name) => (kind === 'configmap' ? this.configMaps.get(name, namespace) : this.secrets.get(name, namespace)),
    }));
    this.nodes = new Watched<V1Node>({
      name: 'edge nodes',
      kc,
      path: '/api/v1/nodes',
      labelSelector: EDGE_ROLE_LABEL,
      list: () => options.clients.rawList<V1Node>('/api/v1/nodes', EDGE_ROLE_LABEL),
      logger,
      onAdd: (n) => this.apply(placement.upsertNode(n)),
      onUpdate: (n) => this.apply(placement.upsertNode(n)),
      onDelete: (n) => this.apply(placement.deleteNode(n)),
    });
    this.pods = new Watched<V1Pod>({ name: 'pods', kc, path: '/api/v1/pods', list: () => options.clients.rawList<V1Pod>('/api/v1/pods'), logger, onAdd: (p) => this.apply(placement.upsertPod(p)), onUpdate: (p) => this.apply(placement.upsertPod(p)), onDelete: (p) => this.apply(placement.deletePod(p)) });
    this.configMaps = new Watched<V1ConfigMap>({ name: 'configmaps', kc, path: '/api/v1/configmaps', list: () => options.clients.rawList<V1ConfigMap>('/api/v1/configmaps'), logger, onAdd: (o) => this.apply(placement.upsertReferenced('configmap', o)), onUpdate: (o) => this.apply(placement.upsertReferenced('configmap', o)), onDelete: (o) => this.apply(placement.deleteReferenced('configmap', o)) });
    this.secrets = new Watched<V1Secret>({ name: 'secrets', kc, path: '/api/v1/secrets', list: () => options.clients.rawList<V1Secret>('/api/v1/secrets'), logger, onAdd: (o) => this.apply(placement.upsertReferenced('secret', o)), onUpdate: (o) => this.apply(placement.upsertReferenced('secret', o)), onDelete: (o) => this.apply(placement.deleteReferenced('secret', o)) });
    const asNode = (node: string) => options.clients.asNode(node);
    this.podReports = new PodReports({ asNode, limiter: options.limiter, nodeUid: (node) => this.nodes.get(node)?.metadata?.uid, nodeOfPod: (key) => placement.nodeOfPod(key), pod: (name, namespace) => this.pods.get(name, namespace) });
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
      this.webhook = new PodAutonomyWebhook({ ca: await autonomy.caSource.obtain(), host: autonomy.host, address: autonomy.address, port: autonomy.port, admission: this.options.clients.admission, isEdgeNode: (n) => this.placement.isEdgeNode(n), logger: this.options.logger });
      await this.webhook.start();
    }
    this.options.logger.info({ source: 'kubernetes', server: this.options.clients.server, edgeNodes: this.placement.edgeNodeCount, edgePods: this.placement.edgePodCount, ms: Math.round(performance.now() - startedAt) }, 'edgecontroller watching the cluster');
  }

  async stop(): Promise<void> {
    this.emit = undefined;
    this.keeper.stop();
    await this.webhook?.stop();
    await Promise.all([this.nodes.stop(), this.pods.stop(), this.configMaps.stop(), this.secrets.stop()]);
  }

  /** The node, then what its pods use, then the pods (the order a resync sends them in). */
  desired(node: string): Iterable<DesiredObject> {
    return this.placement.desired(node);
  }

  lookup(node: string, key: string): DesiredObject | undefined {
    return this.placement.lookup(node, key);
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

  /** The index follows the informers from their first list; messages go out once every list is in. */
  private apply(changes: PlacementChange[]): void {
    for (const change of changes) this.emit?.(change);
  }
}
