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
  /** Milliseconds. */
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
  status?: { twins?: DeviceTwinStatus[]; state?: string; lastOnlineTime?: string };
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
