import { ConfigError } from './errors.js';

/** Loads config for a CLI: on any config problem prints them all and exits 2 before anything starts. */
export function configOrExit<C>(program: string, load: () => C): C {
  try {
    return load();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${program}: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

/** Exits non-zero with a one-line reason (systemd restarts the unit): 2 for a config problem found while starting, else 1. */
export function fatal(program: string, err: unknown): never {
  if (err instanceof ConfigError) {
    process.stderr.write(`${program}: ${err.message}\n`);
    process.exit(2);
  }
  const e = err as { code?: string; message?: string };
  process.stderr.write(`${program}: ${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}\n`);
  process.exit(1);
}
