import type { DeviceEntry } from './device-entry.js';
import type { TwinStore, TwinWrite } from './twin-store.js';

/**
 * What DeviceTwin changed during one turn of the event loop: committed together in one transaction, and only
 * then answered (results published) and reported up. A mapper that sees a result can count on the value
 * being on disk, as with KubeEdge, and a burst of updates costs one commit instead of one each.
 */
export class TwinBatch {
  private twins = new Map<string, { entry: DeviceEntry; names: Set<string> }>();
  private devices = new Map<string, DeviceEntry>();
  private attributes = new Map<string, { entry: DeviceEntry; names: Set<string> }>();
  private removed = new Set<string>();
  private removedTwins: Array<{ deviceId: string; name: string }> = [];
  private afterCommit: Array<() => void> = [];
  private reports = new Map<string, DeviceEntry>();
  private scheduled = false;

  constructor(
    private readonly store: TwinStore,
    private readonly onReport: (entry: DeviceEntry) => void,
    private readonly onError: (err: unknown) => void,
  ) {}

  twin(entry: DeviceEntry, name: string): void {
    this.names(this.twins, entry).add(name);
    this.schedule();
  }

  twinRemoved(entry: DeviceEntry, name: string): void {
    this.twins.get(entry.id)?.names.delete(name);
    this.removedTwins.push({ deviceId: entry.id, name });
    this.schedule();
  }

  device(entry: DeviceEntry): void {
    this.devices.set(entry.id, entry);
    this.schedule();
  }

  attribute(entry: DeviceEntry, name: string): void {
    this.names(this.attributes, entry).add(name);
    this.schedule();
  }

  deviceRemoved(id: string): void {
    this.twins.delete(id);
    this.devices.delete(id);
    this.attributes.delete(id);
    this.reports.delete(id);
    this.removed.add(id);
    this.schedule();
  }

  /** Runs after the commit (a result for the mapper). */
  then(publish: () => void): void {
    this.afterCommit.push(publish);
    this.schedule();
  }

  /** The device's status goes up after the commit (once per batch however often it changed). */
  report(entry: DeviceEntry): void {
    this.reports.set(entry.id, entry);
    this.schedule();
  }

  /** Commits now; normally called on the next turn of the event loop. */
  flush(): void {
    this.scheduled = false;
    const write: TwinWrite = {
      devices: [...this.devices.values()].map((e) => ({ id: e.id, state: e.state, lastOnline: e.lastOnline })),
      twins: [...this.twins.values()].flatMap(({ entry, names }) => [...names].map((name) => ({ deviceId: entry.id, name, record: entry.twins.get(name)! }))),
      attributes: [...this.attributes.values()].flatMap(({ entry, names }) =>
        [...names].map((name) => ({ deviceId: entry.id, name, attribute: entry.attributes.get(name)! })),
      ),
      removedDevices: [...this.removed],
      removedTwins: this.removedTwins,
    };
    const afterCommit = this.afterCommit;
    const reports = [...this.reports.values()];
    this.twins = new Map();
    this.devices = new Map();
    this.attributes = new Map();
    this.removed = new Set();
    this.removedTwins = [];
    this.afterCommit = [];
    this.reports = new Map();
    try {
      this.store.write(write);
    } catch (err) {
      // Disk full or I/O error: nothing is answered, so no mapper believes its value was taken.
      this.onError(err);
      return;
    }
    for (const publish of afterCommit) publish();
    for (const entry of reports) this.onReport(entry);
  }

  private names(map: Map<string, { entry: DeviceEntry; names: Set<string> }>, entry: DeviceEntry): Set<string> {
    let slot = map.get(entry.id);
    if (!slot) map.set(entry.id, (slot = { entry, names: new Set() }));
    return slot.names;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }
}
