import { randomUUID } from 'node:crypto';
import { DEVICE_STATES } from '../../shared/device-types.js';
import type { Logger } from '../../shared/logger.js';
import type { EdgeMetrics } from '../metrics/edge-metrics.js';
import { twinDocument, type DeviceEntry } from './device-entry.js';
import type { TwinBatch } from './twin-batch.js';
import { TwinPayloadError, applyEdgeUpdate, deltaOf, parsePayload, parseTwinUpdate, toMsgTwin, type MsgTwin } from './twin-rules.js';
import { deviceTopicBases, parseInboundTopic } from './twin-topics.js';

export interface MqttHandlersDeps {
  nodeName: string;
  devices: ReadonlyMap<string, DeviceEntry>;
  batch: TwinBatch;
  publish(topic: string, payload: unknown): void;
  membership(): unknown[];
  logger: Logger;
  metrics?: EdgeMetrics;
}

/**
 * The answers to mappers on KubeEdge's topics. Bad input (not JSON, a wrong shape, an unknown device or
 * property) gets an error on the result topic and a log line; nothing is stored then.
 */
export class MqttHandlers {
  constructor(private readonly deps: MqttHandlersDeps) {}

  handle(topic: string, payload: Buffer): void {
    const parsed = parseInboundTopic(topic);
    if (!parsed) return;
    if (parsed.kind === 'membership-get') {
      if (parsed.node !== this.deps.nodeName) return;
      return this.answer(`${parsed.base}/get/result`, payload, () => ({ devices: this.deps.membership() }));
    }
    const entry = this.deps.devices.get(`${parsed.namespace}/${parsed.name}`);
    switch (parsed.action) {
      case 'twin-update':
        return this.answer(`${parsed.base}/twin/update/result`, payload, (body, eventId) => this.twinUpdate(known(entry, parsed), body, eventId), true);
      case 'twin-get':
        return this.answer(`${parsed.base}/twin/get/result`, payload, () => ({ twin: twinDocument(known(entry, parsed), false) }));
      case 'state-update':
        return this.answer(`${parsed.base}/state/update/result`, payload, (body) => this.stateUpdate(known(entry, parsed), body), true);
      case 'attributes-update':
        return this.answer(`${parsed.base}/updated/result`, payload, (body) => this.attributesUpdate(known(entry, parsed), body), true);
    }
  }

  /**
   * The document of the changed properties, and a delta when an expected value is not the actual one, on
   * every topic form of the device. A change from the cloud has no event of its own: it gets a fresh id, as
   * KubeEdge's BuildBaseMessage (dttype/types.go) gives one.
   */
  publishDocumentAndDelta(entry: DeviceEntry, changed: string[], previous?: Map<string, MsgTwin>, eventId: string = randomUUID()): void {
    const timestamp = Date.now();
    const twin: Record<string, { last: MsgTwin | null; current: MsgTwin }> = {};
    for (const name of changed) {
      const record = entry.twins.get(name);
      if (record) twin[name] = { last: previous?.get(name) ?? null, current: toMsgTwin(record, true) };
    }
    const delta = deltaOf(entry.twins);
    const hasDelta = Object.keys(delta).length > 0;
    for (const base of deviceTopicBases(entry.namespace, entry.name)) {
      this.deps.publish(`${base}/twin/update/document`, { event_id: eventId, timestamp, twin });
      if (hasDelta) this.deps.publish(`${base}/twin/update/delta`, { event_id: eventId, timestamp, twin: twinDocument(entry, false), delta });
    }
  }

  private twinUpdate(entry: DeviceEntry, body: Record<string, unknown>, eventId: string): Record<string, unknown> {
    const updates = parseTwinUpdate(body, new Set(entry.twins.keys()));
    const now = Date.now();
    const changed: string[] = [];
    const previous = new Map<string, MsgTwin>();
    for (const [name, update] of updates) {
      const current = entry.twins.get(name)!;
      const { record, changed: didChange } = applyEdgeUpdate(current, update, now);
      if (!didChange) continue;
      previous.set(name, toMsgTwin(current, true));
      entry.twins.set(name, record);
      this.deps.batch.twin(entry, name);
      changed.push(name);
    }
    if (changed.length > 0) {
      this.deps.metrics?.twinUpdates.edge.inc(changed.length);
      this.deps.batch.report(entry);
      this.deps.batch.then(() => this.publishDocumentAndDelta(entry, changed, previous, eventId));
    }
    return { twin: twinDocument(entry, false, updates.keys()) };
  }

