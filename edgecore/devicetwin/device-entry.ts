import type { Device, DeviceModel, DeviceStatusReport, DeviceTwinStatus, VisitorConfig } from '../../shared/device-types.js';
import type { AttributeRow } from './twin-store.js';
import { toMsgTwin, type MsgTwin, type TwinRecord } from './twin-rules.js';

/** What DeviceTwin knows of one device: its object (from the edge store), twins, attributes and state. */
export interface DeviceEntry {
  /** `<namespace>/<name>` */
  id: string;
  namespace: string;
  name: string;
  device: Device;
  twins: Map<string, TwinRecord>;
  attributes: Map<string, AttributeRow>;
  state: string;
  lastOnline: string;
}

/** A device in membership payloads: KubeEdge's fields plus its configuration (docs/devices.md). */
export interface MembershipDevice {
  id: string;
  name: string;
  namespace: string;
  description: string;
  state: string;
  last_online: string;
  model: string;
  protocol: VisitorConfig;
  properties: MembershipProperty[];
  attributes: Record<string, { value: string; optional: boolean; metadata: { type: string } }>;
  twin: Record<string, MsgTwin>;
}

export interface MembershipProperty {
  name: string;
  type: string;
  accessMode: string;
  unit: string;
  minimum: string;
  maximum: string;
  collectCycle: number;
  reportCycle: number;
  reportToCloud: boolean;
  visitors: VisitorConfig;
  desired: { value: string; metadata: Record<string, string> };
}

export function membershipDevice(entry: DeviceEntry, model: DeviceModel | undefined): MembershipDevice {
  const spec = entry.device.spec ?? {};
  const modelProps = new Map((model?.spec.properties ?? []).map((p) => [p.name, p]));
  return {
    id: entry.id,
    name: entry.name,
    namespace: entry.namespace,
    description: entry.device.metadata.labels?.description ?? '',
    state: entry.state,
    last_online: entry.lastOnline,
    model: spec.deviceModelRef?.name ?? '',
    protocol: spec.protocol ?? {},
    properties: (spec.properties ?? []).map((p) => {
      const m = modelProps.get(p.name);
      return {
        name: p.name,
        // Empty without a model or a model type: the mapper then says why it does not collect the property
        // (cloudcore says it in the Device's status, condition ModelResolved).
        type: m?.type ?? '',
        accessMode: m?.accessMode ?? 'ReadWrite',
        unit: m?.unit ?? '',
        minimum: m?.minimum ?? '',
        maximum: m?.maximum ?? '',
        collectCycle: p.collectCycle ?? 0,
        reportCycle: p.reportCycle ?? 0,
        reportToCloud: p.reportToCloud ?? false,
        visitors: p.visitors ?? {},
        desired: { value: p.desired?.value ?? '', metadata: p.desired?.metadata ?? {} },
      };
    }),
    attributes: Object.fromEntries([...entry.attributes].map(([name, a]) => [name, { value: a.value, optional: a.optional, metadata: { type: a.type } }])),
    twin: twinDocument(entry, false),
  };
}

export function twinDocument(entry: DeviceEntry, withVersions: boolean, only?: Iterable<string>): Record<string, MsgTwin> {
  const names = only ? [...only] : [...entry.twins.keys()];
  return Object.fromEntries(names.map((name) => [name, toMsgTwin(entry.twins.get(name)!, withVersions)]));
}

/** The device's whole status for the cloud (`<namespace>/devicestatus/<name>`). */
export function statusReport(entry: DeviceEntry): DeviceStatusReport {
  const twins: DeviceTwinStatus[] = [];
  for (const [propertyName, t] of entry.twins) {
    if (!t.actual && !t.expected) continue;
    const twin: DeviceTwinStatus = { propertyName };
    if (t.actual) twin.reported = { value: t.actual.value, metadata: { timestamp: String(t.actual.timestamp), type: t.type } };
    if (t.expected) twin.observedDesired = { value: t.expected.value, metadata: { timestamp: String(t.expected.timestamp), type: t.type } };
    twins.push(twin);
  }
  const report: DeviceStatusReport = { twins, state: entry.state };
  if (entry.lastOnline) report.lastOnlineTime = entry.lastOnline;
  return report;
}
