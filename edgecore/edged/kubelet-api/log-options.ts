import { parseLogTime } from './cri-log-format.js';

// The query of `GET /containerLogs/{ns}/{pod}/{container}` as the kubelet v1.33 reads it:
// kubernetes pkg/kubelet/server/server.go getContainerLogs (the `tail` alias, the status codes and bodies),
// pkg/apis/core/v1/zz_generated.conversion.go autoConvert_url_Values_To_v1_PodLogOptions with
// apimachinery pkg/runtime/conversion.go (booleans, int64) and pkg/apis/meta/v1/time.go (sinceTime), and
// pkg/apis/core/v1/validation/validation.go ValidatePodLogOptions.

/** What `kubectl logs` asked for. */
export interface LogOptions {
  follow: boolean;
  /** Read the previous (terminated) instance of the container: chooses the file, not how it is read. */
  previous: boolean;
  /** Prefix each line with its RFC3339NanoFixed time. */
  timestamps: boolean;
  /** Only lines of the last N seconds (N ≥ 1). */
  sinceSeconds?: number;
  /** Only lines at or after this instant, nanoseconds since the epoch. Exclusive with sinceSeconds. */
  sinceTimeNs?: bigint;
  /** Start at the N-th last line (N ≥ 0); without follow, stop after N lines. */
  tailLines?: number;
  /** Stop after this many output bytes (N ≥ 1; timestamp prefixes count). */
  limitBytes?: number;
  /** `stream=` as given (All, Stdout, Stderr). Only All is served: the kubelet's PodLogsQuerySplitStreams gate is off. */
  stream?: string;
}

/** A query the kubelet refuses: `status` and `error` (the response body) as the kubelet's; `detail` says why. */
export interface LogOptionsError {
  status: 400 | 422;
  error: string;
  detail: string;
}

const DECODE_ERROR = '{"message": "Unable to decode query."}';
const INVALID_ERROR = '{"message": "Invalid request."}';
const VALID_STREAMS = new Set(['All', 'Stdout', 'Stderr']);
const INT64_MAX = 2n ** 63n - 1n;
const INT64_MIN = -(2n ** 63n);

class DecodeError extends Error {}

export function parseLogOptions(query: URLSearchParams): LogOptions | LogOptionsError {
  let options: LogOptions & { sinceTimeSet: boolean };
  try {
    options = decode(query);
  } catch (err) {
    if (!(err instanceof DecodeError)) throw err;
    return { status: 400, error: DECODE_ERROR, detail: err.message };
  }
  const problem = validate(options);
  if (problem) return { status: 422, error: INVALID_ERROR, detail: problem };
  const { sinceTimeSet: _, ...valid } = options;
  return valid;
}

function decode(query: URLSearchParams): LogOptions & { sinceTimeSet: boolean } {
  const first = (name: string): string | undefined => query.get(name) ?? undefined;
  // `tail=N` is the old spelling of tailLines; `tail=all` means no tail even when tailLines is given.
  const tail = first('tail');
  let tailLines = first('tailLines');
  if (tail) tailLines = tail === 'all' ? undefined : tail;
  const sinceTime = first('sinceTime');
  const options: LogOptions & { sinceTimeSet: boolean } = {
    follow: bool(first('follow')),
    previous: bool(first('previous')),
    timestamps: bool(first('timestamps')),
    sinceTimeSet: sinceTime !== undefined,
  };
  const sinceSeconds = int64('sinceSeconds', first('sinceSeconds'));
  if (sinceSeconds !== undefined) options.sinceSeconds = sinceSeconds;
  // Empty and `null` decode to Go's zero time: set (it still excludes sinceSeconds) but filtering nothing.
  if (sinceTime && sinceTime !== 'null') {
    const parsed = parseLogTime(sinceTime);
    if (!parsed) throw new DecodeError(`sinceTime ${JSON.stringify(sinceTime)} is not RFC3339`);
    options.sinceTimeNs = parsed.epochNs;
  }
  const tailNumber = int64('tailLines', tailLines);
  if (tailNumber !== undefined) options.tailLines = tailNumber;
  const limitBytes = int64('limitBytes', first('limitBytes'));
  if (limitBytes !== undefined) options.limitBytes = limitBytes;
  const stream = first('stream');
  if (stream !== undefined) options.stream = stream;
  return options;
}

function validate(o: LogOptions & { sinceTimeSet: boolean }): string | undefined {
  if (o.tailLines !== undefined && o.tailLines < 0) return 'tailLines: must be greater than or equal to 0';
  if (o.limitBytes !== undefined && o.limitBytes < 1) return 'limitBytes: must be greater than 0';
  if (o.sinceSeconds !== undefined && o.sinceTimeSet) return 'at most one of `sinceTime` or `sinceSeconds` may be specified';
  if (o.sinceSeconds !== undefined && o.sinceSeconds < 1) return 'sinceSeconds: must be greater than 0';
  if (o.stream !== undefined && !VALID_STREAMS.has(o.stream)) return `stream: Unsupported value: ${JSON.stringify(o.stream)}`;
  if (o.stream !== undefined && o.stream !== 'All' && o.tailLines !== undefined) return '`tailLines` and specific `stream` are mutually exclusive for now';
  return undefined;
}

/** Only absent, `0` and (any case) `false` are false: `follow=` and `follow=yes` are true. */
function bool(value: string | undefined): boolean {
  return value !== undefined && value !== '0' && value.toLowerCase() !== 'false';
}

/** strconv.ParseInt(s, 10, 64); kept as a number (beyond 2^53 only the order of magnitude matters here). */
function int64(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[+-]?\d+$/.test(value)) throw new DecodeError(`${name} ${JSON.stringify(value)} is not an integer`);
  const n = BigInt(value);
  if (n > INT64_MAX || n < INT64_MIN) throw new DecodeError(`${name} ${value} is out of range`);
  return Number(n);
}
