import { openDatabase, type SqliteDatabase } from '../../shared/sqlite.js';
import type { ReplicaReport, ReplicaReportStore, StoredReport } from '../contracts/replica-reports.js';
import { formatReport } from '../contracts/replica-reports.js';

/**
 * Replica reports in a SQLite file shared by the replicas of the `local` source (beside the CA key, like
 * token-uses.db): one row per replica, each replica writing only its own row.
 */
export class FileReplicaReports implements ReplicaReportStore {
  readonly description: string;
  private db: SqliteDatabase | undefined;

  constructor(private readonly path: string) {
    this.description = `file ${path}`;
  }

  publish(report: ReplicaReport): Promise<void> {
    this.open()
      .prepare('INSERT INTO replica_reports (id, report) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET report = excluded.report')
      .run(report.id, formatReport(report));
    return Promise.resolve();
  }

  list(): Promise<StoredReport[]> {
    const rows = this.open().prepare<[], { id: string; report: string }>('SELECT id, report FROM replica_reports').all();
    return Promise.resolve(rows.map((r) => ({ origin: `file ${this.path} row ${r.id}`, text: r.report })));
  }

  remove(id: string): Promise<void> {
    this.open().prepare('DELETE FROM replica_reports WHERE id = ?').run(id);
    return Promise.resolve();
  }

  close(): void {
    this.db?.close();
    this.db = undefined;
  }

  private open(): SqliteDatabase {
    if (!this.db) {
      this.db = openDatabase(this.path, { synchronous: 'normal' });
      this.db.exec('CREATE TABLE IF NOT EXISTS replica_reports (id TEXT PRIMARY KEY, report TEXT NOT NULL)');
    }
    return this.db;
  }
}
