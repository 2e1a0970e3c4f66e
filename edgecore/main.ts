#!/usr/bin/env node
import { Command, Option } from 'commander';
import { configOrExit, fatal } from '../shared/cli.js';
import { LOG_LEVELS, createLogger } from '../shared/logger.js';
import { stopOnSignals } from '../shared/module-runtime.js';
import { softwareVersion } from '../shared/version.js';
import { openDatabase } from '../shared/sqlite.js';
import { defaultEdgeCoreConfigText, loadEdgeCoreConfig, type EdgeCoreConfig } from './config.js';
import { EdgeCore } from './edgecore.js';
import { MetaStore } from './metamanager/meta-store.js';

const PROGRAM = 'edgecore';

interface Options {
  config?: string;
  logLevel?: string;
  token?: string;
  nodeName?: string;
  printDefaultConfig?: boolean;
}

const program = new Command()
  .name(PROGRAM)
  .description('The edge side of the edge platform: keeps this node in step with cloudcore and works on when the cloud is away.')
  .version(softwareVersion())
  .option('-c, --config <file>', 'YAML config file (see --print-default-config)')
  .option('--token <token>', 'join token from `cloudcore token create` (first start only; overrides modules.edgeHub.token)')
  .option('--node-name <name>', 'overrides nodeName')
  .addOption(new Option('--log-level <level>', 'overrides logLevel').choices(LOG_LEVELS))
  .option('--print-default-config', 'print a complete, commented config and exit')
  .action(async (opts: Options) => {
    if (opts.printDefaultConfig) {
      process.stdout.write(defaultEdgeCoreConfigText());
      return;
    }
    const overrides: Record<string, unknown> = {};
    if (opts.logLevel) overrides.logLevel = opts.logLevel;
    if (opts.nodeName) overrides.nodeName = opts.nodeName;
    if (opts.token) overrides.modules = { edgeHub: { token: opts.token } };
    const config = configOrExit(PROGRAM, () => loadEdgeCoreConfig({ file: opts.config, overrides }));
    const logger = createLogger({ name: PROGRAM, level: config.logLevel });
    let edgecore: EdgeCore;
    try {
      edgecore = new EdgeCore({ config, logger });
      stopOnSignals(() => edgecore.stop(), logger);
      await edgecore.start();
    } catch (err) {
      logger.error({ err }, 'edgecore failed to start');
      logger.flush();
      fatal(PROGRAM, err);
    }
    logger.info({ version: softwareVersion(), nodeName: config.nodeName }, 'edgecore ready');
  });

/** Reads the edge store directly: works whether or not edgecore runs, and without the cloud. */
const withStore = <T>(fn: (store: MetaStore) => T): T => {
  const opts = program.opts<Options>();
  const config: EdgeCoreConfig = configOrExit(PROGRAM, () => loadEdgeCoreConfig({ file: opts.config }));
  const db = openDatabase(config.database.path, { synchronous: config.database.synchronous });
  try {
    return fn(new MetaStore(db));
  } finally {
    db.close();
  }
};
const objects = program.command('objects').description('what this edge holds (its SQLite store)');
objects
  .command('list [type]')
  .description('key, resourceVersion and uid of every object (of one type, e.g. pod)')
  .action((type?: string) => {
    const items = withStore((s) => (type ? s.listByType(type).map((o) => ({ key: o.key, uid: o.uid, resourceVersion: o.resourceVersion })) : s.inventory()));
    for (const o of items) process.stdout.write(`${o.key}\t${o.resourceVersion}\t${o.uid}\n`);
  });
objects
  .command('get <key>')
  .description('one object as JSON; key is <namespace>/<type>/<name>')
  .action((key: string) => {
    const object = withStore((s) => s.get(key));
    if (!object) fatal(PROGRAM, new Error(`${key} is not in the edge store`));
    process.stdout.write(`${JSON.stringify(JSON.parse(object.value.toString('utf8')), null, 2)}\n`);
  });

program.parseAsync(process.argv).catch((err: unknown) => fatal(PROGRAM, err));
