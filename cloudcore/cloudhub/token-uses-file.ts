import type { SqliteDatabase } from '../../shared/sqlite.js';
import { openDatabase } from '../../shared/sqlite.js';
import { usedUp, type TokenUses } from '../../shared/pki/token-uses.js';

/**
 * Uses of limited join tokens in a SQLite file beside the CA key, for the CA kept in files. Every cloudcore
 * on this host (and `cloudcore token create` never needs it) shares the file; one UPSERT counts a use, so two
 * processes racing for the last use cannot both win.
 */
export class FileTokenUses implements TokenUses {
  readonly description: string;
  private db: SqliteDatabase | undefined;

  constructor(private readonly path: string) {
    this.description = `file ${path}`;
  }

  consume(jti: string, limit: number, expiresAt: Date): Promise<number> {
    const db = this.open();
    const row = db
      .transaction(() => {
        db.prepare('DELETE FROM token_uses WHERE expires_at_ms < ?').run(Date.now());
        return db
          .prepare<[string, number, number], { used: number }>(
            `INSERT INTO token_uses (jti, used, expires_at_ms) VALUES (?, 1, ?)
           ON CONFLICT (jti) DO UPDATE SET used = used + 1 WHERE used < ? RETURNING used`,
          )
          .get(jti, expiresAt.getTime(), limit);
      })
      .immediate();
    return row ? Promise.resolve(row.used) : Promise.reject(usedUp(jti, limit));
  }

  close(): void {
    this.db?.close();
    this.db = undefined;
  }

  private open(): SqliteDatabase {
    if (this.db) return this.db;
    const db = openDatabase(this.path, { synchronous: 'full' });
    db.exec('CREATE TABLE IF NOT EXISTS token_uses (jti TEXT PRIMARY KEY, used INTEGER NOT NULL, expires_at_ms INTEGER NOT NULL)');
    return (this.db = db);
  }
}
