import { chmodSync, closeSync, existsSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

export type SqliteDatabase = Database.Database;

export interface OpenDatabaseOptions {
  /**
   * `normal`: in WAL mode a commit survives a process crash (kill -9) but the last commits may be lost on
   * power failure; `full` fsyncs every commit.
   */
  synchronous: 'normal' | 'full';
}

/**
 * Opens a SQLite file in WAL mode (readers never block the one writer). The stores hold Secrets and tokens in
 * clear, so the file is the owner's only (0600) and a directory created for it is too (0700).
 */
export function openDatabase(path: string, options: OpenDatabaseOptions): SqliteDatabase {
  if (path !== ':memory:') prepareOwnerOnlyFiles(path);
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${options.synchronous.toUpperCase()}`);
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  // SQLite's default checkpoint size (1000 pages, ~4 MiB). A checkpoint fsyncs on this thread; under heavy
  // write load smaller ones stall more often and larger ones longer (see docs/performance.md).
  db.pragma('wal_autocheckpoint = 1000');
  db.pragma('journal_size_limit = 16777216');
  return db;
}

function prepareOwnerOnlyFiles(path: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  // SQLite creates the -wal and -shm files with the database file's mode, so creating that one 0600 (before
  // SQLite does, with 0644) covers all three. chmod tightens files an earlier version left world-readable.
  closeSync(openSync(path, 'a', 0o600));
  for (const file of [path, `${path}-wal`, `${path}-shm`]) {
    if (!existsSync(file) || (statSync(file).mode & 0o077) === 0) continue;
    try {
      chmodSync(file, 0o600);
    } catch {
      // Another user's file (a read-only look by an admin tool): not ours to change.
    }
  }
}

/** Whether other users can enter or list the directory holding a database (worth a warning, not a chmod). */
export function directoryOpenToOthers(path: string): boolean {
  return path !== ':memory:' && (statSync(dirname(path)).mode & 0o077) !== 0;
}
