import { encodeMessage } from '../../shared/channel/codec.js';
import type { SendQueue } from '../../shared/channel/reliable-sender.js';
import { compareResourceVersions, type Message } from '../../shared/message.js';

export interface ObjectVersion {
  uid: string;
  resourceVersion: string;
  deleted: boolean;
}

export interface OutboxItem {
  /** Edge resource `<namespace>/<type>/<name>`; empty for markers. */
  key: string;
  /** Dropped once the message is on the wire: only identity and version wait for the ACK. */
  message: Message | undefined;
  /** Absent for markers (the resync's `synced`), which are never coalesced or compared. */
  version?: ObjectVersion;
  enqueuedAtMs: number;
}

/**
 * What one node still has to receive. Only the newest version of each object waits (coalescing by key, the
 * waiting entry keeps its place in line), and an entry leaves only when the edge ACKs the message that
 * carried it (the session's ReliableSender tracks the wire; this tracks versions). `known` is the edge's
 * store as far as the cloud can tell: its inventory plus everything ACKed since, so stale or redundant
 * versions are never sent.
 */
export class NodeOutbox implements SendQueue<OutboxItem> {
  // Created on demand and dropped when empty: most of 10,000 connected nodes have nothing waiting.
  private pending: Map<string, OutboxItem> | undefined;
  private inflightByKey: Map<string, OutboxItem> | undefined;
  private markerSeq = 0;
  readonly known = new Map<string, { uid: string; resourceVersion: string }>();

  /**
   * Queues the item unless the edge already has, or will get, that version or a newer one. A delete of an
   * object the edge is not known to hold is dropped, unless `keepUnknownDeletes` (during a resync, when a
   * diff computed earlier may still bring that object).
   */
  offer(item: OutboxItem, keepUnknownDeletes = false): boolean {
    if (!item.version) {
      (this.pending ??= new Map()).set(`\0marker${++this.markerSeq}`, item);
      return true;
    }
    const latest = this.pending?.get(item.key)?.version ?? this.inflightByKey?.get(item.key)?.version ?? this.knownVersion(item.key);
    if (latest === undefined ? item.version.deleted && !keepUnknownDeletes : !isNewer(item.version, latest)) return false;
    (this.pending ??= new Map()).set(item.key, item);
    return true;
  }

  /** The next item to send, in order of first arrival. */
  next(): OutboxItem | undefined {
    if (!this.pending) return undefined;
    for (const [key, item] of this.pending) {
      this.pending.delete(key);
      if (this.pending.size === 0) this.pending = undefined;
      return item;
    }
    return undefined;
  }

  bytes(item: OutboxItem): Uint8Array {
    return encodeMessage(item.message!);
  }

  sent(item: OutboxItem): void {
    item.message = undefined;
    if (item.version) (this.inflightByKey ??= new Map()).set(item.key, item);
  }

  /** The edge committed these items: what it holds now is known. */
  acked(items: readonly OutboxItem[]): void {
    for (const item of items) {
      if (!item.version) continue;
      if (this.inflightByKey?.get(item.key) === item) this.inflightByKey.delete(item.key);
      if (item.version.deleted) this.known.delete(item.key);
      else this.known.set(item.key, { uid: item.version.uid, resourceVersion: item.version.resourceVersion });
    }
    if (this.inflightByKey?.size === 0) this.inflightByKey = undefined;
  }

  /** performance.now() when the longest-waiting entry was queued; undefined when nothing waits. */
  oldestEnqueuedAtMs(): number | undefined {
    let oldest: number | undefined;
    for (const map of [this.pending, this.inflightByKey]) {
      if (!map) continue;
      // Insertion order is arrival order (a coalesced entry keeps its place), so the first entry is the oldest.
      for (const item of map.values()) {
        if (oldest === undefined || item.enqueuedAtMs < oldest) oldest = item.enqueuedAtMs;
        break;
      }
    }
    return oldest;
  }

  get pendingCount(): number {
    return this.pending?.size ?? 0;
  }

  get inflightKeys(): number {
    return this.inflightByKey?.size ?? 0;
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
