// One base error with a stable `code`; callers and tests branch on the code, never on message text.

export type ErrorCode =
  | 'ERR_CONFIG'
  | 'ERR_PROTOCOL'
  | 'ERR_FRAME_MALFORMED'
  | 'ERR_FRAME_TOO_LARGE'
  | 'ERR_MESSAGE_TOO_LARGE'
  | 'ERR_UNKNOWN_STREAM'
  | 'ERR_FLOW_CONTROL'
  // A dynamic channel stream was reset (by the peer, or here on a protocol violation): `resetCode` says why.
  | 'ERR_STREAM_RESET'
  | 'ERR_CONNECTION'
  | 'ERR_SESSION_TIMEOUT'
  | 'ERR_GOAWAY'
  | 'ERR_AUTH'
  | 'ERR_TOKEN_MALFORMED'
  | 'ERR_TOKEN_EXPIRED'
  | 'ERR_TOKEN_SIGNATURE'
  | 'ERR_TOKEN_WRONG_NODE'
  | 'ERR_TOKEN_USED_UP'
  | 'ERR_CA_MISMATCH'
  | 'ERR_CERTIFICATE'
  | 'ERR_TIMEOUT'
  | 'ERR_NOT_FOUND'
  | 'ERR_ILLEGAL_STATE'
  | 'ERR_BUS_CLOSED'
  | 'ERR_INVALID_MESSAGE'
  | 'ERR_FORBIDDEN'
  | 'ERR_UNAVAILABLE'
  // edged: why a pod cannot start (each class also carries the kubelet reason its pod status shows).
  | 'ERR_VOLUME'
  | 'ERR_IMAGE'
  | 'ERR_CONTAINER_CONFIG'
  // A failed gRPC call before the CRI client gives it a meaning (RuntimeError).
  | 'ERR_GRPC'
  // A mapper's MQTT payload DeviceTwin refuses (the numeric result code goes back to the mapper).
  | 'ERR_TWIN_PAYLOAD'
  // Fallbacks on the wire for an error that carries no code of its own.
  | 'ERR_REPORT'
  | 'ERR_UNKNOWN';

export class CoreError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

export class ConfigError extends CoreError {
  /** Every problem found, so the operator can fix the file in one pass. */
  readonly problems: readonly string[];

  constructor(problems: readonly string[], options?: { cause?: unknown }) {
    super('ERR_CONFIG', `invalid configuration:\n  - ${problems.join('\n  - ')}`, options);
    this.problems = problems;
  }
}

export class ProtocolError extends CoreError {
  constructor(
    message: string,
    code: Extract<
      ErrorCode,
      | 'ERR_PROTOCOL'
      | 'ERR_FRAME_MALFORMED'
      | 'ERR_FRAME_TOO_LARGE'
      | 'ERR_MESSAGE_TOO_LARGE'
      | 'ERR_UNKNOWN_STREAM'
      | 'ERR_FLOW_CONTROL'
      | 'ERR_INVALID_MESSAGE'
    > = 'ERR_PROTOCOL',
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}

/** The peer reset a dynamic channel stream; `resetCode` is its ResetCode, `reason` its text. */
export class StreamResetError extends CoreError {
  constructor(
    message: string,
    readonly resetCode: number,
    readonly reason: string,
  ) {
    super('ERR_STREAM_RESET', message);
  }
}

export class ConnectionError extends CoreError {
  constructor(
    message: string,
    code: Extract<ErrorCode, 'ERR_CONNECTION' | 'ERR_SESSION_TIMEOUT' | 'ERR_GOAWAY'> = 'ERR_CONNECTION',
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}

export class AuthError extends CoreError {
  constructor(
    message: string,
    code: Extract<
      ErrorCode,
      | 'ERR_AUTH'
      | 'ERR_TOKEN_MALFORMED'
      | 'ERR_TOKEN_EXPIRED'
      | 'ERR_TOKEN_SIGNATURE'
      | 'ERR_TOKEN_WRONG_NODE'
      | 'ERR_TOKEN_USED_UP'
      | 'ERR_CA_MISMATCH'
      | 'ERR_CERTIFICATE'
    > = 'ERR_AUTH',
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}

export class TimeoutError extends CoreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_TIMEOUT', message, options);
  }
}

export class NotFoundError extends CoreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_NOT_FOUND', message, options);
  }
}

export class IllegalStateError extends CoreError {
  constructor(message: string, code: Extract<ErrorCode, 'ERR_ILLEGAL_STATE' | 'ERR_BUS_CLOSED'> = 'ERR_ILLEGAL_STATE') {
    super(code, message);
  }
}

/** Normalises anything thrown into an Error for logging under `err`. */
export function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}
