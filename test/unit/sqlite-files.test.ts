import { describe, expect, it } from 'vitest';
import { chmodSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { directoryOpenToOthers, openDatabase } from '../../shared/sqlite.js';
import { tempDir } from '../support/harness.js';

const mode = (path: string): number => statSync(path).mode & 0o777;

describe('SQLite store files', () => {
  it('creates the store, its WAL and shared-memory files 0600 in a new 0700 directory', () => {
    const path = join(tempDir(), 'data', 'edgecore.db');
    const db = openDatabase(path, { synchronous: 'normal' });
    try {
      db.exec("CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('secret')");
      expect(mode(join(path, '..'))).toBe(0o700);
      for (const file of [path, `${path}-wal`, `${path}-shm`]) expect(mode(file), file).toBe(0o600);
      expect(directoryOpenToOthers(path)).toBe(false);
    } finally {
      db.close();
    }
  });

  it('tightens a world-readable store left by an earlier version and leaves an existing directory alone', () => {
    const dir = join(tempDir(), 'shared');
    mkdirSync(dir, { mode: 0o755 });
    chmodSync(dir, 0o755);
    const path = join(dir, 'edgecore.db');
    for (const file of [path, `${path}-wal`]) writeFileSync(file, '', { mode: 0o644 });
    chmodSync(path, 0o644);
    const db = openDatabase(path, { synchronous: 'normal' });
    try {
      expect(mode(path)).toBe(0o600);
      expect(mode(`${path}-wal`)).toBe(0o600);
      expect(mode(dir)).toBe(0o755);
      expect(directoryOpenToOthers(path)).toBe(true);
    } finally {
      db.close();
    }
  });
});
