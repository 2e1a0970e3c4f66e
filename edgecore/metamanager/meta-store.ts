import type { InventoryItem } from '../../shared/channel/frame.js';
import { compareResourceVersions } from '../../shared/message.js';
import type { SqliteDatabase } from '../../shared/sqlite.js';

export interface ObjectChange {
  /** `<namespace>/<type>/<name>` */
  key: string;
  type: string;
  uid: string;
  resourceVersion: string;
  deleted: boolean;
  /** JSON text of the object (ignored for deletes). */
  value: string;
}

/** applied: the store changed; stale: it already held this or a newer version, nothing changed. */
export type ApplyOutcome = 'applied' | 'stale';

export interface StoredMeta {
  key: string;
  type: string;
  uid: string;
  resourceVersion: string;
  value: string;
}

/**
 * The edge's object store (KubeEdge's `meta` table plus uid and resourceVersion columns). A version is
 * applied only if it is newer than what is stored, so a resend or a late duplicate can never move an object
 * back in time.
 */
export class MetaStore {
  private readonly stmts;
  private readonly applyTx: (changes: readonly ObjectChange[]) => ApplyOutcome[];

  constructor(private readonly db: SqliteDatabase) {
    db.exec(`CREATE TABLE IF NOT EXISTS meta (
      key TEXT PRIMARY KEY, type TEXT NOT NULL, uid TEXT NOT NULL, rv TEXT NOT NULL, value TEXT NOT NULL) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS meta_by_type ON meta (type);`);
    this.stmts = {
      get: db.prepare<[string], { key: string; type: string; uid: string; rv: string; value: string }>('SELECT * FROM meta WHERE key = ?'),
      upsert: db.prepare('INSERT INTO meta (key, type, uid, rv, value) VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET type = excluded.type, uid = excluded.uid, rv = excluded.rv, value = excluded.value'),
      delete: db.prepare('DELETE FROM meta WHERE key = ?'),
      inventory: db.prepare<[], { key: string; uid: string; rv: string }>('SELECT key, uid, rv FROM meta'),
      byType: db.prepare<[string], { key: string; type: string; uid: string; rv: string; value: string }>('SELECT * FROM meta WHERE type = ?'),
      count: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM meta'),
    };
    // One transaction per batch: the cloud's messages are ACKed only after this commit returns.
    this.applyTx = db.transaction((changes: readonly ObjectChange[]) => changes.map((c) => this.applyOne(c)));
  }

  apply(changes: readonly ObjectChange[]): ApplyOutcome[] {
    return this.applyTx(changes);
  }

  private applyOne(change: ObjectChange): ApplyOutcome {
    const stored = this.stmts.get.get(change.key);
    if (change.deleted) {
      if (!stored) return 'stale';
      const cmp = compareResourceVersions(change.resourceVersion, stored.rv);
      // A delete for an older incarnation (another uid, older version) must not remove the newer object.
      if (stored.uid !== change.uid && !(cmp >= 0)) return 'stale';
      this.stmts.delete.run(change.key);
      return 'applied';
    }
    if (stored) {
      const cmp = compareResourceVersions(change.resourceVersion, stored.rv);
      const newer = Number.isNaN(cmp) ? stored.uid !== change.uid || stored.rv !== change.resourceVersion : cmp > 0;
      if (!newer) return 'stale';
    }
    this.stmts.upsert.run(change.key, change.type, change.uid, change.resourceVersion, change.value);
    return 'applied';
  }

  get(key: string): StoredMeta | undefined {
    const row = this.stmts.get.get(key);
    return row && { key: row.key, type: row.type, uid: row.uid, resourceVersion: row.rv, value: row.value };
  }

  listByType(type: string): StoredMeta[] {
    return this.stmts.byType.all(type).map((row) => ({ key: row.key, type: row.type, uid: row.uid, resourceVersion: row.rv, value: row.value }));
  }

  inventory(): InventoryItem[] {
    return this.stmts.inventory.all().map((r) => ({ key: r.key, uid: r.uid, resourceVersion: r.rv }));
  }

  count(): number {
    return this.stmts.count.get()!.n;
  }
}
