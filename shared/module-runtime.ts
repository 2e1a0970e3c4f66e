import type { Logger } from './logger.js';
import { TimeoutError, asError } from './errors.js';

/** A daemon part with a lifecycle; its name is also its bus address, folder and log binding. */
export interface Module {
  readonly name: string;
  start(): Promise<void>;
  /** Graceful: lets in-flight work finish. Must be idempotent. */
  stop(): Promise<void>;
}

export interface ModuleRuntimeOptions {
  modules: readonly Module[];
  logger: Logger;
  /** Each module's stop() gets this long before the runtime moves on. */
  stopDeadlineMs?: number;
}

/** Starts modules in order and stops them in reverse; a failed start stops what had started and rethrows. */
export class ModuleRuntime {
  private readonly started: Module[] = [];
  private stopping: Promise<void> | undefined;
  private readonly stopDeadlineMs: number;

  constructor(private readonly options: ModuleRuntimeOptions) {
    this.stopDeadlineMs = options.stopDeadlineMs ?? 10_000;
  }

  async start(): Promise<void> {
    for (const module of this.options.modules) {
      const startedAt = performance.now();
      try {
        await module.start();
      } catch (err) {
        this.options.logger.error({ err, module: module.name }, 'module failed to start');
        await this.stop();
        throw err;
      }
      this.started.push(module);
      this.options.logger.info({ module: module.name, ms: Math.round(performance.now() - startedAt) }, 'module started');
    }
  }

  /** Idempotent; resolves once every started module has stopped or missed its deadline. */
  stop(): Promise<void> {
    this.stopping ??= this.stopAll();
    return this.stopping;
  }

  private async stopAll(): Promise<void> {
    for (const module of this.started.splice(0).reverse()) {
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new TimeoutError(`module ${module.name} did not stop within ${this.stopDeadlineMs} ms`)), this.stopDeadlineMs);
      });
      try {
        await Promise.race([module.stop(), deadline]);
        this.options.logger.info({ module: module.name }, 'module stopped');
      } catch (err) {
        this.options.logger.error({ err: asError(err), module: module.name }, 'module stop failed');
      } finally {
        clearTimeout(timer);
      }
    }
  }
}

/**
 * Runs a daemon until SIGTERM/SIGINT: then stops it and exits 0, or 1 if stopping failed. A second signal
 * exits at once.
 */
export function stopOnSignals(stop: () => Promise<void>, logger: Logger): void {
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signalled) {
      logger.warn({ signal }, 'second signal, exiting now');
      process.exit(1);
    }
    signalled = true;
    logger.info({ signal }, 'stopping');
    stop().then(
      () => {
        logger.info('stopped');
        logger.flush?.();
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'stop failed');
        logger.flush?.();
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
