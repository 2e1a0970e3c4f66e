import { createHash } from 'node:crypto';
import { canonicalJson } from '../../shared/canonical-json.js';
import type { CoreV1Api, V1Node, V1NodeCondition } from '@kubernetes/client-node';
import type { Logger } from '../../shared/logger.js';
import { CoreError } from '../../shared/errors.js';
import { MERGE_PATCH, STRATEGIC_MERGE_PATCH, kubeError, type NodeClients } from '../kube/kube-client.js';
import type { TokenBucket } from '../kube/rate-limiter.js';
import { kubeletLabels } from './kubelet-labels.js';
import type { NodeOwnership } from './node-owner.js';

export const EDGE_ROLE_LABEL = 'node-role.kubernetes.io/edge';
const LEASE_NAMESPACE = 'kube-node-lease';
/** A node seen not Ready this long after our last status patch gets patched again (the cache had lagged). */
const STALE_READY_MS = 5_000;

/** What edged reports about its host (content of `null/nodestatus/<node>` updates). */
export interface EdgeNodeStatus {
  addresses?: Array<{ type: string; address: string }>;
  /** The port the apiserver dials for the node's kubelet API; cloudcore relays it to the edge. */
  daemonEndpoints?: { kubeletEndpoint?: { Port?: number } };
  capacity?: Record<string, string>;
  allocatable?: Record<string, string>;
  nodeInfo?: Record<string, string>;
  labels?: Record<string, string>;
  /** Images present on the node (kubelet's status.images). */
  images?: Array<{ names: string[]; sizeBytes: number }>;
  /** The node's container runtime; a runtime that is down makes the node not Ready (kubelet's rule). */
  runtime?: { ready: boolean; message?: string };
}

/** The Ready status the edge's report asks for. */
const readyOf = (status: EdgeNodeStatus): 'True' | 'False' => (status.runtime?.ready === false ? 'False' : 'True');

export interface NodeKeeperOptions {
  /** cloudcore's own identity: registering the Node and giving it the edge role. */
  core: CoreV1Api;
  /** The node's kubelet identity: its status and its Lease (the edge's connection is its heartbeat). */
  asNode(node: string): NodeClients;
  limiter: TokenBucket;
  logger: Logger;
  /** The Node as the informer last saw it (edge-labelled nodes). */
  cachedNode(name: string): V1Node | undefined;
  leaseDurationSeconds: number;
  leaseRenewIntervalMs: number;
  statusRefreshMs: number;
  /** Which nodes this replica acts for: nothing is written for a node another replica took over. */
  ownership: NodeOwnership;
}

/**
 * Registers edge nodes and keeps them alive in the cluster. Registration (with the edge role label, which no
 * kubelet may set) is cloudcore's act; status and Lease are written as the node, so NodeRestriction judges
 * them as it would a kubelet's. The connection is the heartbeat: while an edge
 * is connected the cloud renews its Lease (one sweep for all nodes, so an idle edge sends nothing extra;
 * the first renewal follows the edge's node status report on connect);
 * when the edge goes, renewals stop and kube-controller-manager marks the node NotReady. Node status is
 * patched only when what the edge reports changes, plus a slow refresh.
 */
export class NodeKeeper {
  private readonly connectedSince = new Map<string, number>();
  private readonly lastRenewMs = new Map<string, number>();
  private readonly lastStatus = new Map<string, { digest: string; atMs: number }>();
  /** The last status each connected edge reported, for refreshes. */
  private readonly reported = new Map<string, EdgeNodeStatus>();
  private timer: NodeJS.Timeout | undefined;
  private sweeping = false;

  constructor(private readonly options: NodeKeeperOptions) {}

