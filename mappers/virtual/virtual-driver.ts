import { ConfigError, ProtocolError } from '../../shared/errors.js';
import type { DeviceConfig, PropertyConfig } from '../framework/device-config.js';
import type { Driver, DriverContext } from '../framework/driver.js';
import { parseValue, type PropertyType, type PropertyValue } from '../framework/value-codec.js';
import { parseSignal, signalValue, type SignalConfig } from './signal.js';

export interface VirtualDriverOptions extends DriverContext {
  now?: () => number;
  random?: () => number;
}

/**
 * A simulated device for demos and tests: each property follows a signal (sine, random, counter, constant).
 * A written value is kept and read back from then on. Writes to a `constant` are always accepted; a generated
 * signal accepts one only when the model says ReadWrite explicitly, so a plain sensor cannot be overridden.
 */
export class VirtualDriver implements Driver {
  private readonly signals = new Map<string, SignalConfig>();
  private readonly written = new Map<string, PropertyValue>();
  private startedAt: number | undefined;
  private readonly now: () => number;
  private readonly random: () => number;

  constructor(options: VirtualDriverOptions) {
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
  }

  async connect(device: DeviceConfig): Promise<void> {
    const problems: string[] = [];
    this.signals.clear();
    for (const property of device.properties) {
      const where = `properties.${property.name}.visitors.configData`;
      const signal = parseSignal(property.visitor, where, problems);
      if (!signal) continue;
      if (signal.kind === 'constant' && signal.initial !== undefined) {
        try {
          constantValue(property.type, signal.initial);
        } catch (err) {
          problems.push(`${where}.initial: ${(err as Error).message}`);
          continue;
        }
      }
      this.signals.set(property.name, signal);
    }
    if (problems.length > 0) throw new ConfigError(problems);
    this.startedAt ??= this.now();
  }

  async read(property: PropertyConfig): Promise<PropertyValue> {
    const written = this.written.get(property.name);
    if (written !== undefined) return written;
    const signal = this.signalOf(property);
    if (signal.kind === 'constant' && signal.initial !== undefined) return constantValue(property.type, signal.initial);
    const value = signalValue(signal, this.now() - (this.startedAt ?? this.now()), this.random);
    return present(property.type, value, signal);
  }

  async write(property: PropertyConfig, value: PropertyValue): Promise<void> {
    const signal = this.signalOf(property);
    if (signal.kind !== 'constant' && property.accessMode !== 'ReadWrite') {
      throw new ProtocolError(`${property.name} is a ${signal.kind} signal: only an explicit ReadWrite accessMode lets a write override it`);
    }
    this.written.set(property.name, value);
  }

  async close(): Promise<void> {}

  private signalOf(property: PropertyConfig): SignalConfig {
    const signal = this.signals.get(property.name);
    if (!signal) throw new ProtocolError(`no virtual visitor for property ${property.name}`);
    return signal;
  }
}

export function createVirtualDriver(context: DriverContext): Driver {
  return new VirtualDriver(context);
}

/** FLOAT/DOUBLE to 2 decimals, INT to an integer; booleans from the upper half of the range (counter: odd). */
function present(type: PropertyType, value: number, signal: SignalConfig): PropertyValue {
  switch (type) {
    case 'int':
      return Math.round(value);
    case 'boolean':
      return signal.kind === 'counter' ? Math.abs(Math.round(value)) % 2 === 1 : value > (signal.min + signal.max) / 2;
    case 'float':
    case 'double':
      return Math.round(value * 100) / 100;
    case 'string':
    case 'bytes':
      return (Math.round(value * 100) / 100).toFixed(2);
  }
}

function constantValue(type: PropertyType, initial: string | number | boolean): PropertyValue {
  const value = parseValue(type, String(initial));
  return typeof value === 'number' ? present(type, value, { kind: 'constant', min: 0, max: 0, periodMs: 1 }) : value;
}
