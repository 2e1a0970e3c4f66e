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

/**
 * A parsed line as the reader takes it: one record is filled again for every line, and the content is a range
 * of `source` (the read buffer for CRI, a decoded copy for Docker JSON), so a line costs no allocation.
 */
export interface LogRecord {
  /** Undefined when not asked for, or for a Docker JSON line without `time` (Go's zero time). */
  time: LogTime | undefined;
  stream: string;
  source: Buffer;
  start: number;
  end: number;
}

/**
 * Parses `data[start, end)` into `into`, or returns why the kubelet would skip the line. Without `withTime`
 * the timestamp is only checked (a line with a bad one is still skipped) and `into.time` is left undefined.
 */
export type LogParser = (data: Buffer, start: number, end: number, into: LogRecord, withTime: boolean) => string | undefined;

export const emptyRecord = (): LogRecord => ({ time: undefined, stream: '', source: Buffer.alloc(0), start: 0, end: 0 });

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

/**
 * Whether `parseLogTime` accepts the latin1 text of `data[start, end)`, decided on the bytes with no allocation:
 * the check every CRI line needs even when nothing asks for its time.
 */
export function isLogTime(data: Buffer, start: number, end: number): boolean {
  const len = end - start;
  if (len < 20 || len > 35) return false;
  const year = digits(data, start, 4);
  const month = digits(data, start + 5, 2);
  const day = digits(data, start + 8, 2);
  const t = data[start + 10];
  if (data[start + 4] !== DASH || data[start + 7] !== DASH || (t !== 0x54 && t !== 0x74)) return false;
  if (data[start + 13] !== COLON || data[start + 16] !== COLON) return false;
  const hour = digits(data, start + 11, 2);
  const minute = digits(data, start + 14, 2);
  const second = digits(data, start + 17, 2);
  if (year < 0 || month < 1 || month > 12 || day < 1 || day > daysIn(year, month)) return false;
  if (hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59) return false;
  let i = start + 19;
  if (data[i] === 0x2e || data[i] === 0x2c) {
    const from = ++i;
    while (i < end && i - from < 10 && isDigit(data[i]!)) i++;
    if (i === from || i - from > 9) return false;
  }
  const zone = data[i];
  if (end - i === 1) return zone === 0x5a || zone === 0x7a;
  if (end - i !== 6 || (zone !== 0x2b && zone !== 0x2d) || data[i + 3] !== COLON) return false;
  const zoneHours = digits(data, i + 1, 2);
  const zoneMinutes = digits(data, i + 4, 2);
  return zoneHours >= 0 && zoneHours <= 24 && zoneMinutes >= 0 && zoneMinutes <= 59;
}

const DASH = 0x2d;
const COLON = 0x3a;
const isDigit = (byte: number): boolean => byte >= 0x30 && byte <= 0x39;

/** The number `count` ASCII digits at `at` spell, or −1. */
function digits(data: Buffer, at: number, count: number): number {
  let n = 0;
  for (let i = at; i < at + count; i++) {
    const byte = data[i]!;
    if (!isDigit(byte)) return -1;
    n = n * 10 + byte - 0x30;
  }
  return n;
}