  start(): void {
    this.timer = setInterval(() => void this.sweep(), 1_000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  connected(node: string): void {
    this.connectedSince.set(node, Date.now());
    this.lastRenewMs.delete(node);
    this.options.ownership.opened(node);
    // A registered node is claimed at once; a new one once its first report has registered it.
    if (this.options.cachedNode(node)) {
      this.options.ownership.claim(node).catch((err: unknown) => this.options.logger.warn({ err, nodeId: node }, 'claiming the node failed'));
    }
  }

  disconnected(node: string): void {
    this.connectedSince.delete(node);
    this.lastRenewMs.delete(node);
    this.lastStatus.delete(node);
    this.reported.delete(node);
    this.options.ownership.release(node);
  }

  /** Registers the node if needed, writes its first Lease, and patches its status when it changed. */
  async report(node: string, status: EdgeNodeStatus): Promise<void> {
    this.reported.set(node, status);
    const existing = await this.ensureNode(node, status);
    await this.options.ownership.mayWrite(node);
    // The first Lease of a connection is written here, right after the Node exists (so it gets its owner
    // reference, as a kubelet's would); the sweep renews it from then on.
    if (this.connectedSince.has(node) && !this.lastRenewMs.has(node)) await this.renewLease(node);
    await this.patchStatus(node, status, existing);
  }

  /**
   * Patches the node status unless the Node already says the same, Ready, recently. Without a record of
   * our own (a restarted cloudcore) the Node in the informer cache is the record: a restart does not
   * rewrite every node's status.
   */
  private async patchStatus(node: string, status: EdgeNodeStatus, existing: V1Node): Promise<void> {
    const ready = existing.status?.conditions?.find((c) => c.type === 'Ready');
    const digest = statusDigest(status);
    const now = Date.now();
    const last = this.lastStatus.get(node) ?? { digest: statusDigest(existing.status ?? {}), atMs: timeOf(ready?.lastHeartbeatTime) };
    const wanted = readyOf(status);
    if (last.digest === digest && ready?.status === wanted && now - last.atMs < this.options.statusRefreshMs) {
      this.lastStatus.set(node, last);
      return;
    }
    const nowIso = new Date(now).toISOString();
    const readyCondition: V1NodeCondition = {
      type: 'Ready',
      status: wanted,
      reason: wanted === 'True' ? 'EdgeReady' : 'KubeletNotReady',
      message: wanted === 'True' ? 'edgecore is connected to cloudcore' : `container runtime is down: ${status.runtime?.message ?? 'not answering'}`,
      lastHeartbeatTime: nowIso as unknown as Date,
      lastTransitionTime: (ready?.status === wanted ? ready.lastTransitionTime : nowIso) as Date,
    };
    await this.write(() =>
      this.options.asNode(node).core.patchNodeStatus(
        {
          name: node,
          body: {
            status: {
              addresses: status.addresses,
              ...(status.daemonEndpoints ? { daemonEndpoints: status.daemonEndpoints } : {}),
              capacity: status.capacity,
              allocatable: status.allocatable,
              nodeInfo: status.nodeInfo,
              ...(status.images ? { images: status.images } : {}),
              conditions: [readyCondition],
            },
          },
        },
        STRATEGIC_MERGE_PATCH,
      ),
    );
    this.lastStatus.set(node, { digest, atMs: now });
  }

  private async ensureNode(node: string, status: EdgeNodeStatus): Promise<V1Node> {
    const cached = this.options.cachedNode(node);
    if (cached) return cached;
    let existing: V1Node | undefined;
    try {
      existing = await this.write(() => this.options.core.readNode({ name: node }));
    } catch (err) {
      if (!(err instanceof CoreError && err.code === 'ERR_NOT_FOUND')) throw err;
    }
    const labels = {
      ...this.ownLabels(node, status.labels),
      [EDGE_ROLE_LABEL]: '',
      'kubernetes.io/hostname': node,
      'kubernetes.io/os': status.nodeInfo?.operatingSystem ?? 'linux',
      'kubernetes.io/arch': status.nodeInfo?.architecture ?? 'amd64',
    };
    if (existing) {
      if (existing.metadata?.labels?.[EDGE_ROLE_LABEL] === undefined) {
        // A Node created beforehand (by an operator): it becomes an edge node now that its edge joined.
        existing = await this.write(() => this.options.core.patchNode({ name: node, body: { metadata: { labels: { [EDGE_ROLE_LABEL]: '' } } } }, MERGE_PATCH));
      }
      return existing;
    }
    const created = await this.write(() => this.options.core.createNode({ body: { metadata: { name: node, labels }, spec: {} } }));
    this.options.logger.info({ nodeId: node }, 'registered edge node');
    return created;
  }

  /**
   * The labels the edge asks for, as NodeRestriction would let a kubelet set them: the Node is created with
   * cloudcore's credentials, which the cluster does not restrict, so cloudcore applies the kubelet's rule.
   * The rest of the report still lands.
   */
  private ownLabels(node: string, labels: Record<string, string> | undefined): Record<string, string> {
    const { allowed, refused } = kubeletLabels(labels);
    if (refused.length > 0) this.options.logger.warn({ nodeId: node, labels: refused }, 'node labels a kubelet may not set dropped from the node report');
    return allowed;
  }

  /**
   * Renews the Lease of every connected node that is due, and patches again the status of a connected node
   * whose last patch is older than the refresh interval or that the cluster sees as not Ready (the node
   * controller marked it while the edge was away, or a restarted cloudcore trusted a stale cache).
   */
  private async sweep(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      this.options.ownership.check();
      const now = Date.now();
      const work: Array<Promise<void>> = [];
      for (const node of this.connectedSince.keys()) {
        if (!this.options.ownership.owns(node)) continue;
        const renewed = this.lastRenewMs.get(node);
        if (renewed !== undefined && now - renewed >= this.options.leaseRenewIntervalMs) {
          work.push(this.renewLease(node).catch((err: unknown) => this.options.logger.warn({ err, nodeId: node }, 'lease renewal failed')));
        }
        const status = this.reported.get(node);
        const last = this.lastStatus.get(node);
        const cached = this.options.cachedNode(node);
        if (!status || !last || !cached) continue;
        // The cluster sees another Ready than the edge reported (the node controller marked it while the edge
        // was away, or a restarted cloudcore trusted a stale cache): patch again, once the cache had time.
        const disagrees = cached.status?.conditions?.find((c) => c.type === 'Ready')?.status !== readyOf(status);
        if (now - last.atMs >= this.options.statusRefreshMs || (disagrees && now - last.atMs >= STALE_READY_MS)) {
          this.lastStatus.delete(node);
          work.push(
            this.patchStatus(node, status, cached).catch((err: unknown) => this.options.logger.warn({ err, nodeId: node }, 'node status refresh failed')),
          );
        }
      }
      await Promise.all(work);
    } finally {
      this.sweeping = false;
    }
  }

  private async renewLease(node: string): Promise<void> {
    if (!this.connectedSince.has(node) || !this.options.ownership.owns(node)) return;
    const renewTime = microTime(new Date());
    const spec = { holderIdentity: node, leaseDurationSeconds: this.options.leaseDurationSeconds, renewTime };
    const { coordination } = this.options.asNode(node);
    try {
      await this.write(() => coordination.patchNamespacedLease({ name: node, namespace: LEASE_NAMESPACE, body: { spec } }, MERGE_PATCH));
    } catch (err) {
      if (!(err instanceof CoreError && err.code === 'ERR_NOT_FOUND')) throw err;
      const owner = this.options.cachedNode(node)?.metadata;
      await this.write(() =>
        coordination.createNamespacedLease({
          namespace: LEASE_NAMESPACE,
          body: {
            metadata: {
              name: node,
              namespace: LEASE_NAMESPACE,
              ...(owner?.uid ? { ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: node, uid: owner.uid }] } : {}),
            },
            spec: spec as never,
          },
        }),
      );
    }
    this.lastRenewMs.set(node, Date.now());
  }

  /** One API write under the client QPS limit; failures become errors with stable codes. */
  private async write<T>(call: () => Promise<T>): Promise<T> {
    await this.options.limiter.acquire();
    try {
      return await call();
    } catch (err) {
      throw kubeError(err);
    }
  }
}

