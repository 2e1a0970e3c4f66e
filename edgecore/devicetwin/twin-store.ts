import type { SqliteDatabase } from '../../shared/sqlite.js';
import type { TwinRecord } from './twin-rules.js';

/** A device's own row: what its mapper last said about it. */
export interface DeviceRow {
  id: string;
  state: string;
  lastOnline: string;
}

export interface AttributeRow {
  value: string;
  optional: boolean;
  type: string;
}

/** Everything one flush writes, in one transaction. */
export interface TwinWrite {
  devices: DeviceRow[];
  twins: Array<{ deviceId: string; name: string; record: TwinRecord }>;
  attributes: Array<{ deviceId: string; name: string; attribute: AttributeRow }>;
  removedDevices: string[];
  removedTwins: Array<{ deviceId: string; name: string }>;
}

interface TwinColumns {
  deviceid: string;
  name: string;
  expected: string | null;
  actual: string | null;
  expected_meta: string | null;
  actual_meta: string | null;
  expected_version: string;
  actual_version: string;
  optional: number;
  attr_type: string;
}

/**
 * DeviceTwin's tables in the edge store, with KubeEdge's columns: `device`, `device_attr` and `device_twin`
 * (values and their `{"timestamp"}` metadata and `{"cloud","edge"}` versions as JSON text).
 */
export class TwinStore {
  private readonly stmts;
  private readonly writeTx: (write: TwinWrite) => void;

  constructor(db: SqliteDatabase) {
    db.exec(`CREATE TABLE IF NOT EXISTS device (id TEXT PRIMARY KEY, state TEXT NOT NULL, last_online TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS device_attr (deviceid TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, optional INTEGER NOT NULL,
        attr_type TEXT NOT NULL, PRIMARY KEY (deviceid, name)) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS device_twin (deviceid TEXT NOT NULL, name TEXT NOT NULL, expected TEXT, actual TEXT, expected_meta TEXT,
        actual_meta TEXT, expected_version TEXT NOT NULL, actual_version TEXT NOT NULL, optional INTEGER NOT NULL, attr_type TEXT NOT NULL,
        PRIMARY KEY (deviceid, name)) WITHOUT ROWID;`);
    this.stmts = {
      putDevice: db.prepare('INSERT OR REPLACE INTO device (id, state, last_online) VALUES (?, ?, ?)'),
      putAttr: db.prepare('INSERT OR REPLACE INTO device_attr (deviceid, name, value, optional, attr_type) VALUES (?, ?, ?, ?, ?)'),
      putTwin: db.prepare(`INSERT OR REPLACE INTO device_twin
          (deviceid, name, expected, actual, expected_meta, actual_meta, expected_version, actual_version, optional, attr_type)
        VALUES (@deviceid, @name, @expected, @actual, @expected_meta, @actual_meta, @expected_version, @actual_version, @optional, @attr_type)`),
      dropDevice: db.prepare('DELETE FROM device WHERE id = ?'),
      dropAttrs: db.prepare('DELETE FROM device_attr WHERE deviceid = ?'),
      dropTwins: db.prepare('DELETE FROM device_twin WHERE deviceid = ?'),
      dropTwin: db.prepare('DELETE FROM device_twin WHERE deviceid = ? AND name = ?'),
      devices: db.prepare<[], { id: string; state: string; last_online: string }>('SELECT id, state, last_online FROM device'),
      attrs: db.prepare<[], { deviceid: string; name: string; value: string; optional: number; attr_type: string }>(
        'SELECT deviceid, name, value, optional, attr_type FROM device_attr',
      ),
      twins: db.prepare<[], TwinColumns>('SELECT * FROM device_twin'),
    };
    this.writeTx = db.transaction((w: TwinWrite) => {
      for (const id of w.removedDevices) {
        this.stmts.dropDevice.run(id);
        this.stmts.dropAttrs.run(id);
        this.stmts.dropTwins.run(id);
      }
      for (const t of w.removedTwins) this.stmts.dropTwin.run(t.deviceId, t.name);
      for (const d of w.devices) this.stmts.putDevice.run(d.id, d.state, d.lastOnline);
      for (const a of w.attributes) this.stmts.putAttr.run(a.deviceId, a.name, a.attribute.value, a.attribute.optional ? 1 : 0, a.attribute.type);
      for (const t of w.twins) this.stmts.putTwin.run(toColumns(t.deviceId, t.name, t.record));
    });
  }

  write(w: TwinWrite): void {
    this.writeTx(w);
  }

  devices(): DeviceRow[] {
    return this.stmts.devices.all().map((r) => ({ id: r.id, state: r.state, lastOnline: r.last_online }));
  }

  attributes(): Array<{ deviceId: string; name: string; attribute: AttributeRow }> {
    return this.stmts.attrs
      .all()
      .map((r) => ({ deviceId: r.deviceid, name: r.name, attribute: { value: r.value, optional: r.optional === 1, type: r.attr_type } }));
  }

  twins(): Array<{ deviceId: string; name: string; record: TwinRecord }> {
    return this.stmts.twins.all().map((r) => ({ deviceId: r.deviceid, name: r.name, record: fromColumns(r) }));
  }
}

function toColumns(deviceid: string, name: string, r: TwinRecord): TwinColumns {
  return {
    deviceid,
    name,
    expected: r.expected?.value ?? null,
    actual: r.actual?.value ?? null,
    expected_meta: r.expected ? JSON.stringify({ timestamp: r.expected.timestamp }) : null,
    actual_meta: r.actual ? JSON.stringify({ timestamp: r.actual.timestamp }) : null,
    expected_version: JSON.stringify(r.expectedVersion),
    actual_version: JSON.stringify(r.actualVersion),
    optional: r.optional ? 1 : 0,
    attr_type: r.type,
  };
}

function fromColumns(c: TwinColumns): TwinRecord {
  const record: TwinRecord = {
    expectedVersion: JSON.parse(c.expected_version),
    actualVersion: JSON.parse(c.actual_version),
    optional: c.optional === 1,
    type: c.attr_type,
  };
  if (c.expected !== null) record.expected = { value: c.expected, timestamp: (JSON.parse(c.expected_meta ?? '{}') as { timestamp?: number }).timestamp ?? 0 };
  if (c.actual !== null) record.actual = { value: c.actual, timestamp: (JSON.parse(c.actual_meta ?? '{}') as { timestamp?: number }).timestamp ?? 0 };
  return record;
}
