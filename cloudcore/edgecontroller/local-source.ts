import type { Logger } from '../../shared/logger.js';
import type { ReportMessage } from '../contracts/node-messages.js';
import { ANY_TYPE } from '../contracts/object-sync.js';
import { LocalObjectStore, type StoredObject } from './local-object-store.js';
import type { DesiredObject, NodeReports, ObjectSource, SourceChange } from './object-source.js';

const POLL_BATCH = 5_000;

/** The `local` source: follows the SQLite object store by polling its revision. */
export class LocalSource implements ObjectSource {
  readonly ownedTypes = [ANY_TYPE];
  private store: LocalObjectStore | undefined;
  /** node → key → newest live object. */
  private readonly cache = new Map<string, Map<string, StoredObject>>();
  private revision = 0;
  private timer: NodeJS.Timeout | undefined;
  private emit: ((change: SourceChange) => void) | undefined;

  constructor(private readonly options: { path: string; pollIntervalMs: number; logger: Logger }) {}

  async start(emit: (change: SourceChange) => void): Promise<void> {
    this.store = new LocalObjectStore(this.options.path);
    this.revision = this.store.revision();
    for (const object of this.store.live()) this.cacheFor(object.node).set(object.key, object);
    this.emit = emit;
    this.timer = setInterval(() => this.poll(), this.options.pollIntervalMs);
    let objects = 0;
    for (const m of this.cache.values()) objects += m.size;
    this.options.logger.info({ source: 'local', path: this.options.path, objects, revision: this.revision }, 'edgecontroller watching objects');
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.store?.close();
    this.store = undefined;
  }

  desired(node: string): Iterable<DesiredObject> {
    return [...(this.cache.get(node)?.values() ?? [])].map(toDesired);
  }

  lookup(node: string, key: string): DesiredObject | undefined {
    const object = this.cache.get(node)?.get(key);
    return object && toDesired(object);
  }

  /** Keeps a report under the node that sent it (dropped while the store is closed). */
  putStatus(node: string, resource: string, value: unknown): void {
    this.store?.putStatus(node, resource, value);
  }

  private poll(): void {
    if (!this.store) return;
    try {
      for (;;) {
        const changes = this.store.changesSince(this.revision, POLL_BATCH);
        for (const change of changes) this.apply(change);
        if (changes.length < POLL_BATCH) break;
      }
    } catch (err) {
      this.options.logger.error({ err }, 'polling the local object store failed');
    }
  }

  private apply(change: StoredObject): void {
    this.revision = change.resourceVersion;
    const objects = this.cacheFor(change.node);
    const existed = objects.has(change.key);
    if (change.deleted) objects.delete(change.key);
    else objects.set(change.key, change);
    if (change.deleted && !existed) return;
    this.emit?.({ node: change.node, operation: change.deleted ? 'delete' : existed ? 'update' : 'insert', object: toDesired(change) });
  }

  private cacheFor(node: string): Map<string, StoredObject> {
    let objects = this.cache.get(node);
    if (!objects) this.cache.set(node, (objects = new Map()));
    return objects;
  }
}

/** The `local` reports: kept in the store under the reporting node, so a node can only write its own. */
export class LocalReports implements NodeReports {
  constructor(private readonly store: Pick<LocalSource, 'putStatus'>) {}

  async report(report: ReportMessage): Promise<void> {
    this.store.putStatus(report.node, report.resource, report.content ?? null);
  }

  connected(): void {}

  disconnected(): void {}
}

function toDesired(object: StoredObject): DesiredObject {
  const [namespace, , name] = object.key.split('/');
  return {
    key: object.key,
    uid: object.uid,
    resourceVersion: String(object.resourceVersion),
    content: object.deleted ? { metadata: { uid: object.uid, name, namespace } } : (JSON.parse(object.value) as unknown),
  };
}
