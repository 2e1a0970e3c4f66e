import type { CoreV1Api, V1Node } from '@kubernetes/client-node';
import { CoreError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import { MERGE_PATCH, apiStatus, kubeError } from '../kube/kube-client.js';
import type { TokenBucket } from '../kube/rate-limiter.js';

/**
 * Which replica acts for a node, and since when: `<replicaId>/<epoch>`. KubeEdge records the owner as
 * annotation `cloudcore: <ip>`, last writer wins and never read back; here the epoch only grows, and every
 * replica sees it change through the edge-node informer it already has.
 */
export const OWNER_ANNOTATION = 'kubeedge-ts.io/owner';
const MAX_ATTEMPTS = 5;

export interface Owner {
  replica: string;
  epoch: number;
}

export function parseOwner(value: string | undefined): Owner | undefined {
  const m = value === undefined ? null : /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?)\/(\d{1,15})$/.exec(value);
  return m ? { replica: m[1]!, epoch: Number(m[3]) } : undefined;
}

export interface NodeOwnershipDeps {
  replicaId: string;
  /** cloudcore's own identity: the owner annotation is cloudcore's record, not the node's. */
  core: CoreV1Api;
  limiter: TokenBucket;
  logger: Logger;
  cachedNode(name: string): V1Node | undefined;
  /** Another replica took the node over: its session here must end, and nothing more is written for it. */
  onLost(node: string, owner: Owner): void;
}

/**
 * One owner per node across replicas (issue 12). A replica claims a node when an edge's session opens on it,
 * by writing epoch + 1 with the Node's resourceVersion as precondition; a replica that sees a higher epoch
 * of another replica in its informer gives the node up and closes its session, which a half-open socket
 * would otherwise keep alive until its timeout. Writes for a node wait for its claim, and are refused as
 * unavailable (the edge sends them again, to the owner) once it is lost.
 */
export class NodeOwnership {
  private readonly held = new Map<string, number>();
  private readonly claims = new Map<string, Promise<void>>();
  /** Nodes with an open session on this replica: only those may be claimed. */
  private readonly sessions = new Set<string>();
  /** Nodes given up to another replica since their session here opened: refused until a new one opens. */
  private readonly lost = new Set<string>();

  constructor(private readonly deps: NodeOwnershipDeps) {}

  /** An edge's session opened here: the node may be claimed again, even if it was lost before. */
  opened(node: string): void {
    this.sessions.add(node);
    this.lost.delete(node);
  }

  /** Claims the node for this replica, once per connection; resolves when it is ours. */
  claim(node: string): Promise<void> {
    if (this.held.has(node)) return Promise.resolve();
    let pending = this.claims.get(node);
    if (!pending) {
      pending = this.take(node).finally(() => this.claims.delete(node));
      this.claims.set(node, pending);
    }
    return pending;
  }

  /** The edge's connection here ended: the claim is no longer this replica's business. */
  release(node: string): void {
    this.held.delete(node);
    this.sessions.delete(node);
  }

  owns(node: string): boolean {
    return this.held.has(node);
  }

  /**
   * Before a write for `node`: its claim, or ERR_UNAVAILABLE when another replica owns it. A write that
   * arrives after the node was lost, or after its session here closed (a report still queued), never claims
   * the node back: that would take it from the replica holding the edge's newest session.
   */
  async mayWrite(node: string): Promise<void> {
    if (this.lost.has(node)) throw new CoreError('ERR_UNAVAILABLE', `node ${node} is owned by another cloudcore replica`);
    if (!this.sessions.has(node)) throw new CoreError('ERR_UNAVAILABLE', `node ${node} has no session on this cloudcore replica`);
    await this.claim(node);
    if (!this.held.has(node)) throw new CoreError('ERR_UNAVAILABLE', `node ${node} is owned by another cloudcore replica`);
  }

  /**
   * mayWrite for writes that do not need the Node object (device status): an edge that never registered a
   * Node (edged off, devices only) has no record to claim, so its session alone decides.
   */
  async mayWriteUnregistered(node: string): Promise<void> {
    if (this.sessions.has(node) && !this.lost.has(node) && !this.deps.cachedNode(node)) return;
    await this.mayWrite(node);
  }

  /** Gives up every node whose cached owner is another replica at a higher epoch. Run by NodeKeeper's sweep. */
  check(): void {
    for (const [node, epoch] of this.held) {
      const owner = parseOwner(this.deps.cachedNode(node)?.metadata?.annotations?.[OWNER_ANNOTATION]);
      if (!owner || owner.replica === this.deps.replicaId || owner.epoch <= epoch) continue;
      this.held.delete(node);
      this.lost.add(node);
      this.deps.logger.warn(
        { nodeId: node, owner: `${owner.replica}/${owner.epoch}`, ourEpoch: epoch },
        'node taken over by another replica; closing its session here',
      );
      this.deps.onLost(node, owner);
    }
  }

  private async take(node: string): Promise<void> {
    const self = this.deps.replicaId;
    // Already ours in the cache: nothing changed hands since (a reconnect to the same replica writes nothing).
    const cached = parseOwner(this.deps.cachedNode(node)?.metadata?.annotations?.[OWNER_ANNOTATION]);
    if (cached?.replica === self) {
      this.hold(node, cached.epoch);
      return;
    }
    for (let attempt = 1; ; attempt++) {
      await this.deps.limiter.acquire();
      let current: V1Node;
      try {
        current = await this.deps.core.readNode({ name: node });
      } catch (err) {
        throw kubeError(err);
      }
      const owner = parseOwner(current.metadata?.annotations?.[OWNER_ANNOTATION]);
      if (owner?.replica === self) {
        this.hold(node, owner.epoch);
        return;
      }
      const epoch = (owner?.epoch ?? 0) + 1;
      await this.deps.limiter.acquire();
      try {
        await this.deps.core.patchNode(
          {
            name: node,
            body: { metadata: { resourceVersion: current.metadata?.resourceVersion, annotations: { [OWNER_ANNOTATION]: `${self}/${epoch}` } } },
          },
          MERGE_PATCH,
        );
      } catch (err) {
        // The Node changed between the read and the write (its status, or another replica's claim): read again.
        if (apiStatus(err) === 409 && attempt < MAX_ATTEMPTS) continue;
        throw kubeError(err);
      }
      this.hold(node, epoch);
      if (owner) this.deps.logger.info({ nodeId: node, from: `${owner.replica}/${owner.epoch}`, epoch }, 'node taken over from another replica');
      return;
    }
  }

  /** A claim that completes after the session closed holds nothing: the next session claims again. */
  private hold(node: string, epoch: number): void {
    if (this.sessions.has(node)) this.held.set(node, epoch);
  }
}