/** MicroTime as the API server wants it: RFC 3339 with microseconds. */
function microTime(d: Date): Date {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z') as unknown as Date;
}

/** Digest of what an edge reports (and a Node status holds): key order does not matter. */
function statusDigest(status: {
  addresses?: unknown;
  daemonEndpoints?: unknown;
  capacity?: unknown;
  allocatable?: unknown;
  nodeInfo?: unknown;
  images?: unknown;
}): string {
  const { addresses = [], capacity = {}, allocatable = {}, nodeInfo = {}, images = [] } = status;
  // Only the port counts: the wire spells it `Port`, client-node's readNode gives `port`, and an unset one reads 0.
  const endpoint = (status.daemonEndpoints as { kubeletEndpoint?: { Port?: number; port?: number } } | undefined)?.kubeletEndpoint;
  const kubeletPort = endpoint?.Port ?? endpoint?.port ?? 0;
  return createHash('sha256')
    .update(canonicalJson([addresses, kubeletPort, capacity, allocatable, nodeInfo, images]))
    .digest('hex');
}

/** Epoch ms of an API timestamp (string or Date); 0 when absent. */
function timeOf(value: unknown): number {
  const ms = value ? new Date(value as string).getTime() : 0;
  return Number.isNaN(ms) ? 0 : ms;
}
