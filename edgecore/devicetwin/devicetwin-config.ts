import { bool, type ConfigOf } from '../../shared/config/schema.js';

/** DeviceTwin's slice of the edgecore config (`modules.deviceTwin`); edgecore's schema composes it. */
export function deviceTwinConfigSchema() {
  return {
    enable: bool(true, "Keep device twins in the edge store and speak KubeEdge's device MQTT topics (needs eventBus)."),
  };
}

export type DeviceTwinConfig = ConfigOf<ReturnType<typeof deviceTwinConfigSchema>>;
