import { CoreError } from '../../shared/errors.js';
import { DEVICE_STATES, type Device, type DeviceStatusReport, type DeviceTwinStatus, type TwinValue } from '../../shared/device-types.js';

/**
 * The merge patch of a Device's status for one edge report. The edge sends the device's whole status, so the
 * twin list replaces the stored one. Twins of properties the Device no longer has (removed while the report
 * was on its way) are left out; anything malformed refuses the report.
 */
export function statusPatch(device: Device, content: unknown): { status: DeviceStatusReport } {
  const report = content as Partial<DeviceStatusReport> | null;
  const where = `devicestatus ${device.metadata.namespace}/${device.metadata.name}`;
  if (!report || typeof report !== 'object' || !Array.isArray(report.twins)) throw invalid(`${where}: twins must be a list`);
  const known = new Set((device.spec?.properties ?? []).map((p) => p.name));
  const twins: DeviceTwinStatus[] = [];
  report.twins.forEach((twin: Partial<DeviceTwinStatus>, i) => {
    if (!twin || typeof twin.propertyName !== 'string') throw invalid(`${where}: twins[${i}].propertyName must be a string`);
    if (!known.has(twin.propertyName)) return;
    const out: DeviceTwinStatus = { propertyName: twin.propertyName };
    if (twin.reported !== undefined) out.reported = twinValue(twin.reported, `${where}: twins[${i}].reported`);
    if (twin.observedDesired !== undefined) out.observedDesired = twinValue(twin.observedDesired, `${where}: twins[${i}].observedDesired`);
    twins.push(out);
  });
  const status: DeviceStatusReport = { twins };
  if (report.state !== undefined) {
    if (!(DEVICE_STATES as readonly string[]).includes(report.state))
      throw invalid(`${where}: state "${String(report.state)}" is not one of ${DEVICE_STATES.join(', ')}`);
    status.state = report.state;
  }
  if (report.lastOnlineTime !== undefined) {
    if (typeof report.lastOnlineTime !== 'string') throw invalid(`${where}: lastOnlineTime must be a string`);
    status.lastOnlineTime = report.lastOnlineTime;
  }
  return { status };
}

function twinValue(value: unknown, where: string): TwinValue {
  const v = value as Partial<TwinValue> | null;
  if (!v || typeof v !== 'object' || typeof v.value !== 'string') throw invalid(`${where}.value must be a string`);
  const metadata = v.metadata ?? {};
  if (typeof metadata !== 'object' || Object.values(metadata).some((m) => typeof m !== 'string'))
    throw invalid(`${where}.metadata must map strings to strings`);
  return { value: v.value, metadata };
}

function invalid(message: string): CoreError {
  return new CoreError('ERR_INVALID_MESSAGE', message);
}
