import { bool, type ConfigOf } from '../../shared/config/schema.js';

/** DeviceController's slice of the cloudcore config (`modules.deviceController`); cloudcore's schema composes it. */
export function deviceControllerConfigSchema() {
  return {
    enable: bool(
      true,
      'Sync devices.kubeedge.io/v1beta1 Devices and DeviceModels with the nodes they name, and write device reports ' +
        'into Device status (needs edgeController.source kubernetes and the CRDs in build/crds).',
    ),
  };
}

export type DeviceControllerConfig = ConfigOf<ReturnType<typeof deviceControllerConfigSchema>>;
