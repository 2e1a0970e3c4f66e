import type { Logger } from '../../shared/logger.js';

export interface KeyedWorkQueueOptions<T> {
  /** Items processed at once, across all keys. */
  concurrency: number;
  worker: (item: T) => Promise<void>;
  logger: Logger;
}

/**
 * A worker pool keyed by object: items with the same key run one at a time in arrival order, items with
 * different keys run in parallel up to `concurrency`. This is what keeps a burst of status reports from one
 * node from queueing behind another (KubeEdge's single-threaded upstream was its bottleneck at CDN scale).
 */
export class KeyedWorkQueue<T> {
  private readonly queues = new Map<string, T[]>();
  private readonly active = new Set<string>();
  private ready: string[] = [];
  private readyHead = 0;
  private running = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly options: KeyedWorkQueueOptions<T>) {}

  push(key: string, item: T): void {
    const queue = this.queues.get(key);
    if (queue) {
      queue.push(item);
      return;
    }
    this.queues.set(key, [item]);
    if (!this.active.has(key)) this.ready.push(key);
    this.pump();
  }

  get size(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.length;
    return n;
  }

  /** Resolves when nothing is queued or running. */
  idle(): Promise<void> {
    if (this.running === 0 && this.queues.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    while (this.running < this.options.concurrency && this.readyHead < this.ready.length) {
      const key = this.ready[this.readyHead++]!;
      if (this.readyHead > 1024 && this.readyHead * 2 > this.ready.length) {
        this.ready = this.ready.slice(this.readyHead);
        this.readyHead = 0;
      }
      const queue = this.queues.get(key)!;
      const item = queue.shift()!;
      if (queue.length === 0) this.queues.delete(key);
      this.active.add(key);
      this.running++;
      this.options
        .worker(item)
        .catch((err: unknown) => this.options.logger.error({ err, key }, 'keyed worker failed'))
        .finally(() => {
          this.running--;
          this.active.delete(key);
          if (this.queues.has(key)) this.ready.push(key);
          this.pump();
          if (this.running === 0 && this.queues.size === 0) for (const wake of this.idleWaiters.splice(0)) wake();
        });
    }
  }
}
