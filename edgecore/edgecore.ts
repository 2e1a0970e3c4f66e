import { dirname } from 'node:path';
import { Bus } from '../shared/bus.js';
import type { Logger } from '../shared/logger.js';
import { ModuleRuntime, type Module } from '../shared/module-runtime.js';
import { softwareVersion } from '../shared/version.js';
import { directoryOpenToOthers, openDatabase, type SqliteDatabase } from '../shared/sqlite.js';
import type { EdgeCoreConfig } from './config.js';
import type { EdgeBus, EdgeInboxes } from './contracts/messages.js';
import { DeviceTwin } from './devicetwin/devicetwin.js';
import { Edged } from './edged/edged.js';
import { EventBus } from './eventbus/eventbus.js';
import { EdgeHub } from './edgehub/edgehub.js';
import { MetaManager } from './metamanager/metamanager.js';

export interface EdgeCoreOptions {
  config: EdgeCoreConfig;
  logger: Logger;
  random?: () => number;
}

/**
 * Wires edgecore's modules around one SQLite database. MetaManager starts first: DeviceTwin and EdgeHub's
 * resync read it.
 */
export class EdgeCore {
  readonly bus: EdgeBus;
  readonly database: SqliteDatabase;
  readonly metaManager: MetaManager;
  readonly edgeHub: EdgeHub;
  readonly deviceTwin: DeviceTwin | undefined;
  readonly eventBus: EventBus | undefined;
  private readonly runtime: ModuleRuntime;

  constructor(options: EdgeCoreOptions) {
    const { config, logger } = options;
    this.bus = new Bus<EdgeInboxes>({ logger: logger.child({ module: 'bus' }) });
    this.database = openDatabase(config.database.path, { synchronous: config.database.synchronous });
    // A directory that exists already keeps its mode: it may be shared (/tmp), so it is pointed out, not changed.
    if (directoryOpenToOthers(config.database.path)) {
      logger.warn({ directory: dirname(config.database.path), fix: 'chmod 700' }, 'data directory is open to other users');
    }
    this.metaManager = new MetaManager({ database: this.database, bus: this.bus, logger: logger.child({ module: 'metamanager' }) });
    this.edgeHub = new EdgeHub({
      config: config.modules.edgeHub,
      nodeName: config.nodeName,
      database: this.database,
      bus: this.bus,
      logger: logger.child({ module: 'edgehub', nodeId: config.nodeName }),
      random: options.random,
    });
    const modules: Module[] = [this.metaManager];
    // DeviceTwin loads before the broker opens (mappers find their devices) and before EdgeHub resyncs.
    if (config.modules.deviceTwin.enable) {
      this.deviceTwin = new DeviceTwin({ nodeName: config.nodeName, database: this.database, bus: this.bus, logger: logger.child({ module: 'devicetwin' }) });
      modules.push(this.deviceTwin);
    }
    if (config.modules.eventBus.enable) {
      this.eventBus = new EventBus({ config: config.modules.eventBus, bus: this.bus, logger: logger.child({ module: 'eventbus' }) });
      modules.push(this.eventBus);
    }
    modules.push(this.edgeHub);
    const ed = config.modules.edged;
    if (ed.enable) {
      const labels = Object.fromEntries(ed.nodeLabels.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
      modules.push(
        new Edged({
          nodeName: config.nodeName,
          facts: { nodeIP: ed.nodeIP, maxPods: ed.maxPods, kubeletVersion: `v1.33.13-kubeedge-ts-${softwareVersion()}`, labels },
          config: ed,
          bus: this.bus,
          logger: logger.child({ module: 'edged' }),
        }),
      );
    }
    // EdgeHub is on the bus before edged sends its first report through it.
    this.runtime = new ModuleRuntime({ modules, logger });
  }

  start(): Promise<void> {
    return this.runtime.start();
  }

  async stop(): Promise<void> {
    await this.runtime.stop();
    this.bus.close();
    if (this.database.open) this.database.close();
  }
}
