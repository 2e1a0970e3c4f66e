import { CoreError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import type { DeviceConfig, PropertyConfig } from './device-config.js';
import type { PropertyValue } from './value-codec.js';

/**
 * One device's protocol side. The framework creates one driver per device and never calls it concurrently:
 * calls are queued, so a driver needs no locking.
 *
 * Errors tell the framework what happened:
 * - `ConnectionError` or `TimeoutError` (codes ERR_CONNECTION, ERR_TIMEOUT, ERR_UNAVAILABLE): the device cannot
 *   be reached. The framework reports it `offline`, calls `close()` and `connect()` again after a backoff.
 * - `ConfigError` from `connect()`: the device's configuration is wrong. It is logged with every problem and
 *   not retried until the device's configuration changes.
 * - Anything else from `read` or `write`: that property failed (logged); the device stays connected.
 */
export interface Driver {
  /** Validates the device's protocol and visitor configuration, then opens the connection. */
  connect(device: DeviceConfig): Promise<void>;
  read(property: PropertyConfig): Promise<PropertyValue>;
  /** `value` is already converted to the property's type (`int` → integer number, `boolean` → boolean, …). */
  write(property: PropertyConfig, value: PropertyValue): Promise<void>;
  /** Idempotent; also called after a failed connect. */
  close(): Promise<void>;
}

export interface DriverContext {
  /** Bound to the device (`deviceId`). */
  logger: Logger;
}

export type CreateDriver = (context: DriverContext) => Driver;

const UNREACHABLE_CODES = new Set(['ERR_CONNECTION', 'ERR_TIMEOUT', 'ERR_UNAVAILABLE', 'ERR_SESSION_TIMEOUT']);

/** True when `err` means the device cannot be reached (see Driver). */
export function isUnreachable(err: unknown): boolean {
  return err instanceof CoreError && UNREACHABLE_CODES.has(err.code);
}
