import type { InventoryItem } from '../../shared/channel/frame.js';
import type { ApplyResult, ObjectChange } from '../contracts/object-change.js';
import type { SqliteDatabase } from '../../shared/sqlite.js';

export interface StoredMeta {
  key: string;
  type: string;
  uid: string;
  resourceVersion: string;
  /** The object's JSON bytes, as received. */
  value: Buffer;
}

interface Row {
  key: string;
  type: string;
  uid: string;
  rv: string;
  value: Buffer;
}

/** resourceVersion as an integer when it is one (etcd revisions are), for ordering inside SQL. */
const rvNumber = (rv: string): number | null => (/^\d{1,15}$/.test(rv) ? Number(rv) : null);

/**
 * The edge's object store (KubeEdge's `meta` table plus uid and resourceVersion). A version is applied only if
 * it is newer than what is stored, so a resend or a late duplicate can never move an object back in time. The
 * check runs inside the write statement itself: one statement per change.
 */
export class MetaStore {
  private readonly stmts;
  private readonly applyTx: (changes: readonly ObjectChange[]) => ApplyResult[];

  constructor(db: SqliteDatabase) {
    // A rowid table: objects are ~1 KiB, too large for a WITHOUT ROWID b-tree to stay shallow.
    db.exec(`CREATE TABLE IF NOT EXISTS meta (
      id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, type TEXT NOT NULL, uid TEXT NOT NULL, rv TEXT NOT NULL, rv_num INTEGER, value BLOB NOT NULL);
      CREATE INDEX IF NOT EXISTS meta_by_type ON meta (type);`);
    this.stmts = {
      // The type is part of the key, so it never changes (and its index is never rewritten).
      // Newer = larger numeric resourceVersion; when either is not numeric, any different version is newer.
      upsert: db.prepare(`INSERT INTO meta (key, type, uid, rv, rv_num, value) VALUES (@key, @type, @uid, @rv, @rvNum, @value)
        ON CONFLICT (key) DO UPDATE SET uid = excluded.uid, rv = excluded.rv, rv_num = excluded.rv_num, value = excluded.value
        WHERE CASE WHEN excluded.rv_num IS NOT NULL AND meta.rv_num IS NOT NULL THEN excluded.rv_num > meta.rv_num
                   ELSE excluded.uid <> meta.uid OR excluded.rv <> meta.rv END`),
      // A delete for an older incarnation (another uid and an older version) must not remove the newer object.
      delete: db.prepare(`DELETE FROM meta WHERE key = @key AND (uid = @uid OR (@rvNum IS NOT NULL AND rv_num IS NOT NULL AND @rvNum >= rv_num))`),
      get: db.prepare<[string], Row>('SELECT key, type, uid, rv, value FROM meta WHERE key = ?'),
      inventory: db.prepare<[], { key: string; uid: string; rv: string }>('SELECT key, uid, rv FROM meta'),
      byType: db.prepare<[string], Row>('SELECT key, type, uid, rv, value FROM meta WHERE type = ?'),
      count: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM meta'),
      countByType: db.prepare<[], { type: string; objects: number }>('SELECT type, count(*) AS objects FROM meta GROUP BY type'),
    };
    // One transaction per batch: the cloud's messages are ACKed only after this commit returns.
    this.applyTx = db.transaction((changes: readonly ObjectChange[]) => changes.map((c) => this.applyOne(c)));
  }

  apply(changes: readonly ObjectChange[]): ApplyResult[] {
    return this.applyTx(changes);
  }

  private applyOne(change: ObjectChange): ApplyResult {
    const params = { key: change.key, uid: change.uid, rvNum: rvNumber(change.resourceVersion) };
    const result = change.deleted
      ? this.stmts.delete.run(params)
      : this.stmts.upsert.run({ ...params, type: change.type, rv: change.resourceVersion, value: change.value });
    return result.changes > 0 ? 'applied' : 'stale';
  }

  get(key: string): StoredMeta | undefined {
    const row = this.stmts.get.get(key);
    return row && toMeta(row);
  }

  listByType(type: string): StoredMeta[] {
    return this.stmts.byType.all(type).map(toMeta);
  }

  inventory(): InventoryItem[] {
    return this.stmts.inventory.all().map((r) => ({ key: r.key, uid: r.uid, resourceVersion: r.rv }));
  }

  count(): number {
    return this.stmts.count.get()!.n;
  }

  /** Objects per type (read from the type index, not the objects). */
  countByType(): Array<{ type: string; objects: number }> {
    return this.stmts.countByType.all();
  }
}

function toMeta(row: Row): StoredMeta {
  return { key: row.key, type: row.type, uid: row.uid, resourceVersion: row.rv, value: row.value };
}
