import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Bus } from '../shared/bus.js';
import type { Logger } from '../shared/logger.js';
import { ModuleRuntime, type Module } from '../shared/module-runtime.js';
import { MonitorServer } from '../shared/monitor/monitor-server.js';
import { softwareVersion } from '../shared/version.js';
import { directoryOpenToOthers, openDatabase, type SqliteDatabase } from '../shared/sqlite.js';
import type { EdgeCoreConfig } from './config.js';
import type { EdgeBus, EdgeInboxes } from './contracts/messages.js';
import { DeviceTwin } from './devicetwin/devicetwin.js';
import { Edged } from './edged/edged.js';
import { EventBus } from './eventbus/eventbus.js';
import { ServiceBus } from './servicebus/servicebus.js';
import { EdgeHub } from './edgehub/edgehub.js';
import { MetaManager } from './metamanager/metamanager.js';
import { EdgeMetrics } from './metrics/edge-metrics.js';

export interface EdgeCoreOptions {
  config: EdgeCoreConfig;
  logger: Logger;
  random?: () => number;
  /** Defaults to one on a registry of its own (the process metrics included). */
  metrics?: EdgeMetrics;
}

/**
 * Wires edgecore's modules around one SQLite database and one set of metrics. The monitor server starts
 * first and stops last, so /readyz is seen failing around the others; then MetaManager: DeviceTwin and
 * EdgeHub's resync read it.
 */
export class EdgeCore {
  readonly bus: EdgeBus;
  readonly database: SqliteDatabase;
  readonly metaManager: MetaManager;
  readonly edgeHub: EdgeHub;
  readonly deviceTwin: DeviceTwin | undefined;
  readonly eventBus: EventBus | undefined;
  /** When modules.edged is enabled: serves the kubelet API on the cloud's streams. */
  readonly edged: Edged | undefined;
  readonly metrics: EdgeMetrics;
  readonly monitor: MonitorServer;
  private readonly runtime: ModuleRuntime;
  private readonly shutdownDelayMs: number;

  constructor(options: EdgeCoreOptions) {
    const { config, logger } = options;
    const metrics = (this.metrics = options.metrics ?? new EdgeMetrics());
    this.bus = new Bus<EdgeInboxes>({ logger: logger.child({ module: 'bus' }) });
    this.database = openDatabase(config.database.path, { synchronous: config.database.synchronous });
    // A directory that exists already keeps its mode: it may be shared (/tmp), so it is pointed out, not changed.
    if (directoryOpenToOthers(config.database.path)) {
      logger.warn({ directory: dirname(config.database.path), fix: 'chmod 700' }, 'data directory is open to other users');
    }
    this.monitor = new MonitorServer({ config: config.monitorServer, registry: metrics.registry, logger: logger.child({ module: 'monitor' }) });
    this.shutdownDelayMs = config.monitorServer.shutdownDelaySeconds * 1000;
    const ping = this.database.prepare('SELECT 1');
    this.monitor.addReadiness('store', () => (this.database.open && ping.get() !== undefined ? undefined : 'the SQLite database is closed'));
    this.metaManager = new MetaManager({ database: this.database, bus: this.bus, logger: logger.child({ module: 'metamanager' }), metrics });
    this.edgeHub = new EdgeHub({
      config: config.modules.edgeHub,
      nodeName: config.nodeName,
      database: this.database,
      bus: this.bus,
      logger: logger.child({ module: 'edgehub', nodeId: config.nodeName }),
      random: options.random,
      metrics,
      serviceCallTimeoutMs: config.modules.serviceBus.timeout * 1000 + 5_000,
      // The cloud's kubelet connections (issue 13) go to edged, which serves the kubelet API.
      onStream: (stream, header) => {
        if (!this.edged) throw new Error(`edged is not enabled on node ${config.nodeName}`);
        this.edged.acceptStream(stream, header);
      },
    });
    const modules: Module[] = [this.monitor, this.metaManager];
    // DeviceTwin loads before the broker opens (mappers find their devices) and before EdgeHub resyncs.
    if (config.modules.deviceTwin.enable) {
      this.deviceTwin = new DeviceTwin({
        nodeName: config.nodeName,
        database: this.database,
        bus: this.bus,
        logger: logger.child({ module: 'devicetwin' }),
        metrics,
      });
      modules.push(this.deviceTwin);
    }
    if (config.modules.eventBus.enable) {
      this.eventBus = new EventBus({ config: config.modules.eventBus, bus: this.bus, logger: logger.child({ module: 'eventbus' }), metrics });
      modules.push(this.eventBus);
    }
    if (config.modules.serviceBus.enable) {
      modules.push(new ServiceBus({ config: config.modules.serviceBus, bus: this.bus, logger: logger.child({ module: 'servicebus' }) }));
    }
    modules.push(this.edgeHub);
    const ed = config.modules.edged;
    if (ed.enable) {
      const labels = Object.fromEntries(ed.nodeLabels.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
      const edged = new Edged({
        nodeName: config.nodeName,
        facts: {
          nodeIP: ed.nodeIP,
          hostnameOverride: ed.hostnameOverride,
          kubeletPort: ed.kubeletPort,
          maxPods: ed.maxPods,
          kubeletVersion: `v1.33.13-kubeedge-ts-${softwareVersion()}`,
          labels,
        },
        config: ed,
        bus: this.bus,
        logger: logger.child({ module: 'edged' }),
        metrics,
      });
      modules.push(edged);
      this.edged = edged;
      // Without an endpoint edged reports the node only: there is no runtime to wait for.
      if (ed.runtimeEndpoint) this.monitor.addReadiness('cri', () => edged.runtimeNotReady());
    }
    // EdgeHub is on the bus before edged sends its first report through it.
    this.runtime = new ModuleRuntime({ modules, logger });
  }

  start(): Promise<void> {
    return this.runtime.start();
  }

  /** /readyz turns 503 first and stays so for `monitorServer.shutdownDelaySeconds`, then the modules stop. */
  async stop(): Promise<void> {
    this.monitor.drain();
    if (this.shutdownDelayMs > 0) await sleep(this.shutdownDelayMs);
    await this.runtime.stop();
    this.bus.close();
    if (this.database.open) this.database.close();
  }
}
