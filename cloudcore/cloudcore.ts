import { Bus } from '../shared/bus.js';
import type { Logger } from '../shared/logger.js';
import { ModuleRuntime, type Module } from '../shared/module-runtime.js';
import { softwareVersion } from '../shared/version.js';
import type { CloudCoreConfig } from './config.js';
import { CloudHub, type CloudHubObserver } from './cloudhub/cloudhub.js';
import { EdgeController } from './edgecontroller/edgecontroller.js';

export interface CloudCoreOptions {
  config: CloudCoreConfig;
  logger: Logger;
  observer?: CloudHubObserver;
}

/** Wires cloudcore's modules. Controllers start before CloudHub so the first edge's resync finds them. */
export class CloudCore {
  readonly bus: Bus;
  readonly cloudHub: CloudHub;
  readonly edgeController: EdgeController | undefined;
  private readonly runtime: ModuleRuntime;

  constructor(options: CloudCoreOptions) {
    const { config, logger } = options;
    this.bus = new Bus({ logger: logger.child({ module: 'bus' }) });
    const modules: Module[] = [];
    if (config.modules.edgeController.enable) {
      this.edgeController = new EdgeController({ config: config.modules.edgeController, bus: this.bus, logger: logger.child({ module: 'edgecontroller' }) });
      modules.push(this.edgeController);
    }
    this.cloudHub = new CloudHub({ config: config.modules.cloudHub, bus: this.bus, logger: logger.child({ module: 'cloudhub' }), softwareVersion: softwareVersion(), observer: options.observer });
    modules.push(this.cloudHub);
    this.runtime = new ModuleRuntime({ modules, logger });
  }

  start(): Promise<void> {
    return this.runtime.start();
  }

  async stop(): Promise<void> {
    await this.runtime.stop();
    this.bus.close();
  }
}
