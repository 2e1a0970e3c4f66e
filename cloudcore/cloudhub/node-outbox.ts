import { compareResourceVersions, type Message } from '../../shared/message.js';

export interface ObjectVersion {
  uid: string;
  resourceVersion: string;
  deleted: boolean;
}

export interface OutboxItem {
  /** Edge resource `<namespace>/<type>/<name>`; empty for markers. */
  key: string;
  message: Message;
  /** Absent for markers (the resync's `synced`), which are never coalesced or compared. */
  version?: ObjectVersion;
  enqueuedAtMs: number;
}

/**
 * What one node still has to receive. Only the newest version of each object waits (coalescing by key, the
 * waiting entry keeps its place in line), and an entry leaves only when the edge ACKs the message that
 * carried it. `known` is the edge's store as far as the cloud can tell: its inventory plus everything
 * ACKed since, so stale or redundant versions are never sent.
 */
export class NodeOutbox {
  private readonly pending = new Map<string, OutboxItem>();
  private readonly inflight = new Map<number, OutboxItem>();
  private readonly inflightByKey = new Map<string, OutboxItem>();
  private markerSeq = 0;
  readonly known = new Map<string, { uid: string; resourceVersion: string }>();

  /** Queues the item unless the edge already has, or will get, that version or a newer one. */
  offer(item: OutboxItem): boolean {
    if (!item.version) {
      this.pending.set(`\0marker${++this.markerSeq}`, item);
      return true;
    }
    const latest = this.pending.get(item.key)?.version ?? this.inflightByKey.get(item.key)?.version ?? this.knownVersion(item.key);
    if (latest === undefined ? item.version.deleted : !isNewer(item.version, latest)) return false;
    this.pending.set(item.key, item);
    return true;
  }

  /** The next item to send, in order of first arrival. */
  take(): OutboxItem | undefined {
    for (const [key, item] of this.pending) {
      this.pending.delete(key);
      return item;
    }
    return undefined;
  }

  sent(seq: number, item: OutboxItem): void {
    this.inflight.set(seq, item);
    if (item.version) this.inflightByKey.set(item.key, item);
  }

  /** The edge committed every message up to `seq`; returns what left the outbox. */
  acked(seq: number): OutboxItem[] {
    const done: OutboxItem[] = [];
    // Map iteration follows insertion, and seqs are inserted in increasing order.
    for (const [s, item] of this.inflight) {
      if (s > seq) break;
      this.inflight.delete(s);
      done.push(item);
      if (!item.version) continue;
      if (this.inflightByKey.get(item.key) === item) this.inflightByKey.delete(item.key);
      if (item.version.deleted) this.known.delete(item.key);
      else this.known.set(item.key, { uid: item.version.uid, resourceVersion: item.version.resourceVersion });
    }
    return done;
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  get inflightCount(): number {
    return this.inflight.size;
  }

  private knownVersion(key: string): ObjectVersion | undefined {
    const k = this.known.get(key);
    return k && { uid: k.uid, resourceVersion: k.resourceVersion, deleted: false };
  }
}

/**
 * Whether `a` supersedes `b`. resourceVersions order objects across recreations too (they come from one etcd
 * revision counter); when they cannot be ordered, the later arrival wins. At equal versions a delete wins.
 */
export function isNewer(a: ObjectVersion, b: ObjectVersion): boolean {
  const cmp = compareResourceVersions(a.resourceVersion, b.resourceVersion);
  if (Number.isNaN(cmp)) return a.uid !== b.uid || a.resourceVersion !== b.resourceVersion || a.deleted !== b.deleted;
  if (cmp !== 0) return cmp > 0;
  return a.deleted && !b.deleted;
}
