import { Bus } from '../shared/bus.js';
import type { Logger } from '../shared/logger.js';
import { ModuleRuntime } from '../shared/module-runtime.js';
import { openDatabase, type SqliteDatabase } from '../shared/sqlite.js';
import type { EdgeCoreConfig } from './config.js';
import { EdgeHub } from './edgehub/edgehub.js';
import { MetaManager } from './metamanager/metamanager.js';

export interface EdgeCoreOptions {
  config: EdgeCoreConfig;
  logger: Logger;
  random?: () => number;
}

/** Wires edgecore's modules around one SQLite database. MetaManager starts first: EdgeHub's resync reads it. */
export class EdgeCore {
  readonly bus: Bus;
  readonly database: SqliteDatabase;
  readonly metaManager: MetaManager;
  readonly edgeHub: EdgeHub;
  private readonly runtime: ModuleRuntime;

  constructor(options: EdgeCoreOptions) {
    const { config, logger } = options;
    this.bus = new Bus({ logger: logger.child({ module: 'bus' }) });
    this.database = openDatabase(config.database.path, { synchronous: config.database.synchronous });
    this.metaManager = new MetaManager({ database: this.database, bus: this.bus, logger: logger.child({ module: 'metamanager' }) });
    this.edgeHub = new EdgeHub({ config: config.modules.edgeHub, nodeName: config.nodeName, database: this.database, bus: this.bus, logger: logger.child({ module: 'edgehub', nodeId: config.nodeName }), random: options.random });
    this.runtime = new ModuleRuntime({ modules: [this.metaManager, this.edgeHub], logger });
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
