import { createHash } from 'node:crypto';
import type { CoordinationV1Api, CoreV1Api, V1Node, V1NodeCondition } from '@kubernetes/client-node';
import type { Logger } from '../../shared/logger.js';
import { EdgeError } from '../../shared/errors.js';
import { MERGE_PATCH, STRATEGIC_MERGE_PATCH, apiStatus } from '../kube/kube-client.js';
import type { TokenBucket } from '../kube/rate-limiter.js';

export const EDGE_ROLE_LABEL = 'node-role.kubernetes.io/edge';
const LEASE_NAMESPACE = 'kube-node-lease';

/** What edged reports about its host (content of `null/nodestatus/<node>` updates). */
export interface EdgeNodeStatus {
  addresses?: Array<{ type: string; address: string }>;
  capacity?: Record<string, string>;
  allocatable?: Record<string, string>;
  nodeInfo?: Record<string, string>;
  labels?: Record<string, string>;
}

export interface NodeKeeperOptions {
  core: CoreV1Api;
  coordination: CoordinationV1Api;
  limiter: TokenBucket;
  logger: Logger;
  /** The Node as the informer last saw it (edge-labelled nodes). */
  cachedNode(name: string): V1Node | undefined;
  leaseDurationSeconds: number;
  leaseRenewIntervalMs: number;
  statusRefreshMs: number;
}

/**
 * Registers edge nodes and keeps them alive in the cluster. The connection is the heartbeat: while an edge
 * is connected the cloud renews its Lease (one sweep for all nodes, so an idle edge sends nothing extra;
 * the first renewal follows the edge's node status report on connect);
 * when the edge goes, renewals stop and kube-controller-manager marks the node NotReady. Node status is
 * patched only when what the edge reports changes, plus a slow refresh.
 */
export class NodeKeeper {
  private readonly connectedSince = new Map<string, number>();
  private readonly lastRenewMs = new Map<string, number>();
  private readonly lastStatus = new Map<string, { digest: string; atMs: number }>();
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
    // The controller may have marked the node Unknown meanwhile: the next report patches in full.
    this.lastStatus.delete(node);
    this.lastRenewMs.delete(node);
  }

  disconnected(node: string): void {
    this.connectedSince.delete(node);
    this.lastRenewMs.delete(node);
  }

  /** Registers the node if needed and patches its status when it changed. */
  async report(node: string, status: EdgeNodeStatus): Promise<void> {
    const existing = await this.ensureNode(node, status);
    // The first Lease of a connection is written here, right after the Node exists (so it gets its owner
    // reference, as a kubelet's would); the sweep renews it from then on.
    if (this.connectedSince.has(node) && !this.lastRenewMs.has(node)) await this.renewLease(node);
    const ready = existing.status?.conditions?.find((c) => c.type === 'Ready');
    const digest = createHash('sha256').update(JSON.stringify([status.addresses, status.capacity, status.allocatable, status.nodeInfo])).digest('hex');
    const last = this.lastStatus.get(node);
    const now = Date.now();
    if (last && last.digest === digest && ready?.status === 'True' && now - last.atMs < this.options.statusRefreshMs) return;
    const nowIso = new Date(now).toISOString();
    const readyCondition: V1NodeCondition = {
      type: 'Ready',
      status: 'True',
      reason: 'EdgeReady',
      message: 'edgecore is connected to cloudcore',
      lastHeartbeatTime: nowIso as unknown as Date,
      lastTransitionTime: (ready?.status === 'True' ? ready.lastTransitionTime : nowIso) as Date,
    };
    await this.write(() =>
      this.options.core.patchNodeStatus(
        { name: node, body: { status: { addresses: status.addresses, capacity: status.capacity, allocatable: status.allocatable, nodeInfo: status.nodeInfo, conditions: [readyCondition] } } },
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
      if (!(err instanceof EdgeError && err.code === 'ERR_NOT_FOUND')) throw err;
    }
    const labels = { ...status.labels, [EDGE_ROLE_LABEL]: '', 'kubernetes.io/hostname': node, 'kubernetes.io/os': status.nodeInfo?.operatingSystem ?? 'linux', 'kubernetes.io/arch': status.nodeInfo?.architecture ?? 'amd64' };
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

  /** Renews the Lease of every connected node that is due. */
  private async sweep(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      const now = Date.now();
      const due = [...this.connectedSince.keys()].filter((n) => {
        const last = this.lastRenewMs.get(n);
        return last !== undefined && now - last >= this.options.leaseRenewIntervalMs;
      });
      await Promise.all(due.map((node) => this.renewLease(node).catch((err: unknown) => this.options.logger.warn({ err, nodeId: node }, 'lease renewal failed'))));
    } finally {
      this.sweeping = false;
    }
  }

  private async renewLease(node: string): Promise<void> {
    if (!this.connectedSince.has(node)) return;
    const renewTime = microTime(new Date());
    const spec = { holderIdentity: node, leaseDurationSeconds: this.options.leaseDurationSeconds, renewTime };
    try {
      await this.write(() => this.options.coordination.patchNamespacedLease({ name: node, namespace: LEASE_NAMESPACE, body: { spec } }, MERGE_PATCH));
    } catch (err) {
      if (!(err instanceof EdgeError && err.code === 'ERR_NOT_FOUND')) throw err;
      const owner = this.options.cachedNode(node)?.metadata;
      await this.write(() =>
        this.options.coordination.createNamespacedLease({
          namespace: LEASE_NAMESPACE,
          body: {
            metadata: { name: node, namespace: LEASE_NAMESPACE, ...(owner?.uid ? { ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: node, uid: owner.uid }] } : {}) },
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

/** Maps an API failure to a stable code: 404 not found, 403 forbidden, 5xx/429/transport unavailable. */
export function kubeError(err: unknown): EdgeError {
  const status = apiStatus(err);
  const body = (err as { body?: unknown }).body;
  const detail = typeof body === 'string' ? body.slice(0, 300) : (err as Error).message;
  if (status === 404) return new EdgeError('ERR_NOT_FOUND', detail, { cause: err });
  if (status === 403) return new EdgeError('ERR_FORBIDDEN', detail, { cause: err });
  if (status === undefined || status === 429 || status >= 500) return new EdgeError('ERR_UNAVAILABLE', `API server unavailable (${status ?? 'no response'}): ${detail}`, { cause: err });
  return new EdgeError('ERR_INVALID_MESSAGE', `API server refused (${status}): ${detail}`, { cause: err });
}

/** MicroTime as the API server wants it: RFC 3339 with microseconds. */
function microTime(d: Date): Date {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z') as unknown as Date;
}
