// KubeEdge's device and node MQTT topics (docs/devices.md, section 3): the one place their prefixes are
// written. edgecore (EventBus, DeviceTwin) and the mappers build and parse topics from these.
// KubeEdge: edge/pkg/eventbus/common/util/common.go and edge/pkg/devicetwin/dtcommon/common.go.

export const DEVICE_TOPIC_PREFIX = '$hw/events/device/';
export const NODE_TOPIC_PREFIX = '$hw/events/node/';
export const UPLOAD_TOPIC_PREFIX = '$hw/events/upload/';

/** What edgecore subscribes to (KubeEdge's list), for both device id forms (`<ns>/<name>` and `<name>`). */
export const EDGE_SUBSCRIPTIONS: readonly string[] = [
  `${DEVICE_TOPIC_PREFIX}+/+/twin/+`,
  `${DEVICE_TOPIC_PREFIX}+/twin/+`,
  `${DEVICE_TOPIC_PREFIX}+/+/state/update`,
  `${DEVICE_TOPIC_PREFIX}+/state/update`,
  `${DEVICE_TOPIC_PREFIX}+/+/updated`,
  `${DEVICE_TOPIC_PREFIX}+/updated`,
  `${NODE_TOPIC_PREFIX}+/membership/get`,
  `${UPLOAD_TOPIC_PREFIX}#`,
];

/** Topics about devices and nodes, which DeviceTwin answers. */
export function isDeviceTopic(topic: string): boolean {
  return topic.startsWith(DEVICE_TOPIC_PREFIX) || topic.startsWith(NODE_TOPIC_PREFIX);
}

export const membershipTopicBase = (node: string): string => `${NODE_TOPIC_PREFIX}${node}/membership`;
