import { CoreError, type ErrorCode } from '../../../shared/errors.js';

// gRPC status codes (grpc/doc/statuscodes.md) that change what a caller does next.
const DEADLINE_EXCEEDED = 4;
const NOT_FOUND = 5;
const PERMISSION_DENIED = 7;
const UNAVAILABLE = 14;

export type RuntimeErrorCode = Extract<ErrorCode, 'ERR_UNAVAILABLE' | 'ERR_NOT_FOUND' | 'ERR_TIMEOUT' | 'ERR_FORBIDDEN' | 'ERR_ILLEGAL_STATE'>;

/**
 * A failed CRI call. `code` is what callers branch on: ERR_UNAVAILABLE (the runtime's socket is missing or
 * the runtime is down: retry later), ERR_NOT_FOUND (no such sandbox, container or image), ERR_TIMEOUT (the
 * call's deadline passed), ERR_FORBIDDEN, and ERR_ILLEGAL_STATE for everything else the runtime refused
 * (containerd answers most failures with UNKNOWN). `grpcCode` and `runtimeMessage` keep what the runtime said.
 */
export class RuntimeError extends CoreError {
  declare readonly code: RuntimeErrorCode;
  /** The gRPC status code (5 = NOT_FOUND, 14 = UNAVAILABLE, …). */
  readonly grpcCode: number;
  /** The runtime's own message, e.g. containerd's `failed to resolve reference "…": not found`. */
  readonly runtimeMessage: string;
  /** The CRI method that failed, e.g. `RunPodSandbox`. */
  readonly method: string;

  constructor(method: string, grpcCode: number, runtimeMessage: string, options?: { cause?: unknown; subject?: string }) {
    const subject = options?.subject ? ` ${options.subject}` : '';
    super(codeFor(grpcCode), `${method}${subject}: ${runtimeMessage}`, { cause: options?.cause });
    this.grpcCode = grpcCode;
    this.runtimeMessage = runtimeMessage;
    this.method = method;
  }
}

function codeFor(grpcCode: number): RuntimeErrorCode {
  switch (grpcCode) {
    case UNAVAILABLE:
      return 'ERR_UNAVAILABLE';
    case NOT_FOUND:
      return 'ERR_NOT_FOUND';
    case DEADLINE_EXCEEDED:
      return 'ERR_TIMEOUT';
    case PERMISSION_DENIED:
      return 'ERR_FORBIDDEN';
    default:
      return 'ERR_ILLEGAL_STATE';
  }
}
