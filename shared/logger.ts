import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LoggerOptions {
  /** Process name bound on every line (`cloudcore`, `edgecore`). */
  name: string;
  level: LogLevel;
  /** Defaults to stdout; tests pass a stream to capture lines. */
  destination?: DestinationStream;
}

/**
 * Names that hold a secret wherever they appear in this codebase: join tokens (edgeHub.token, CertManager's
 * `token`/`bearer`), MQTT passwords (eventBus, mapper brokers), PEM private keys (`keyPem` of TLS material
 * and CAs) and Authorization headers. Not listed on purpose: `key`, which is an object key
 * `<ns>/<type>/<name>` in queue and store logs, and `keyFile`/`caKeyFile`/`serverKeyFile`, which are paths.
 */
const SECRET_FIELDS = ['token', 'bearer', 'password', 'keyPem', 'privateKey', 'authorization', 'Authorization'];

/**
 * Where those secrets sit: at the top of a log object or one level down (`{ broker: { password } }`, a
 * serialized `err`), request headers one level further (`req.headers`, `err.headers`, https options), and
 * edgecore's config, or the `--token` override, logged whole. Paths, not a deep wildcard: a deep match
 * would also hide the data a log line is for.
 */
const REDACT_PATHS: readonly string[] = [
  ...SECRET_FIELDS,
  ...SECRET_FIELDS.map((f) => `*.${f}`),
  '*.headers.authorization',
  '*.headers.Authorization',
  'config.modules.edgeHub.token',
  'config.modules.eventBus.internal.password',
  'config.modules.eventBus.external.password',
  'modules.edgeHub.token',
  'modules.eventBus.internal.password',
  'modules.eventBus.external.password',
];

/** The one root logger of a process; modules take `root.child({ module })`. */
export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      name: options.name,
      level: options.level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Children inherit it, bindings included: a secret never reaches a log line.
      redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
    },
    options.destination ?? pino.destination({ fd: 1, sync: false }),
  );
}

/** A logger that drops everything; for library use without a process root and for quiet tests. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
