import { randomUUID } from 'node:crypto';
import { ProtocolError } from '../../shared/errors.js';
import { entryId } from './device-config.js';
import type { PropertyType } from './value-codec.js';

// Payloads of KubeEdge's MQTT topics (docs/devices.md, section 3): builders for what a mapper publishes,
// parsers for what edgecore sends. Parsers throw ERR_INVALID_MESSAGE naming what was wrong.

export type DeviceState = 'online' | 'offline' | 'ok' | 'unknown' | 'unhealthy';

/** One property value as it goes into a twin/update. */
export interface ActualValue {
  name: string;
  type: PropertyType;
  value: string;
}

export interface PayloadContext {
  nowMs: number;
  eventId?: string;
}

const header = (ctx: PayloadContext): { event_id: string; timestamp: number } => ({
  event_id: ctx.eventId ?? randomUUID(),
  timestamp: ctx.nowMs,
});

export function membershipGetPayload(ctx: PayloadContext): { event_id: string } {
  return { event_id: ctx.eventId ?? randomUUID() };
}

export function twinUpdatePayload(values: readonly ActualValue[], ctx: PayloadContext): Record<string, unknown> {
  const twin: Record<string, unknown> = {};
  for (const v of values) twin[v.name] = { actual: { value: v.value }, metadata: { type: v.type } };
  return { ...header(ctx), twin };
}

export function stateUpdatePayload(state: DeviceState, ctx: PayloadContext): Record<string, unknown> {
  return { ...header(ctx), state };
}

export interface MembershipUpdate {
  added: unknown[];
  removedIds: string[];
}

/** `membership/get/result`: the raw device entries (parsed one by one, so one bad entry spoils nothing else). */
export function parseMembershipResult(payload: Buffer | string): unknown[] {
  const body = parseObject(payload, 'membership/get/result');
  if (!Array.isArray(body.devices)) throw invalid('membership/get/result: "devices" must be a list');
  return body.devices;
}

export function parseMembershipUpdated(payload: Buffer | string): MembershipUpdate {
  const body = parseObject(payload, 'membership/updated');
  const added = body.added_devices ?? [];
  const removed = body.removed_devices ?? [];
  if (!Array.isArray(added) || !Array.isArray(removed)) {
    throw invalid('membership/updated: "added_devices" and "removed_devices" must be lists');
  }
  const removedIds: string[] = [];
  for (const entry of removed) {
    const id = entryId(entry);
    if (id === undefined) throw invalid(`membership/updated: a removed device has no id: ${JSON.stringify(entry)?.slice(0, 200)}`);
    removedIds.push(id);
  }
  return { added, removedIds };
}

/** `twin/update/delta`: property → expected value. */
export function parseDelta(payload: Buffer | string): Record<string, string> {
  const body = parseObject(payload, 'twin/update/delta');
  const delta = body.delta;
  if (typeof delta !== 'object' || delta === null || Array.isArray(delta)) throw invalid('twin/update/delta: "delta" must be an object');
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(delta)) {
    if (typeof value !== 'string') throw invalid(`twin/update/delta: the value of ${JSON.stringify(name)} must be a string`);
    out[name] = value;
  }
  return out;
}

function parseObject(payload: Buffer | string, what: string): Record<string, unknown> {
  let body: unknown;
  try {
    body = JSON.parse(typeof payload === 'string' ? payload : payload.toString('utf8'));
  } catch (err) {
    throw new ProtocolError(`${what}: payload is not JSON`, 'ERR_INVALID_MESSAGE', { cause: err });
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid(`${what}: payload must be a JSON object`);
  return body as Record<string, unknown>;
}

function invalid(message: string): ProtocolError {
  return new ProtocolError(message, 'ERR_INVALID_MESSAGE');
}