/** Days of a month in the proleptic Gregorian calendar (Date's and Go's; year 0 is a leap year). */
function daysIn(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** RFC3339NanoFixed (`2006-01-02T15:04:05.000000000Z07:00`), the prefix `timestamps=true` adds. */
export function formatLogTime(time: LogTime | undefined): string {
  return time ? `${time.wall}.${time.fraction}${time.zone}` : ZERO_TIME;
}

const SPACE = 0x20;
const NEWLINE = 0x0a;
const STDOUT = Buffer.from('stdout');
const STDERR = Buffer.from('stderr');

/** `2016-10-06T00:17:09.669794202Z stdout P log content 1`; tags after `:` are ignored (forward compatible). */
export const scanCriLine: LogParser = (data, start, end, into, withTime) => {
  const timeEnd = spaceAt(data, start, end);
  if (timeEnd < 0) return 'timestamp is not found';
  if (withTime) {
    into.time = parseLogTime(data.toString('latin1', start, timeEnd));
    if (!into.time) return `unexpected timestamp format ${JSON.stringify(data.toString('latin1', start, timeEnd))}`;
  } else {
    if (!isLogTime(data, start, timeEnd)) return `unexpected timestamp format ${JSON.stringify(data.toString('latin1', start, timeEnd))}`;
    into.time = undefined;
  }
  const streamEnd = spaceAt(data, timeEnd + 1, end);
  if (streamEnd < 0) return 'stream type is not found';
  if (data.compare(STDOUT, 0, 6, timeEnd + 1, streamEnd) === 0) into.stream = 'stdout';
  else if (data.compare(STDERR, 0, 6, timeEnd + 1, streamEnd) === 0) into.stream = 'stderr';
  else return `unexpected stream type ${JSON.stringify(data.toString('latin1', timeEnd + 1, streamEnd))}`;
  const tagEnd = spaceAt(data, streamEnd + 1, end);
  if (tagEnd < 0) return 'log tag is not found';
  // The tag up to its first ':' is exactly "P".
  const partial = data[streamEnd + 1] === 0x50 && (tagEnd === streamEnd + 2 || data[streamEnd + 2] === COLON);
  // A partial line's newline is containerd's line end, not the container's: the next fragment continues it.
  into.source = data;
  into.start = tagEnd + 1;
  into.end = partial && data[end - 1] === NEWLINE ? end - 1 : end;
  return undefined;
};

/** The first space in `data[from, end)`, or −1; a loop, since the fields it looks through are a few bytes long. */
function spaceAt(data: Buffer, from: number, end: number): number {
  for (let i = from; i < end; i++) if (data[i] === SPACE) return i;
  return -1;
}

/** `{"log":"content 1","stream":"stdout","time":"2016-10-20T18:39:20.57606443Z"}` (Go's json.Unmarshal rules). */
export const scanDockerJsonLine: LogParser = (data, start, end, into) => {
  let value: unknown;
  try {
    value = JSON.parse(data.toString('utf8', start, end));
  } catch (err) {
    return `failed to unmarshal log: ${(err as Error).message}`;
  }
  into.time = undefined;
  into.stream = '';
  into.start = into.end = 0;
  if (value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) return 'log line is not a JSON object';
  const { log, stream, time } = value as Record<string, unknown>;
  if ((log != null && typeof log !== 'string') || (stream != null && typeof stream !== 'string')) return 'log and stream must be strings';
  if (time != null) {
    into.time = typeof time === 'string' ? parseLogTime(time) : undefined;
    if (!into.time) return `invalid time ${JSON.stringify(time)}`;
  }
  into.stream = stream ?? '';
  into.source = Buffer.from(log ?? '', 'utf8');
  into.end = into.source.length;
  return undefined;
};

/** One line parsed on its own, time included (tests, and anyone who wants a line as an object). */
function parseWith(scan: LogParser): (line: Buffer) => LogMessage | { error: string } {
  return (line) => {
    const r = emptyRecord();
    const error = scan(line, 0, line.length, r, true);
    return error !== undefined ? { error } : { time: r.time, stream: r.stream, content: r.source.subarray(r.start, r.end) };
  };
}

export const parseCriLine = parseWith(scanCriLine);
export const parseDockerJsonLine = parseWith(scanDockerJsonLine);

/** The kubelet picks the format once per request, by the first line it reads: the one parser that accepts it. */
export function parserFor(data: Buffer, start: number, end: number): LogParser | undefined {
  for (const parse of [scanCriLine, scanDockerJsonLine]) if (parse(data, start, end, emptyRecord(), true) === undefined) return parse;
  return undefined;
}
