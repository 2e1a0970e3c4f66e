export interface StreamSessionsOptions {
  /**
   * Exec, attach and port-forward sessions open at once on this node; one more is refused with 429. Default 64,
   * the per-node tunnel limit of docs/kubeedge-stream-facts.md §8.1. The kubelet has no such limit of its own
   * (containerd caps unused one-time URLs at 1000), but an edge's CPU, memory and uplink are small.
   */
  maxSessions?: number;
}

export const DEFAULT_MAX_STREAM_SESSIONS = 64;

/** Gives the slot back; idempotent. */
export type ReleaseSession = () => void;

/**
 * The node's open streaming sessions: a counter with a ceiling, and the way to end them all when edgecore
 * stops (each registered session can be destroyed, so no socket outlives its owner).
 */
export class StreamSessions {
  readonly maxSessions: number;
  private readonly open = new Set<() => void>();

  constructor(options: StreamSessionsOptions = {}) {
    this.maxSessions = options.maxSessions ?? DEFAULT_MAX_STREAM_SESSIONS;
  }

  get active(): number {
    return this.open.size;
  }

  /** A slot for a session that `destroy` ends at once, or undefined when every slot is taken. */
  acquire(destroy: () => void): ReleaseSession | undefined {
    if (this.open.size >= this.maxSessions) return undefined;
    // A wrapper per session: two sessions may share a destroy function, and each must hold its own slot.
    const entry = (): void => destroy();
    this.open.add(entry);
    return () => void this.open.delete(entry);
  }

  /** Ends every open session (their sockets are destroyed; each releases its slot as it closes). */
  destroyAll(): void {
    for (const destroy of [...this.open]) destroy();
  }
}
