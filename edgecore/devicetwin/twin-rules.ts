// KubeEdge's twin rules (edge/pkg/devicetwin/dtmanager/twin.go, dtcommon/util.go): what an update may hold,
// how values and versions move, and the MsgTwin JSON that goes over MQTT. Pure functions, no I/O.

import { CoreError } from '../../shared/errors.js';

export interface TwinVersion {
  cloud: number;
  edge: number;
}

export interface TwinValue {
  value: string;
  /** Epoch ms of the change. */
  timestamp: number;
}

export interface TwinRecord {
  expected?: TwinValue;
  actual?: TwinValue;
  expectedVersion: TwinVersion;
  actualVersion: TwinVersion;
  optional: boolean;
  /** `metadata.type`: int, float, boolean, string … */
  type: string;
}

/** The MsgTwin of KubeEdge's MQTT payloads. */
export interface MsgTwin {
  expected?: { value: string; metadata: { timestamp: number } };
  actual?: { value: string; metadata: { timestamp: number } };
  optional: boolean;
  metadata: { type: string };
  expected_version?: TwinVersion;
  actual_version?: TwinVersion;
}

/**
 * A payload a mapper sent that cannot be applied. `resultCode` is the `code` of KubeEdge's result that goes
 * back to the mapper (400, 404); `code` is the stable ERR_TWIN_PAYLOAD like every CoreError.
 */
export class TwinPayloadError extends CoreError {
  constructor(
    message: string,
    readonly resultCode: 400 | 404 = 400,
  ) {
    super('ERR_TWIN_PAYLOAD', message);
  }
}

