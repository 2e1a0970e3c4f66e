// KubeEdge's MQTT topics (docs/devices.md, section 3). Device ids are `<namespace>/<name>`, so device topics
// carry two id segments, as in KubeEdge ≥ 1.17 (its EventBus subscribes `$hw/events/device/+/+/twin/+` from then on).

import { DEVICE_TOPIC_PREFIX as DEVICE_PREFIX, membershipTopicBase } from '../../shared/device-topics.js';

const DELTA_SUFFIX = '/twin/update/delta';

export const membershipGetTopic = (nodeName: string): string => `${membershipTopicBase(nodeName)}/get`;
export const membershipGetResultTopic = (nodeName: string): string => `${membershipTopicBase(nodeName)}/get/result`;
export const membershipUpdatedTopic = (nodeName: string): string => `${membershipTopicBase(nodeName)}/updated`;

/** Every device's delta, in the two-segment id form. */
export const DELTA_SUBSCRIPTION = `${DEVICE_PREFIX}+/+${DELTA_SUFFIX}`;

export const twinUpdateTopic = (deviceId: string): string => `${DEVICE_PREFIX}${deviceId}/twin/update`;
export const stateUpdateTopic = (deviceId: string): string => `${DEVICE_PREFIX}${deviceId}/state/update`;
export const twinDeltaTopic = (deviceId: string): string => `${DEVICE_PREFIX}${deviceId}${DELTA_SUFFIX}`;

/** The `<namespace>/<name>` id of a delta topic, or undefined when the topic is not one. */
export function deviceIdOfDeltaTopic(topic: string): string | undefined {
  if (!topic.startsWith(DEVICE_PREFIX) || !topic.endsWith(DELTA_SUFFIX)) return undefined;
  const id = topic.slice(DEVICE_PREFIX.length, topic.length - DELTA_SUFFIX.length);
  const segments = id.split('/');
  if (segments.length === 2 && segments.every((s) => s !== '')) return id;
  // The older mappers-go form: a single segment names a device in `default`.
  if (segments.length === 1 && segments[0] !== '') return `default/${id}`;
  return undefined;
}
