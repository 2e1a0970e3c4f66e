// KubeEdge's devices.kubeedge.io/v1beta1 objects as both daemons see them, and the device status report the
// edge sends up (docs/devices.md). Only the fields this project reads are typed; the rest passes through.

export const DEVICE_API_GROUP = 'devices.kubeedge.io';
export const DEVICE_API_VERSION = 'v1beta1';
/** Edge resource types (`<namespace>/<type>/<name>`). */
export const DEVICE_TYPE = 'device';
export const DEVICE_MODEL_TYPE = 'devicemodel';
/** Edge → cloud: the whole current status of one device. */
export const DEVICE_STATUS_TYPE = 'devicestatus';

export interface ObjectMetadata {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface VisitorConfig {
  protocolName?: string;
  configData?: Record<string, unknown>;
}

export interface DeviceProperty {
  name: string;
  desired?: { value?: string; metadata?: Record<string, string> };
  visitors?: VisitorConfig;
  /** Milliseconds, or nanoseconds from NANOSECONDS_FROM up (deviceDurationMs). */
  collectCycle?: number;
  reportCycle?: number;
  reportToCloud?: boolean;
}

export interface TwinValue {
  value: string;
  metadata?: Record<string, string>;
}

export interface DeviceTwinStatus {
  propertyName: string;
  reported?: TwinValue;
  observedDesired?: TwinValue;
}

export interface Device {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMetadata;
  spec: {
    deviceModelRef?: { name?: string };
    nodeName?: string;
    protocol?: VisitorConfig;
    properties?: DeviceProperty[];
  };
  status?: { twins?: DeviceTwinStatus[]; state?: string; lastOnlineTime?: string; conditions?: DeviceCondition[] };
}

/** A Kubernetes condition in `status.conditions`, written by cloudcore (ModelResolved). */
export interface DeviceCondition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
}

export interface ModelProperty {
  name: string;
  description?: string;
  /** INT, FLOAT, DOUBLE, STRING, BOOLEAN, BYTES, STREAM */
  type?: string;
  /** ReadWrite or ReadOnly */
  accessMode?: string;
  minimum?: string;
  maximum?: string;
  unit?: string;
}

export interface DeviceModel {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMetadata;
  spec: { protocol?: string; properties?: ModelProperty[] };
}

/** Content of a `<namespace>/devicestatus/<name>` report. */
export interface DeviceStatusReport {
  twins: DeviceTwinStatus[];
  state?: string;
  lastOnlineTime?: string;
}

/** Device states a mapper may report (KubeEdge dtcommon). */
export const DEVICE_STATES = ['online', 'offline', 'ok', 'unknown', 'unhealthy'] as const;

/** `<namespace>/<name>`: how KubeEdge names a device (and a model) in topics and tables. */
export function deviceId(object: { metadata: { namespace?: string; name?: string } }): string {
  return `${object.metadata.namespace ?? 'default'}/${object.metadata.name}`;
}

/** Longest delay Node's timers take: setTimeout turns anything above it into 1 ms (TimeoutOverflowWarning). */
export const MAX_TIMER_MS = 2 ** 31 - 1;
/**
 * From here up, a Device duration is nanoseconds. KubeEdge's mapper framework counted `collectCycle` and
 * `reportCycle` in nanoseconds up to 1.17 (its samples say `10000000000` for 10 s) and in milliseconds from
 * 1.18. 10⁸ ms would be 27.8 hours, a cycle nobody means; 10⁸ ns is 100 ms, one people do mean.
 */
export const NANOSECONDS_FROM = 100_000_000;

/**
 * A duration from a Device (collectCycle, reportCycle, stateReport.reportCycle) in milliseconds, as its
 * author meant it in either era: below 10⁸ milliseconds, from there nanoseconds; 0, absent or not a number
 * means `defaultMs`. The result is within [minMs, MAX_TIMER_MS].
 */
export function deviceDurationMs(raw: unknown, defaultMs: number, minMs: number): number {
  const n = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
  if (typeof n !== 'number' || !Number.isFinite(n) || n <= 0) return defaultMs;
  const ms = n >= NANOSECONDS_FROM ? n / 1_000_000 : n;
  return Math.min(MAX_TIMER_MS, Math.max(minMs, Math.round(ms)));
}
