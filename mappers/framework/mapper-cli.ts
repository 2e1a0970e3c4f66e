import { Command, Option } from 'commander';
import { configOrExit, fatal } from '../../shared/cli.js';
import { ConfigError } from '../../shared/errors.js';
import { loadConfig } from '../../shared/config/loader.js';
import { oneOf, str, type ConfigOf } from '../../shared/config/schema.js';
import { LOG_LEVELS, createLogger } from '../../shared/logger.js';
import { stopOnSignals } from '../../shared/module-runtime.js';
import { softwareVersion } from '../../shared/version.js';
import type { CreateDriver } from './driver.js';
import { runMapper } from './mapper.js';

/** Kubernetes node names are DNS-1123 subdomains; they also go into MQTT topics, so no `+`, `#` or `/`. */
const NODE_NAME_PATTERN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** KubeEdge's internal broker (edgecore's eventBus in `internal` mode). */
export const DEFAULT_BROKER_URL = 'mqtt://127.0.0.1:1884';

export function mapperSchema() {
  return {
    broker: str(DEFAULT_BROKER_URL, 'MQTT broker of the node.', { pattern: /^(mqtts?|tcp|ssl|wss?):\/\/[^/\s]+\/?$/, expected: 'an mqtt://host:port URL' }),
    nodeName: str('', 'Name of the node whose devices this mapper serves (required).', {
      allowEmpty: true,
      pattern: NODE_NAME_PATTERN,
      expected: 'a DNS-1123 name (lower-case letters, digits, "-" and ".")',
    }),
    username: str('', 'MQTT username; empty means none.', { allowEmpty: true }),
    password: str('', 'MQTT password; empty means none.', { allowEmpty: true }),
    logLevel: oneOf(LOG_LEVELS, 'info', 'Log level.'),
  };
}

export type MapperCliConfig = ConfigOf<ReturnType<typeof mapperSchema>>;

/** Flag values (all strings, possibly absent) → the mapper's config, every problem reported at once (ConfigError). */
export function loadMapperConfig(flags: Record<string, string | undefined>): MapperCliConfig {
  const overrides = Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined));
  let problems = flags.nodeName ? [] : ['nodeName: --node-name is required'];
  let config: MapperCliConfig | undefined;
  try {
    config = loadConfig(mapperSchema(), { overrides });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    problems = [...problems, ...err.problems];
  }
  if (!config || problems.length > 0) throw new ConfigError(problems);
  return config;
}

export interface MapperMainOptions {
  /** Process and log name, e.g. `modbus-mapper`. */
  name: string;
  description: string;
  protocols: readonly string[];
  createDriver: CreateDriver;
}

/**
 * The whole `main` of a mapper: parses the flags (exit 2 on a bad one), runs the mapper, and on SIGTERM or
 * SIGINT stops it (closing every driver and the MQTT client) and exits 0.
 */
export function mapperMain(options: MapperMainOptions): void {
  const program = new Command()
    .name(options.name)
    .description(options.description)
    .version(softwareVersion())
    .option('--broker <url>', `MQTT broker (default ${DEFAULT_BROKER_URL})`)
    .option('--node-name <name>', 'the node whose devices to serve (required)')
    .option('--username <name>', 'MQTT username')
    .option('--password <password>', 'MQTT password')
    .addOption(new Option('--log-level <level>', 'log level (default info)').choices(LOG_LEVELS))
    .action((opts: { broker?: string; nodeName?: string; username?: string; password?: string; logLevel?: string }) => {
      const config = configOrExit(options.name, () => loadMapperConfig(opts));
      const logger = createLogger({ name: options.name, level: config.logLevel });
      const mapper = runMapper({
        nodeName: config.nodeName,
        protocols: options.protocols,
        createDriver: options.createDriver,
        broker: {
          url: config.broker,
          ...(config.username !== '' && { username: config.username }),
          ...(config.password !== '' && { password: config.password }),
        },
        logger,
      });
      stopOnSignals(() => mapper.stop(), logger);
    });
  program.parseAsync(process.argv).catch((err: unknown) => fatal(options.name, err));
}
