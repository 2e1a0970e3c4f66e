// The two container log line formats the kubelet reads, ported from k8s.io/cri-client v0.33.13
// pkg/logs/logs.go (parseCRILog, parseDockerJSONLog, getParseFunc, RFC3339NanoFixed/RFC3339NanoLenient).

/** A timestamp as Go keeps it: the instant in nanoseconds, and the wall clock text it was written with. */
export interface LogTime {
  epochNs: bigint;
  /** `2026-12-04T21:40:43` in the writer's zone. */
  wall: string;
  /** Nanoseconds, 9 digits. */
  fraction: string;
  /** `Z` or `+01:00` (Go prints a zero offset as `Z`). */
  zone: string;
}

export type LogStream = 'stdout' | 'stderr';

export interface LogMessage {
  /** Undefined for a Docker JSON line without `time` (Go's zero time: before any `since`). */
  time: LogTime | undefined;
  /** What the line names; the reader refuses anything but stdout and stderr when it writes it. */
  stream: string;
  content: Buffer;
}

export type LogParser = (line: Buffer) => LogMessage | { error: string };

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$/;
const ZERO_TIME = '0001-01-01T00:00:00.000000000Z';
const NS_PER_MS = 1_000_000n;

/** Go's `time.Parse(RFC3339Nano…, s)`: fractional seconds optional, 1 to 9 digits; fields range-checked. */
export function parseLogTime(text: string): LogTime | undefined {
  const m = RFC3339.exec(text);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  // setUTCFullYear, not Date.UTC: Date.UTC reads years 0-99 as 1900-1999.
  const check = new Date(0);
  check.setUTCFullYear(year, month - 1, day);
  check.setUTCHours(hour, minute, second, 0);
  const utcMs = check.getTime();
  // Date.UTC rolls 31 April over to 1 May; Go refuses it ("day out of range").
  if (check.getUTCDate() !== day || check.getUTCMonth() !== month - 1 || hour > 23 || minute > 59 || second > 59) return undefined;
  const zoneText = m[8]!.toUpperCase();
  let offsetMinutes = 0;
  if (zoneText !== 'Z') {
    const [hh, mm] = zoneText.slice(1).split(':').map(Number) as [number, number];
    if (hh > 24 || mm > 59) return undefined;
    offsetMinutes = (zoneText[0] === '-' ? -1 : 1) * (hh * 60 + mm);
  }
  const fraction = (m[7] ?? '').padEnd(9, '0');
  const epochNs = (BigInt(utcMs) - BigInt(offsetMinutes) * 60_000n) * NS_PER_MS + BigInt(fraction);
  const wall = `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}`;
  return { epochNs, wall, fraction, zone: offsetMinutes === 0 ? 'Z' : zoneText };
}

/** RFC3339NanoFixed (`2006-01-02T15:04:05.000000000Z07:00`), the prefix `timestamps=true` adds. */
export function formatLogTime(time: LogTime | undefined): string {
  return time ? `${time.wall}.${time.fraction}${time.zone}` : ZERO_TIME;
}

const SPACE = 0x20;
const NEWLINE = 0x0a;

/** `2016-10-06T00:17:09.669794202Z stdout P log content 1`; tags after `:` are ignored (forward compatible). */
export const parseCriLine: LogParser = (line) => {
  const timeEnd = line.indexOf(SPACE);
  if (timeEnd < 0) return { error: 'timestamp is not found' };
  const timeText = line.toString('latin1', 0, timeEnd);
  const time = parseLogTime(timeText);
  if (!time) return { error: `unexpected timestamp format ${JSON.stringify(timeText)}` };
  const streamEnd = line.indexOf(SPACE, timeEnd + 1);
  if (streamEnd < 0) return { error: 'stream type is not found' };
  const stream = line.toString('latin1', timeEnd + 1, streamEnd);
  if (stream !== 'stdout' && stream !== 'stderr') return { error: `unexpected stream type ${JSON.stringify(stream)}` };
  const tagEnd = line.indexOf(SPACE, streamEnd + 1);
  if (tagEnd < 0) return { error: 'log tag is not found' };
  const partial = line.toString('latin1', streamEnd + 1, tagEnd).split(':')[0] === 'P';
  // A partial line's newline is containerd's line end, not the container's: the next fragment continues it.
  const end = partial && line[line.length - 1] === NEWLINE ? line.length - 1 : line.length;
  return { time, stream, content: line.subarray(tagEnd + 1, end) };
};

/** `{"log":"content 1","stream":"stdout","time":"2016-10-20T18:39:20.57606443Z"}` (Go's json.Unmarshal rules). */
export const parseDockerJsonLine: LogParser = (line) => {
  let value: unknown;
  try {
    value = JSON.parse(line.toString('utf8'));
  } catch (err) {
    return { error: `failed to unmarshal log: ${(err as Error).message}` };
  }
  if (value === null) return { time: undefined, stream: '', content: Buffer.alloc(0) };
  if (typeof value !== 'object' || Array.isArray(value)) return { error: 'log line is not a JSON object' };
  const { log, stream, time } = value as Record<string, unknown>;
  if ((log != null && typeof log !== 'string') || (stream != null && typeof stream !== 'string')) return { error: 'log and stream must be strings' };
  let parsed: LogTime | undefined;
  if (time != null) {
    parsed = typeof time === 'string' ? parseLogTime(time) : undefined;
    if (!parsed) return { error: `invalid time ${JSON.stringify(time)}` };
  }
  return { time: parsed, stream: stream ?? '', content: Buffer.from(log ?? '', 'utf8') };
};

/** The kubelet picks the format once per request, by the first line it reads: the one parser that accepts it. */
export function parserFor(firstLine: Buffer): LogParser | undefined {
  for (const parse of [parseCriLine, parseDockerJsonLine]) if (!('error' in parse(firstLine))) return parse;
  return undefined;
}
