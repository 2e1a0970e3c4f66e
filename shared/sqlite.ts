import { mkdirSync } from 'node:fs';
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

/** Opens a SQLite file in WAL mode (readers never block the one writer). */
export function openDatabase(path: string, options: OpenDatabaseOptions): SqliteDatabase {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
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
