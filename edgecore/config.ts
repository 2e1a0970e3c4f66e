import { hostname } from 'node:os';
import { loadConfig, renderDefaultConfig, type ConfigSources } from '../shared/config/loader.js';
import { oneOf, str, type ConfigOf } from '../shared/config/schema.js';
import { LOG_LEVELS } from '../shared/logger.js';
import { monitorServerConfigProblems, monitorServerConfigSchema } from '../shared/monitor/monitor-config.js';
import { deviceTwinConfigSchema } from './devicetwin/devicetwin-config.js';
import { edgedConfigProblems, edgedConfigSchema } from './edged/edged-config.js';
import { edgeHubConfigProblems, edgeHubConfigSchema } from './edgehub/edgehub-config.js';
import { eventBusConfigProblems, eventBusConfigSchema } from './eventbus/eventbus-config.js';
import { serviceBusConfigSchema } from './servicebus/servicebus-config.js';

/** Kubernetes node names are DNS-1123 subdomains. */
export const NODE_NAME_PATTERN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

function defaultNodeName(): string {
  const name = hostname()
    .toLowerCase()
    .replace(/[^-a-z0-9.]/g, '-')
    .replace(/^[-.]+|[-.]+$/g, '');
  return name || 'edge-node';
}

/**
 * Every edgecore option with its default and documentation (`edgecore --print-default-config`). Each module's
 * slice lives next to the module (`<module>/<module>-config.ts`); this file composes them.
 */
export function edgeCoreSchema() {
  return {
    logLevel: oneOf(LOG_LEVELS, 'info', 'Log level.'),
    nodeName: str(defaultNodeName(), 'Name of this edge node in the cluster (defaults to the host name).', {
      pattern: NODE_NAME_PATTERN,
      expected: 'a DNS-1123 name (lower-case letters, digits, "-" and ".")',
    }),
    database: {
      path: str('/var/lib/kubeedge/edgecore.db', 'SQLite file holding everything this node received and everything waiting to go up.'),
      synchronous: oneOf(
        ['normal', 'full'] as const,
        'normal',
        'normal survives edgecore crashes; full also survives power loss at the cost of an fsync per commit (a lost commit is healed by the resync anyway).',
      ),
    },
    // kubelet's healthz port (127.0.0.1:10248): edgecore takes kubelet's place on an edge host.
    monitorServer: monitorServerConfigSchema(10248, 'edgecore'),
    modules: {
      edged: edgedConfigSchema(),
      eventBus: eventBusConfigSchema(),
      serviceBus: serviceBusConfigSchema(),
      deviceTwin: deviceTwinConfigSchema(),
      edgeHub: edgeHubConfigSchema(),
    },
  };
}

export type EdgeCoreConfig = ConfigOf<ReturnType<typeof edgeCoreSchema>>;

export function loadEdgeCoreConfig(sources: ConfigSources): EdgeCoreConfig {
  return loadConfig(edgeCoreSchema(), sources, (c) => {
    const m = c.modules;
    const problems = [
      ...monitorServerConfigProblems(c.monitorServer, 'monitorServer'),
      ...edgedConfigProblems(m.edged, 'modules.edged'),
      ...eventBusConfigProblems(m.eventBus, 'modules.eventBus'),
      ...edgeHubConfigProblems(m.edgeHub, 'modules.edgeHub'),
    ];
    // Checks that span two slices stay here.
    if (m.deviceTwin.enable && !m.eventBus.enable) problems.push('modules.deviceTwin needs modules.eventBus (enable it, or disable deviceTwin)');
    return problems;
  });
}

export function defaultEdgeCoreConfigText(): string {
  return renderDefaultConfig(edgeCoreSchema(), 'edgecore configuration. Every key is optional; shown with its default.');
}
