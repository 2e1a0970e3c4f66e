import { randomUUID } from 'node:crypto';
import { openDatabase, type SqliteDatabase } from '../../shared/sqlite.js';
import type { ObjectMeta } from '../contracts/object-sync.js';

export interface StoredObject {
  node: string;
  /** `<namespace>/<type>/<name>`, as the edge sees it. */
  key: string;
  uid: string;
  resourceVersion: number;
  deleted: boolean;
  /** JSON text of the object, metadata included. */
  value: string;
}

interface Row {
  node: string;
  key: string;
  uid: string;
  rv: number;
  deleted: number;
  value: string;
}

/**
 * The `local` object source: desired objects per node in a SQLite file, for running without Kubernetes and
 * for tests. Like etcd it has one revision counter: every write gets the next revision as its
 * resourceVersion, and deletes stay as tombstones so a follower sees them. Any process may write
 * (`cloudcore objects put`, tests); cloudcore follows by polling `changesSince`.
 */
export class LocalObjectStore {
  private readonly db: SqliteDatabase;
  private readonly stmts;

  constructor(path: string) {
    this.db = openDatabase(path, { synchronous: 'normal' });
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS objects (
        node TEXT NOT NULL, key TEXT NOT NULL, uid TEXT NOT NULL, rv INTEGER NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0, value TEXT NOT NULL, PRIMARY KEY (node, key)) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS objects_by_rv ON objects (rv);
      CREATE TABLE IF NOT EXISTS revision (id INTEGER PRIMARY KEY CHECK (id = 1), rv INTEGER NOT NULL);
      INSERT OR IGNORE INTO revision (id, rv) VALUES (1, 0);
      CREATE TABLE IF NOT EXISTS statuses (
        node TEXT NOT NULL, resource TEXT NOT NULL, value TEXT NOT NULL, updated_ms INTEGER NOT NULL,
        PRIMARY KEY (node, resource)) WITHOUT ROWID;`);
    this.stmts = {
      nextRv: this.db.prepare('UPDATE revision SET rv = rv + 1 WHERE id = 1 RETURNING rv'),
      get: this.db.prepare<[string, string], Row>('SELECT * FROM objects WHERE node = ? AND key = ?'),
      upsert: this.db.prepare(
        'INSERT INTO objects (node, key, uid, rv, deleted, value) VALUES (@node, @key, @uid, @rv, @deleted, @value) ON ' +
          'CONFLICT (node, key) DO UPDATE SET uid = excluded.uid, rv = excluded.rv, deleted = excluded.deleted, value = excluded.value',
      ),
      live: this.db.prepare<[], Row>('SELECT * FROM objects WHERE deleted = 0'),
      since: this.db.prepare<[number, number], Row>('SELECT * FROM objects WHERE rv > ? ORDER BY rv LIMIT ?'),
      revision: this.db.prepare<[], { rv: number }>('SELECT rv FROM revision WHERE id = 1'),
      putStatus: this.db.prepare(
        'INSERT INTO statuses (node, resource, value, updated_ms) VALUES (?, ?, ?, ?) ON CONFLICT (node, resource) DO ' +
          'UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms',
      ),
      getStatus: this.db.prepare<[string, string], { value: string }>('SELECT value FROM statuses WHERE node = ? AND resource = ?'),
      compact: this.db.prepare('DELETE FROM objects WHERE deleted = 1 AND rv < ?'),
    };
  }

  /** Creates or replaces the object at `key` for `node`; returns its identity and new resourceVersion. */
  put(node: string, key: string, object: ObjectMeta): { uid: string; resourceVersion: string } {
    return this.db
      .transaction(() => {
        const rv = (this.stmts.nextRv.get() as { rv: number }).rv;
        const existing = this.stmts.get.get(node, key);
        const uid = existing && !existing.deleted ? existing.uid : (object.metadata?.uid ?? randomUUID());
        const [namespace, , name] = key.split('/');
        const metadata = { ...object.metadata, name, ...(namespace !== 'null' ? { namespace } : {}), uid, resourceVersion: String(rv) };
        this.stmts.upsert.run({ node, key, uid, rv, deleted: 0, value: JSON.stringify({ ...object, metadata }) });
        return { uid, resourceVersion: String(rv) };
      })
      .immediate();
  }

  /** Deletes the object, leaving a tombstone with a new revision. Returns false when there was none. */
  remove(node: string, key: string): boolean {
    return this.db
      .transaction(() => {
        const existing = this.stmts.get.get(node, key);
        if (!existing || existing.deleted) return false;
        const rv = (this.stmts.nextRv.get() as { rv: number }).rv;
        this.stmts.upsert.run({ ...existing, rv, deleted: 1 });
        return true;
      })
      .immediate();
  }

  get(node: string, key: string): StoredObject | undefined {
    const row = this.stmts.get.get(node, key);
    return row && !row.deleted ? toObject(row) : undefined;
  }

  live(): StoredObject[] {
    return this.stmts.live.all().map(toObject);
  }

  /** Every write (tombstones included) after revision `rv`, oldest first. */
  changesSince(rv: number, limit: number): StoredObject[] {
    return this.stmts.since.all(rv, limit).map(toObject);
  }

  revision(): number {
    return this.stmts.revision.get()!.rv;
  }

  putStatus(node: string, resource: string, value: unknown): void {
    this.stmts.putStatus.run(node, resource, JSON.stringify(value), Date.now());
  }

  getStatus(node: string, resource: string): unknown {
    const row = this.stmts.getStatus.get(node, resource);
    return row ? JSON.parse(row.value) : undefined;
  }

  /** Drops tombstones older than `rv`; followers further behind must reload. */
  compact(rv: number): number {
    return this.stmts.compact.run(rv).changes;
  }

  close(): void {
    this.db.close();
  }
}

function toObject(row: Row): StoredObject {
  return { node: row.node, key: row.key, uid: row.uid, resourceVersion: row.rv, deleted: row.deleted === 1, value: row.value };
}