  private stateUpdate(entry: DeviceEntry, body: Record<string, unknown>): Record<string, unknown> {
    const state = typeof body.state === 'string' ? body.state.toLowerCase() : undefined;
    if (!state || !(DEVICE_STATES as readonly string[]).includes(state)) throw new TwinPayloadError(`"state" must be one of ${DEVICE_STATES.join(', ')}`);
    const lastOnline = state === 'online' || state === 'ok' ? new Date().toISOString() : entry.lastOnline;
    if (state !== entry.state) this.deps.batch.report(entry);
    entry.state = state;
    entry.lastOnline = lastOnline;
    this.deps.batch.device(entry);
    // KubeEdge's DeviceCloudMsg (edge/pkg/devicetwin/dttype/types.go, built by BuildDeviceCloudMsgState in
    // dtmanager/device.go): `lastOnlineTime`, left out while empty (omitempty). Membership entries keep
    // `last_online`, as dttype.Device has it.
    return { device: { name: entry.name, state, ...(lastOnline && { lastOnlineTime: lastOnline }) } };
  }

  private attributesUpdate(entry: DeviceEntry, body: Record<string, unknown>): Record<string, unknown> {
    const attributes = body.attributes;
    if (!attributes || typeof attributes !== 'object' || Array.isArray(attributes)) throw new TwinPayloadError('"attributes" must be an object');
    const parsed = Object.entries(attributes).map(([name, raw]) => {
      const a = raw as { value?: unknown; optional?: unknown; metadata?: { type?: unknown } } | null;
      if (!/^[a-zA-Z0-9-_.,:/@#]{1,128}$/.test(name) || !a || typeof a.value !== 'string' || a.value.length > 512)
        throw new TwinPayloadError(`attribute "${name.slice(0, 140)}" must have a string value of at most 512 characters`);
      return [name, { value: a.value, optional: a.optional === true, type: typeof a.metadata?.type === 'string' ? a.metadata.type : 'string' }] as const;
    });
    for (const [name, attribute] of parsed) {
      entry.attributes.set(name, attribute);
      this.deps.batch.attribute(entry, name);
    }
    return { attributes: Object.fromEntries(parsed.map(([name, a]) => [name, { value: a.value, optional: a.optional, metadata: { type: a.type } }])) };
  }

  /**
   * Runs a handler and publishes its result (after the commit when it wrote), or the error a mapper can act
   * on: `{event_id, timestamp, code, reason}`. Handlers that write are the mapper's reports, and counted.
   */
  private answer(
    topic: string,
    payload: Buffer,
    handler: (body: Record<string, unknown>, eventId: string) => Record<string, unknown>,
    afterCommit = false,
  ): void {
    let eventId = '';
    try {
      const parsed = parsePayload(payload);
      eventId = parsed.eventId;
      const result = { event_id: eventId, timestamp: Date.now(), ...handler(parsed.body, eventId) };
      if (afterCommit) this.deps.batch.then(() => this.deps.publish(topic, result));
      else this.deps.publish(topic, result);
      if (afterCommit) this.deps.metrics?.deviceReports.ok.inc();
    } catch (err) {
      if (!(err instanceof TwinPayloadError)) throw err;
      if (afterCommit) this.deps.metrics?.deviceReports.rejected.inc();
      this.deps.logger.warn({ topic, code: err.resultCode, reason: err.message }, 'mqtt message refused');
      this.deps.publish(topic, { event_id: eventId, timestamp: Date.now(), code: err.resultCode, reason: err.message });
    }
  }
}

function known(entry: DeviceEntry | undefined, topic: { namespace: string; name: string }): DeviceEntry {
  if (!entry) throw new TwinPayloadError(`device ${topic.namespace}/${topic.name} is not on this node`, 404);
  return entry;
}
