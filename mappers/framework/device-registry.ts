import type { DeviceConfig } from './device-config.js';

/** What the mapper must do after a membership message: stop, start, or restart device runners. */
export interface RegistryChange {
  started: DeviceConfig[];
  /** Known ids whose configuration changed: stop the old runner, then start one for the new config. */
  replaced: DeviceConfig[];
  stopped: string[];
}

/**
 * The devices this mapper serves, kept from membership results and updates. Pure: it only computes the
 * difference; the mapper acts on it. Devices of other protocols are not kept.
 */
export class DeviceRegistry {
  private readonly devices = new Map<string, { config: DeviceConfig; fingerprint: string }>();
  private readonly protocols: ReadonlySet<string>;

  constructor(protocols: readonly string[]) {
    this.protocols = new Set(protocols);
  }

  get(id: string): DeviceConfig | undefined {
    return this.devices.get(id)?.config;
  }

  ids(): string[] {
    return [...this.devices.keys()];
  }

  /** A full membership (`membership/get/result`): ids not in it are stopped. */
  sync(devices: readonly DeviceConfig[]): RegistryChange {
    const change = this.upsert(devices);
    const present = new Set(devices.map((d) => d.id));
    for (const id of this.ids()) {
      if (!present.has(id)) this.remove(id, change);
    }
    return change;
  }

  /** `membership/updated`: a known id in `added` is a replacement (docs/devices.md). */
  update(added: readonly DeviceConfig[], removedIds: readonly string[]): RegistryChange {
    const change = this.upsert(added);
    for (const id of removedIds) this.remove(id, change);
    return change;
  }

  private upsert(devices: readonly DeviceConfig[]): RegistryChange {
    const change: RegistryChange = { started: [], replaced: [], stopped: [] };
    for (const config of devices) {
      const known = this.devices.get(config.id);
      if (!this.protocols.has(config.protocolName)) {
        // Moved to a protocol this mapper does not speak: another mapper takes it over.
        if (known) this.remove(config.id, change);
        continue;
      }
      const fingerprint = fingerprintOf(config);
      // Same configuration sent again (a repeated membership/get after a broker reconnect): keep the runner.
      if (known?.fingerprint === fingerprint) continue;
      this.devices.set(config.id, { config, fingerprint });
      (known ? change.replaced : change.started).push(config);
    }
    return change;
  }

  private remove(id: string, change: RegistryChange): void {
    if (this.devices.delete(id)) change.stopped.push(id);
  }
}

/** Key order does not matter: two equal configurations give the same fingerprint. */
export function fingerprintOf(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    typeof v === 'object' && v !== null && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}
