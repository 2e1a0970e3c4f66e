// KubeEdge's device and node MQTT topics. A device id is `<namespace>/<name>` (two topic segments, KubeEdge
// ≥ 1.17); the older one-segment form names a device in `default`. Replies go to the form the request used;
// documents and deltas to both (deviceTopicBases).

import { DEVICE_TOPIC_PREFIX as DEVICE_PREFIX, NODE_TOPIC_PREFIX as NODE_PREFIX } from '../../shared/device-topics.js';

export { membershipTopicBase } from '../../shared/device-topics.js';

export type DeviceAction = 'twin-update' | 'twin-get' | 'state-update' | 'attributes-update';

export type InboundTopic =
  { kind: 'device'; action: DeviceAction; namespace: string; name: string; base: string } | { kind: 'membership-get'; node: string; base: string };

const ACTIONS: ReadonlyArray<[string, DeviceAction]> = [
  ['/twin/update', 'twin-update'],
  ['/twin/get', 'twin-get'],
  ['/state/update', 'state-update'],
  ['/updated', 'attributes-update'],
];

/** The device or node a topic is about and what is asked; undefined for topics edgecore does not answer. */
export function parseInboundTopic(topic: string): InboundTopic | undefined {
  if (topic.startsWith(NODE_PREFIX) && topic.endsWith('/membership/get')) {
    const node = topic.slice(NODE_PREFIX.length, -'/membership/get'.length);
    return node && !node.includes('/') ? { kind: 'membership-get', node, base: topic.slice(0, -'/get'.length) } : undefined;
  }
  if (!topic.startsWith(DEVICE_PREFIX)) return undefined;
  for (const [suffix, action] of ACTIONS) {
    if (!topic.endsWith(suffix)) continue;
    const id = topic.slice(DEVICE_PREFIX.length, -suffix.length);
    const parts = id.split('/');
    if (parts.some((p) => p.length === 0) || parts.length > 2) return undefined;
    const [namespace, name] = parts.length === 2 ? (parts as [string, string]) : ['default', parts[0]!];
    return { kind: 'device', action, namespace, name, base: `${DEVICE_PREFIX}${id}` };
  }
  return undefined;
}

export const deviceTopicBase = (namespace: string, name: string): string => `${DEVICE_PREFIX}${namespace}/${name}`;

/**
 * Where what edgecore says on its own (documents, deltas) goes: the two-segment form, and for a device in
 * `default` also the one-segment form. KubeEdge before 1.17 named devices by name alone, so mappers of that
 * era subscribe `$hw/events/device/<name>/twin/update/delta`; one that has never published (a pure actuator)
 * cannot be told apart, so both forms get it.
 */
export function deviceTopicBases(namespace: string, name: string): string[] {
  const bases = [deviceTopicBase(namespace, name)];
  if (namespace === 'default') bases.push(`${DEVICE_PREFIX}${name}`);
  return bases;
}
