import type { CoreV1Event, V1Node, V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../../shared/logger.js';
import { CoreError } from '../../shared/errors.js';
import { Operation } from '../../shared/message.js';
import type { ReportMessage } from '../contracts/node-messages.js';
import type { KubeClients } from '../kube/kube-client.js';
import type { TokenBucket } from '../kube/rate-limiter.js';
import { NodeKeeper, type EdgeNodeStatus } from './node-keeper.js';
import { NodeOwnership, type Owner } from './node-owner.js';
import type { NodeReports } from './object-source.js';
import { PodReports } from './pod-reports.js';

/** What the informers and the placement know now (KubeSource). */
export interface KubeCache {
  /** An edge Node. */
  node(name: string): V1Node | undefined;
  pod(namespace: string, name: string): V1Pod | undefined;
  /** The edge node a pod (`<namespace>/<name>`) is bound to, and its uid, when it is on an edge node. */
  nodeOfPod(key: string): { node: string; uid: string } | undefined;
}

export interface KubeReportsDeps {
  clients: KubeClients;
  limiter: TokenBucket;
  logger: Logger;
  cache: KubeCache;
  leaseDurationSeconds: number;
  leaseRenewIntervalMs: number;
  nodeStatusRefreshMs: number;
  /** This replica in the node owner records. */
  replicaId: string;
  /** Another replica took a node over: end this replica's session with it. */
  onNodeLost(node: string, owner: Owner): void;
}

/**
 * Edge reports into the cluster: node status and the Lease through NodeKeeper (the edge's connection is its
 * heartbeat), pod status, deletion confirmations, mirror pods and events through PodReports.
 */
export class KubeReports implements NodeReports {
  private readonly keeper: NodeKeeper;
  private readonly pods: PodReports;
  private readonly ownership: NodeOwnership;

  constructor(deps: KubeReportsDeps) {
    const { clients, limiter, cache } = deps;
    const asNode = (node: string) => clients.asNode(node);
    const ownership = (this.ownership = new NodeOwnership({
      replicaId: deps.replicaId,
      core: clients.core,
      limiter,
      logger: deps.logger,
      cachedNode: (name) => cache.node(name),
      onLost: deps.onNodeLost,
    }));
    this.pods = new PodReports({
      mayWrite: (node) => ownership.mayWrite(node),
      asNode,
      limiter,
      nodeUid: (node) => cache.node(node)?.metadata?.uid,
      nodeOfPod: (key) => cache.nodeOfPod(key),
      pod: (name, namespace) => cache.pod(namespace, name),
    });
    this.keeper = new NodeKeeper({
      core: clients.core,
      asNode,
      limiter,
      logger: deps.logger,
      cachedNode: (name) => cache.node(name),
      leaseDurationSeconds: deps.leaseDurationSeconds,
      leaseRenewIntervalMs: deps.leaseRenewIntervalMs,
      statusRefreshMs: deps.nodeStatusRefreshMs,
      ownership,
    });
  }

  /**
   * Before DeviceController writes a device status for `node`: resolves once this replica holds the node, or
   * refuses with ERR_UNAVAILABLE when another replica does, so only the owner writes. A node that never
   * registered (an edge without edged) has no owner record, and its session alone decides.
   */
  mayWriteDevice(node: string): Promise<void> {
    return this.ownership.mayWriteUnregistered(node);
  }

  /** After the informers' first lists: the keeper's sweep judges nodes by the cache. */
  start(): void {
    this.keeper.start();
  }

  stop(): void {
    this.keeper.stop();
  }

  async report(message: ReportMessage): Promise<void> {
    const {
      node,
      object: { namespace, type, name },
    } = message;
    if (type === 'nodestatus') {
      if (name !== node) throw new CoreError('ERR_FORBIDDEN', `node ${node} may not report the status of node ${name}`);
      return this.keeper.report(node, (message.content ?? {}) as EdgeNodeStatus);
    }
    const reports = this.pods;
    if (type === 'podstatus' && name !== undefined) return reports.status(node, namespace, name, message.content as { uid?: string; status?: unknown });
    if (type === 'pod' && name !== undefined && message.operation === Operation.insert)
      return reports.mirrorPod(node, namespace, name, message.content as V1Pod);
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
}
