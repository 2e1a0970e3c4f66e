import { deviceDurationMs } from '../../shared/device-types.js';
import { normalizeType, type PropertyType } from './value-codec.js';

export const DEFAULT_COLLECT_CYCLE_MS = 1000;
/** Shortest collect cycle honoured; guards the device against a typo like `collectCycle: 1`. */
export const MIN_COLLECT_CYCLE_MS = 10;

export type AccessMode = 'ReadWrite' | 'ReadOnly';

/** A device property this mapper collects: model fields plus the visitor of the device's protocol. */
export interface PropertyConfig {
  readonly name: string;
  readonly type: PropertyType;
  /** Absent when the model leaves it out; only `ReadOnly` stops the framework from writing. */
  readonly accessMode?: AccessMode;
  readonly collectCycleMs: number;
  /** The visitor's `configData`, protocol-specific; the driver validates it. */
  readonly visitor: Readonly<Record<string, unknown>>;
}

/** A device as the mapper sees it, parsed from a membership entry (docs/devices.md, section 3). */
export interface DeviceConfig {
  /** `<namespace>/<name>`, the id in device topics. */
  readonly id: string;
  readonly name: string;
  readonly namespace: string;
  readonly protocolName: string;
  /** The device protocol's `configData`, protocol-specific; the driver validates it. */
  readonly protocolConfig: Readonly<Record<string, unknown>>;
  readonly properties: readonly PropertyConfig[];
}

export interface ParsedDevice {
  device?: DeviceConfig;
  /** Why the entry or some of its properties were left out; the rest of the device still runs. */
  problems: string[];
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The device id of a membership entry. Entries carry `id`; `namespace`/`name` is the fallback, and an id without
 * a namespace means `default`, as a single-segment device topic does.
 */
export function entryId(entry: unknown): string | undefined {
  if (!isRecord(entry)) return undefined;
  const raw = typeof entry.id === 'string' && entry.id !== '' ? entry.id : typeof entry.name === 'string' && entry.name !== '' ? entry.name : undefined;
  if (raw === undefined) return undefined;
  if (raw.includes('/')) return raw;
  const namespace = typeof entry.namespace === 'string' && entry.namespace !== '' ? entry.namespace : 'default';
  return `${namespace}/${raw}`;
}

/** Parses one membership entry; properties without a visitor of the device's protocol are not collected. */
export function parseDeviceEntry(entry: unknown): ParsedDevice {
  const id = entryId(entry);
  if (!isRecord(entry) || id === undefined || !/^[^/+#]+\/[^/+#]+$/.test(id)) {
    return { problems: [`membership entry without a valid id: ${JSON.stringify(entry)?.slice(0, 200)}`] };
  }
  const protocol = isRecord(entry.protocol) ? entry.protocol : {};
  const protocolName = typeof protocol.protocolName === 'string' ? protocol.protocolName : '';
  if (protocolName === '') return { problems: [`device ${id}: no protocol.protocolName`] };
  const problems: string[] = [];
  const properties: PropertyConfig[] = [];
  for (const [index, raw] of (Array.isArray(entry.properties) ? entry.properties : []).entries()) {
    const parsed = parseProperty(raw, protocolName, `device ${id}: properties[${index}]`, problems);
    if (parsed) properties.push(parsed);
  }
  const [namespace, name] = id.split('/') as [string, string];
  const device: DeviceConfig = {
    id,
    name,
    namespace,
    protocolName,
    protocolConfig: isRecord(protocol.configData) ? protocol.configData : {},
    properties,
  };
  return { device, problems };
}

function parseProperty(raw: unknown, protocolName: string, where: string, problems: string[]): PropertyConfig | undefined {
  if (!isRecord(raw) || typeof raw.name !== 'string' || raw.name === '') {
    problems.push(`${where}: a property needs a name`);
    return undefined;
  }
  const at = `${where} (${raw.name})`;
  const visitors = isRecord(raw.visitors) ? raw.visitors : {};
  // A property without a visitor for this protocol is only a twin: nothing to read on the device. edgecore
  // sends `visitors: {}` for those.
  const otherProtocol = typeof visitors.protocolName === 'string' && visitors.protocolName !== '' && visitors.protocolName !== protocolName;
  if (!isRecord(visitors.configData) || otherProtocol) return undefined;
  const type = normalizeType(raw.type);
  if (raw.type === undefined || raw.type === '') {
    problems.push(`${at}: no type (the Device has no DeviceModel, or its model gives the property no type); not collected`);
    return undefined;
  }
  if (!type) {
    problems.push(`${at}: type ${JSON.stringify(raw.type)} is not one of INT, FLOAT, DOUBLE, STRING, BOOLEAN, BYTES`);
    return undefined;
  }
  if (raw.accessMode !== undefined && raw.accessMode !== 'ReadWrite' && raw.accessMode !== 'ReadOnly') {
    problems.push(`${at}: accessMode ${JSON.stringify(raw.accessMode)} is not ReadWrite or ReadOnly`);
    return undefined;
  }
  return {
    name: raw.name,
    type,
    ...(raw.accessMode !== undefined && { accessMode: raw.accessMode }),
    collectCycleMs: collectCycleOf(raw.collectCycle),
    visitor: visitors.configData,
  };
}

/**
 * The Device's collectCycle in milliseconds (docs/devices.md, "Durations"): nanoseconds from 10⁸ up, as
 * KubeEdge before 1.18 counted them; 0 or absent means 1000; never below 10 ms nor above the timer limit.
 */
export function collectCycleOf(raw: unknown): number {
  return deviceDurationMs(raw, DEFAULT_COLLECT_CYCLE_MS, MIN_COLLECT_CYCLE_MS);
}
