import * as k8s from '@kubernetes/client-node';
import type { Logger } from '../../shared/logger.js';
import { Backoff } from '../../shared/backoff.js';
import type { CloudMetrics } from '../metrics/cloud-metrics.js';
import { apiStatus } from './kube-client.js';

export interface WatchedOptions<T extends k8s.KubernetesObject> {
  name: string;
  kc: k8s.KubeConfig;
  path: string;
  list: () => Promise<k8s.KubernetesListObject<T>>;
  labelSelector?: string;
  logger: Logger;
  /** Where relists and watch restarts are counted, under the resource of `path` (pods, devices …). */
  metrics?: CloudMetrics;
  onAdd?(obj: T): void;
  onUpdate?(obj: T): void;
  onDelete?(obj: T): void;
}

/**
 * A list-watch cache that stays up. client-node's informer relists by itself after 410 Gone, but any other
 * error (API server restart, network, a CRD not installed yet) stops it: this restarts it with bounded
 * backoff, relisting, so changes missed meanwhile arrive as adds, updates and deletes.
 */
export class Watched<T extends k8s.KubernetesObject> {
  private readonly informer: k8s.Informer<T> & k8s.ObjectCache<T>;
  private readonly backoff = new Backoff({ initialDelayMs: 500, maxDelayMs: 30_000 });
  private stopped = false;
  private restartTimer: NodeJS.Timeout | undefined;
  /** Resolves once a list has succeeded and its items are in the cache. */
  readonly synced: Promise<void>;
  private markSynced!: () => void;
  private isSynced = false;
  private abandon: (() => void) | undefined;
  private failures = 0;

  constructor(private readonly options: WatchedOptions<T>) {
    this.synced = new Promise((resolve) => (this.markSynced = resolve));
    const resource = options.path.slice(options.path.lastIndexOf('/') + 1);
    const relists = options.metrics?.informerRelists.labels(resource);
    const restarts = options.metrics?.watchRestarts.labels(resource);
    const list = async (): Promise<k8s.KubernetesListObject<T>> => {
      relists?.inc();
      const result = await options.list();
      // A list that worked ends the trouble (the informer's CONNECT comes before the list, so it cannot tell).
      this.backoff.reset();
      this.failures = 0;
      // The informer adds the items right after this resolves, in the same turn: announce on the next one.
      if (!this.isSynced) setImmediate(() => ((this.isSynced = true), this.markSynced()));
      return result;
    };
    this.informer = k8s.makeInformer(options.kc, options.path, list, options.labelSelector);
    // managedFields are server-side-apply bookkeeping, often the larger part of an object: dropped from the
    // cache (handlers see the cached object) and from everything sent to edges.
    const slim = (handler: (obj: T) => void) => (obj: T) => {
      if (obj.metadata?.managedFields) delete obj.metadata.managedFields;
      handler(obj);
    };
    if (options.onAdd) this.informer.on(k8s.ADD, slim(options.onAdd));
    if (options.onUpdate) this.informer.on(k8s.UPDATE, slim(options.onUpdate));
    if (options.onDelete) this.informer.on(k8s.DELETE, slim(options.onDelete));
    this.informer.on(k8s.ERROR, (err) => this.restartLater(err));
    // The informer connects before each list-and-watch: every connect after the first opens the watch again.
    let connects = 0;
    if (restarts) this.informer.on(k8s.CONNECT, () => connects++ > 0 && restarts.inc());
  }

  /**
   * Starts listing and watching; resolves once the first list is in the cache, however many retries that
   * takes. A resync must never be answered from an empty cache: it would delete everything an edge holds.
   */
  async start(): Promise<void> {
    this.stopped = false;
    await this.informer.start();
    await Promise.race([this.synced, new Promise<void>((resolve) => (this.abandon = resolve))]);
  }

  get hasSynced(): boolean {
    return this.isSynced;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abandon?.();
    clearTimeout(this.restartTimer);
    await this.informer.stop();
  }

  get(name: string, namespace?: string): T | undefined {
    return this.informer.get(name, namespace);
  }

  list(namespace?: string): readonly T[] {
    return this.informer.list(namespace);
  }

  private restartLater(err: unknown): void {
    if (this.stopped) return;
    const delay = this.backoff.next();
    // A long outage (or a CRD not installed) logs its first failures and then one in ten, in short form.
    if (this.failures++ < 3 || this.failures % 10 === 0) {
      this.options.logger.warn(
        { watch: this.options.name, status: apiStatus(err), reason: shortReason(err), failures: this.failures, retryInMs: delay },
        'watch failed, restarting',
      );
    }
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      if (!this.stopped) this.informer.start().catch((e: unknown) => this.restartLater(e));
    }, delay);
  }
}

/** The gist of a watch or list failure: the API server's message, or the transport error. */
function shortReason(err: unknown): string {
  const body = (err as { body?: unknown }).body;
  const text = typeof body === 'string' ? body : body && typeof body === 'object' ? String((body as { message?: unknown }).message ?? '') : '';
  return (text || (err as Error)?.message || String(err)).trim().slice(0, 200);
}
