import { loadConfig, renderDefaultConfig, type ConfigSources } from '../shared/config/loader.js';
import { int, oneOf, str, type ConfigOf } from '../shared/config/schema.js';
import { LOG_LEVELS } from '../shared/logger.js';
import { monitorServerConfigProblems, monitorServerConfigSchema } from '../shared/monitor/monitor-config.js';
import { cloudHubConfigProblems, cloudHubConfigSchema } from './cloudhub/cloudhub-config.js';
import { deviceControllerConfigSchema } from './devicecontroller/devicecontroller-config.js';
import { routerConfigSchema } from './router/router-config.js';
import { streamsConfigProblems, streamsConfigSchema } from './streams/streams-config.js';
import { edgeControllerConfigProblems, edgeControllerConfigSchema } from './edgecontroller/edgecontroller-config.js';

/**
 * Every cloudcore option with its default and documentation (`cloudcore --print-default-config`). Each module's
 * slice lives next to the module (`<module>/<module>-config.ts`); this file composes them.
 */
export function cloudCoreSchema() {
  return {
    logLevel: oneOf(LOG_LEVELS, 'info', 'Log level.'),
    kubeAPI: {
      kubeconfig: str('', 'kubeconfig of the cluster; empty means in-cluster (service account) when cloudcore runs in a pod.', { allowEmpty: true }),
      qps: int(100, 'Requests per second cloudcore may send to the API server (status, leases, nodes).', { min: 1 }),
      burst: int(200, 'Requests cloudcore may send at once above qps.', { min: 1 }),
    },
    // KubeEdge's cloudcore serves its metrics on 127.0.0.1:9091 too (commonConfig.monitorServer).
    monitorServer: monitorServerConfigSchema(9091, 'cloudcore'),
    modules: {
      cloudHub: cloudHubConfigSchema(),
      edgeController: edgeControllerConfigSchema(),
      deviceController: deviceControllerConfigSchema(),
      router: routerConfigSchema(),
      streams: streamsConfigSchema(),
    },
  };
}

export type CloudCoreConfig = ConfigOf<ReturnType<typeof cloudCoreSchema>>;

export function loadCloudCoreConfig(sources: ConfigSources): CloudCoreConfig {
  return loadConfig(cloudCoreSchema(), sources, (c) => [
    ...monitorServerConfigProblems(c.monitorServer, 'monitorServer'),
    ...cloudHubConfigProblems(c.modules.cloudHub, 'modules.cloudHub'),
    ...edgeControllerConfigProblems(c.modules.edgeController, 'modules.edgeController'),
    ...streamsConfigProblems(c.modules.streams, 'modules.streams'),
  ]);
}

export function defaultCloudCoreConfigText(): string {
  return renderDefaultConfig(cloudCoreSchema(), 'cloudcore configuration. Every key is optional; shown with its default.');
}