const KEY_PATTERN = /^[a-zA-Z0-9-_.,:/@#]{1,128}$/;
const MAX_VALUE_LENGTH = 512;

export const emptyTwin = (type = 'string'): TwinRecord => ({
  expectedVersion: { cloud: 0, edge: 0 },
  actualVersion: { cloud: 0, edge: 0 },
  optional: true,
  type,
});

/** The JSON object a payload must be, with its event id; anything else is a 400. */
export function parsePayload(payload: Buffer): { eventId: string; body: Record<string, unknown> } {
  let body: unknown;
  try {
    body = JSON.parse(payload.toString('utf8'));
  } catch {
    throw new TwinPayloadError(`payload is not JSON: ${JSON.stringify(payload.subarray(0, 60).toString('utf8'))}`);
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new TwinPayloadError('payload must be a JSON object');
  const eventId = (body as { event_id?: unknown }).event_id;
  return { eventId: typeof eventId === 'string' ? eventId : '', body: body as Record<string, unknown> };
}

/**
 * Checks the `twin` map of a twin/update against the device's properties; returns the entries to apply.
 * Numbers and booleans are taken as their string form (KubeEdge would refuse them; mappers written against
 * other brokers commonly send them).
 */
export function parseTwinUpdate(
  body: Record<string, unknown>,
  properties: ReadonlySet<string>,
): Map<string, { expected?: string; actual?: string; type?: string; optional?: boolean }> {
  const twin = body.twin;
  if (!twin || typeof twin !== 'object' || Array.isArray(twin)) throw new TwinPayloadError('"twin" must be an object of properties');
  const updates = new Map<string, { expected?: string; actual?: string; type?: string; optional?: boolean }>();
  for (const [name, raw] of Object.entries(twin)) {
    if (!KEY_PATTERN.test(name)) throw new TwinPayloadError(`twin key "${name.slice(0, 140)}" does not match ${KEY_PATTERN}`);
    if (!properties.has(name)) throw new TwinPayloadError(`the device has no property "${name}"`);
    if (!raw || typeof raw !== 'object') throw new TwinPayloadError(`twin.${name} must be an object`);
    const entry = raw as { expected?: unknown; actual?: unknown; metadata?: { type?: unknown }; optional?: unknown };
    const update: { expected?: string; actual?: string; type?: string; optional?: boolean } = {};
    if (entry.expected !== undefined) update.expected = valueOf(entry.expected, `twin.${name}.expected`);
    if (entry.actual !== undefined) update.actual = valueOf(entry.actual, `twin.${name}.actual`);
    if (entry.metadata?.type !== undefined) {
      if (typeof entry.metadata.type !== 'string') throw new TwinPayloadError(`twin.${name}.metadata.type must be a string`);
      update.type = entry.metadata.type;
    }
    if (typeof entry.optional === 'boolean') update.optional = entry.optional;
    if (update.expected === undefined && update.actual === undefined && update.type === undefined)
      throw new TwinPayloadError(`twin.${name} has neither expected nor actual`);
    updates.set(name, update);
  }
  if (updates.size === 0) throw new TwinPayloadError('"twin" names no property');
  return updates;
}

function valueOf(raw: unknown, where: string): string {
  const v = (raw as { value?: unknown } | null)?.value;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (typeof v !== 'string') throw new TwinPayloadError(`${where}.value must be a string`);
  if (v.length > MAX_VALUE_LENGTH) throw new TwinPayloadError(`${where}.value is longer than ${MAX_VALUE_LENGTH} characters`);
  return v;
}

/** An update from the edge (mapper): a changed value gets a new timestamp and `edge + 1`. */
export function applyEdgeUpdate(
  current: TwinRecord,
  update: { expected?: string; actual?: string; type?: string; optional?: boolean },
  nowMs: number,
): { record: TwinRecord; changed: boolean } {
  const record: TwinRecord = { ...current, expectedVersion: { ...current.expectedVersion }, actualVersion: { ...current.actualVersion } };
  let changed = false;
  if (update.actual !== undefined && update.actual !== current.actual?.value) {
    record.actual = { value: update.actual, timestamp: nowMs };
    record.actualVersion.edge++;
    changed = true;
  }
  if (update.expected !== undefined && update.expected !== current.expected?.value) {
    record.expected = { value: update.expected, timestamp: nowMs };
    record.expectedVersion.edge++;
    changed = true;
  }
  // A mapper's metadata.type never replaces the stored type: KubeEdge's dealTwinCompare (dtmanager/twin.go)
  // takes it only for a twin whose type is "deleted". The type comes from the DeviceModel.
  if (update.optional !== undefined) record.optional = update.optional;
  return { record, changed };
}

/** A desired value from the cloud (the Device's `desired.value`): `cloud + 1` when it changed; empty clears. */
export function applyDesired(current: TwinRecord, desired: string | undefined, nowMs: number): { record: TwinRecord; changed: boolean } {
  const value = desired === '' ? undefined : desired;
  if (value === current.expected?.value) return { record: current, changed: false };
  const record: TwinRecord = { ...current, expectedVersion: { ...current.expectedVersion, cloud: current.expectedVersion.cloud + 1 } };
  if (value === undefined) delete record.expected;
  else record.expected = { value, timestamp: nowMs };
  return { record, changed: true };
}

export function toMsgTwin(record: TwinRecord, withVersions: boolean): MsgTwin {
  const msg: MsgTwin = { optional: record.optional, metadata: { type: record.type } };
  if (record.expected) msg.expected = { value: record.expected.value, metadata: { timestamp: record.expected.timestamp } };
  if (record.actual) msg.actual = { value: record.actual.value, metadata: { timestamp: record.actual.timestamp } };
  if (withVersions) {
    msg.expected_version = record.expectedVersion;
    msg.actual_version = record.actualVersion;
  }
  return msg;
}

/** The properties whose expected value differs from the actual one: what a mapper must still write. */
export function deltaOf(twins: ReadonlyMap<string, TwinRecord>): Record<string, string> {
  const delta: Record<string, string> = {};
  for (const [name, t] of twins) if (t.expected && t.expected.value !== t.actual?.value) delta[name] = t.expected.value;
  return delta;
}

/** metadata.type of a model property type (INT → int …), as KubeEdge's mappers write it. */
export function twinTypeOf(modelType: string | undefined): string {
  return (modelType ?? 'string').toLowerCase();
}
