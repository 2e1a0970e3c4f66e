#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { configOrExit, fatal } from '../shared/cli.js';
import { parseDuration } from '../shared/duration.js';
import { LOG_LEVELS, createLogger } from '../shared/logger.js';
import { stopOnSignals } from '../shared/module-runtime.js';
import { createBootstrapToken, type TokenScope } from '../shared/pki/bootstrap-token.js';
import { isValidNodeName } from '../shared/pki/node-identity.js';
import { softwareVersion } from '../shared/version.js';
import { defaultCloudCoreConfigText, loadCloudCoreConfig, type CloudCoreConfig } from './config.js';
import { CloudCore, caSource } from './cloudcore.js';
import { createKubeClients } from './kube/kube-client.js';
import { LocalObjectStore } from './edgecontroller/local-object-store.js';

interface GlobalOptions {
  config?: string;
  logLevel?: string;
  kubeconfig?: string;
}

const PROGRAM = 'cloudcore';

function loadConfig(opts: GlobalOptions): CloudCoreConfig {
  const overrides: Record<string, unknown> = {};
  if (opts.logLevel) overrides.logLevel = opts.logLevel;
  if (opts.kubeconfig) overrides.kubeAPI = { kubeconfig: opts.kubeconfig };
  return configOrExit(PROGRAM, () => loadCloudCoreConfig({ file: opts.config, overrides }));
}

const program = new Command()
  .name(PROGRAM)
  .description('The cloud side of the edge platform: serves edge nodes over one secure multiplexed channel each.')
  .version(softwareVersion())
  .option('-c, --config <file>', 'YAML config file (see --print-default-config)')
  .addOption(new Option('--log-level <level>', 'overrides logLevel').choices(LOG_LEVELS))
  .option('--kubeconfig <file>', 'kubeconfig of the cluster (overrides kubeAPI.kubeconfig)')
  .option('--print-default-config', 'print a complete, commented config and exit')
  .action(async (opts: GlobalOptions & { printDefaultConfig?: boolean }) => {
    if (opts.printDefaultConfig) {
      process.stdout.write(defaultCloudCoreConfigText());
      return;
    }
    const config = loadConfig(opts);
    const logger = createLogger({ name: PROGRAM, level: config.logLevel });
    const cloudcore = configOrExit(PROGRAM, () => new CloudCore({ config, logger }));
    stopOnSignals(() => cloudcore.stop(), logger);
    try {
      await cloudcore.start();
    } catch (err) {
      logger.flush();
      fatal(PROGRAM, err);
    }
    logger.info({ version: softwareVersion() }, 'cloudcore ready');
  });

const token = program.command('token').description('join tokens for edge nodes');
token
  .command('create')
  .description(
    'print a join token (CA hash + signed JWT) for `edgecore --token`; without --node and --uses it enrols any node, ' +
      "any number of times, until it expires (KubeEdge's token)",
  )
  .option('--ttl <duration>', 'lifetime, e.g. 30m, 24h, 7d (default: modules.cloudHub.tokenTtlMinutes)')
  .option('--node <name>', 'only this node may join with the token')
  .option('--uses <n>', 'the token obtains at most n certificates (counted by every cloudcore sharing the CA)')
  .action(async (opts: { ttl?: string; node?: string; uses?: string }) => {
    const config = loadConfig(program.opts<GlobalOptions>());
    const hub = config.modules.cloudHub;
    const ttlMs = opts.ttl === undefined ? hub.tokenTtlMinutes * 60_000 : parseDuration(opts.ttl);
    if (ttlMs === undefined) {
      process.stderr.write(`${PROGRAM}: --ttl "${opts.ttl}" is not a duration like 30m, 24h or 7d\n`);
      process.exit(2);
    }
    const scope = tokenScopeOrExit(opts);
    const logger = createLogger({ name: PROGRAM, level: 'warn' });
    // The same CA as the daemon's: its files, or the cluster's Secret.
    const kube =
      config.modules.edgeController.source === 'kubernetes'
        ? configOrExit(PROGRAM, () => createKubeClients({ kubeconfig: config.kubeAPI.kubeconfig }))
        : undefined;
    try {
      const ca = await caSource(config, kube, logger).obtain();
      process.stdout.write(`${createBootstrapToken(ca.hash, ca.tokenSecret(), ttlMs, Date.now(), scope)}\n`);
    } catch (err) {
      fatal(PROGRAM, err);
    }
  });

function tokenScopeOrExit(opts: { node?: string; uses?: string }): TokenScope {
  const problems: string[] = [];
  if (opts.node !== undefined && !isValidNodeName(opts.node)) problems.push(`--node "${opts.node}" is not a valid node name (lower-case DNS subdomain)`);
  const uses = opts.uses === undefined ? undefined : Number(opts.uses);
  if (uses !== undefined && (!Number.isSafeInteger(uses) || uses < 1)) problems.push(`--uses "${opts.uses}" is not a positive integer`);
  if (problems.length > 0) {
    process.stderr.write(problems.map((p) => `${PROGRAM}: ${p}\n`).join(''));
    process.exit(2);
  }
  return { nodeName: opts.node, uses };
}

const objects = program.command('objects').description('edit the local object store (edgeController.source: local)');
const withStore = <T>(fn: (store: LocalObjectStore) => T): T => {
  const config = loadConfig(program.opts<GlobalOptions>());
  const store = new LocalObjectStore(config.modules.edgeController.localStorePath);
  try {
    return fn(store);
  } finally {
    store.close();
  }
};
objects
  .command('put <node> <key>')
  .description('create or replace an object; key is <namespace>/<type>/<name>, the object JSON comes from --file or stdin')
  .option('-f, --file <file>', 'JSON file of the object')
  .action((node: string, key: string, opts: { file?: string }) => {
    let object: unknown;
    try {
      object = JSON.parse(readFileSync(opts.file ?? 0, 'utf8'));
    } catch (err) {
      fatal(PROGRAM, new Error(`object is not valid JSON: ${(err as Error).message}`));
    }
    if (key.split('/').length !== 3 || typeof object !== 'object' || object === null)
      fatal(PROGRAM, new Error('key must be <namespace>/<type>/<name> and the object a JSON object'));
    const result = withStore((s) => s.put(node, key, object as Record<string, unknown>));
    process.stdout.write(`${JSON.stringify(result)}\n`);
  });
objects.command('delete <node> <key>').action((node: string, key: string) => {
  if (!withStore((s) => s.remove(node, key))) fatal(PROGRAM, new Error(`${node} has no object ${key}`));
});
objects.command('list [node]').action((node?: string) => {
  for (const o of withStore((s) => s.live())) if (!node || o.node === node) process.stdout.write(`${o.node}\t${o.key}\t${o.resourceVersion}\t${o.uid}\n`);
});
objects
  .command('status <node> <resource>')
  .description('print what the node last reported for a resource')
  .action((node: string, resource: string) => {
    process.stdout.write(`${JSON.stringify(withStore((s) => s.getStatus(node, resource)) ?? null, null, 2)}\n`);
  });

program.parseAsync(process.argv).catch((err: unknown) => fatal(PROGRAM, err));
