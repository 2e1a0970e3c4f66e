import { watch as fsWatch, type FSWatcher } from 'node:fs';
import { open, realpath, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Writable } from 'node:stream';
import { CoreError } from '../../../shared/errors.js';
import { emptyRecord, formatLogTime, parserFor, type LogParser, type LogRecord } from './cri-log-format.js';
import type { LogOptions } from './log-options.js';
import { GatheredWriter } from './gathered-writer.js';
import { findTailStart } from './log-tail.js';

// Port of k8s.io/cri-client v0.33.13 pkg/logs/logs.go ReadLogs, NewLogOptions, logWriter.write and waitLogs
// (docs/kubeedge-stream-facts.md §4). Two departures, both about what the kubelet loses: on rotation the rest
// of the old file is read before the new one is opened, and a rotation is noticed by the path's inode
// changing (fs.watch cannot tell a create from a remove), so a missed watch event costs one poll period.

export interface LogReadDeps {
  /** Whether the container still runs; a follower stops at the end of the file once it does not. */
  isRunning(): Promise<boolean>;
  /** For sinceSeconds. */
  now?: () => Date;
  /** How often a follower looks at the file without a watch event (the kubelet's logForceCheckPeriod). */
  pollIntervalMs?: number;
  /** fs.watch, injectable so tests can take the watch away and leave only the poll. */
  watch?: (dir: string, listener: () => void) => FSWatcher;
}

export interface LogReadStats {
  /** Bytes read from log files (the tail scan included). */
  bytesRead: number;
  /** Bytes written to `out`. */
  bytesWritten: number;
  /** Lines neither format could parse (skipped, as the kubelet does). */
  badLines: number;
}

const CHUNK_BYTES = 64 * 1024;
// A line longer than this is cut (containerd splits lines at 16 KiB): a file without newlines must not make
// the edge hold it all.
const MAX_LINE_BYTES = 1024 * 1024;
const DEFAULT_POLL_MS = 1000;
const NEWLINE = 0x0a;
const NS_PER_MS = 1_000_000n;

/**
 * Writes the container's log at `path` to `out` as the kubelet would, waiting for 'drain' whenever `out` is
 * full. Resolves when done: at the end of the file; at the limit; when following, once the container stopped
 * and the file is read to its end, or `signal` aborts or `out` closes. Rejects when the file cannot be read.
 */
export async function readContainerLogs(path: string, options: LogOptions, out: Writable, deps: LogReadDeps, signal: AbortSignal): Promise<LogReadStats> {
  let resolved: string;
  try {
    resolved = await realpath(path);
  } catch (err) {
    throw new CoreError('ERR_NOT_FOUND', `failed to try resolving symlinks in path ${JSON.stringify(path)}: ${(err as Error).message}`, { cause: err });
  }
  const reader = new LogReader(resolved, options, out, deps, signal);
  try {
    await reader.run();
  } finally {
    await reader.close();
  }
  return reader.stats;
}

/** NewLogOptions: `since` is the later of now − sinceSeconds and sinceTime. */
function sinceOf(options: LogOptions, now: () => Date): bigint | undefined {
  let since = options.sinceSeconds !== undefined ? BigInt(now().getTime()) * NS_PER_MS - BigInt(options.sinceSeconds) * 1_000_000_000n : undefined;
  if (options.sinceTimeNs !== undefined && (since === undefined || options.sinceTimeNs > since)) since = options.sinceTimeNs;
  return since;
}

class LogReader {
  readonly stats: LogReadStats = { bytesRead: 0, bytesWritten: 0, badLines: 0 };
  private file: FileHandle | undefined;
  private ino = 0;
  private position = 0;
  /** Read buffer, reused: `[0, filled)` holds bytes read and not yet consumed (at most one incomplete line). */
  private input = Buffer.allocUnsafe(2 * CHUNK_BYTES);
  private filled = 0;
  private parse: LogParser | undefined;
  private readonly record: LogRecord = emptyRecord();
  /** Only `since` and `timestamps` need a line's time; without them it is checked, not parsed. */
  private readonly needTime: boolean;
  private readonly writer: GatheredWriter;
  private isNewLine = true;
  private remain: number;
  /** Lines still to write in the kubelet's limitedMode (tail without follow). */
  private left: number;
  private readonly since: bigint | undefined;
  private watcher: FSWatcher | undefined;
  private watching = false;
  /** A watch event came since the last read began. */
  private dirty = false;
  private wake: (() => void) | undefined;
  /** The path holds a new file; switch to it at the old one's end. */
  private rotated = false;

  constructor(
    private readonly path: string,
    private readonly options: LogOptions,
    private readonly out: Writable,
    private readonly deps: LogReadDeps,
    private readonly signal: AbortSignal,
  ) {
    this.remain = options.limitBytes ?? Infinity;
    this.left = options.tailLines !== undefined && !options.follow ? options.tailLines : Infinity;
    this.since = sinceOf(options, deps.now ?? (() => new Date()));
    this.needTime = this.since !== undefined || options.timestamps;
    this.writer = new GatheredWriter(out, signal);
  }

  async run(): Promise<void> {
    await this.openFile();
    this.position = await findTailStart(this.file!, this.options.tailLines, this.stats);
    try {
      await this.readAll();
    } finally {
      // Also after a read error: the kubelet handler appends the error to what was written.
      await this.writer.flush();
      this.stats.bytesWritten = this.writer.bytesWritten;
    }
  }

  private async readAll(): Promise<void> {
    let found = true;
    for (;;) {
      if (this.stopped() || this.left === 0) return;
      this.dirty = false;
      if ((await this.readChunk()) > 0) {
        if (await this.consume(false)) return;
        continue;
      }
      if (!this.options.follow) {
        // The kubelet writes an incomplete last line as it is, then stops.
        if (this.filled > 0) await this.consume(true);
        return;
      }
      // Following: what is gathered goes out before any wait; an incomplete line stays until its newline.
      await this.writer.flush();
      if (!found) return;
      if (!this.watching) {
        this.startWatching();
        continue; // read again: something may have been written before the watch began
      }
      if (this.rotated) {
        await this.switchFile();
        continue;
      }
      // The kubelet asks the runtime before each wait; a stopped container is read to the end once more.
      if (!(await this.deps.isRunning())) {
        found = false;
        continue;
      }
      if (await this.fileReplaced()) {
        this.rotated = true;
        continue; // first the rest of the old file
      }
      await this.waitForChange();
    }
  }

  async close(): Promise<void> {
    this.watcher?.close();
    this.wake?.();
    await this.file?.close().catch(() => undefined);
    this.file = undefined;
  }

  private stopped(): boolean {
    return this.writer.stopped();
  }

  private async openFile(): Promise<void> {
    try {
      this.file = await open(this.path, 'r');
      this.ino = (await this.file.stat()).ino;
    } catch (err) {
      throw new CoreError('ERR_NOT_FOUND', `failed to open log file ${JSON.stringify(this.path)}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Reads the next chunk behind what is left of the last one; returns the number of bytes read. */
  private async readChunk(): Promise<number> {
    if (this.input.length - this.filled < CHUNK_BYTES) {
      // A long incomplete line: consume cuts lines at MAX_LINE_BYTES, so this stops growing there.
      const bigger = Buffer.allocUnsafe(Math.min(MAX_LINE_BYTES + CHUNK_BYTES, Math.max(2 * this.input.length, this.filled + CHUNK_BYTES)));
      this.input.copy(bigger, 0, 0, this.filled);
      this.input = bigger;
    }
    const { bytesRead } = await this.file!.read(this.input, this.filled, CHUNK_BYTES, this.position);
    this.position += bytesRead;
    this.filled += bytesRead;
    this.stats.bytesRead += bytesRead;
    return bytesRead;
  }

  /** Gathers the complete lines read (and the rest too when `final`) and writes full buffers; true when done. */
  private async consume(final: boolean): Promise<boolean> {
    const data = this.input.subarray(0, this.filled);
    let start = 0;
    let done = false;
    while (start < data.length && !done) {
      let end = data.indexOf(NEWLINE, start) + 1;
      if (end === 0) {
        if (!final && data.length - start <= MAX_LINE_BYTES) break;
        end = Math.min(data.length, start + MAX_LINE_BYTES);
      }
      done = this.line(data, start, end);
      start = end;
    }
    this.keep(start);
    await this.writer.write();
    return done || this.stopped();
  }

  /** Moves the unconsumed rest to the front of the read buffer; a buffer grown for a long line is given up. */
  private keep(from: number): void {
    const rest = this.filled - from;
    if (this.input.length > 2 * CHUNK_BYTES && rest <= CHUNK_BYTES) {
      const smaller = Buffer.allocUnsafe(2 * CHUNK_BYTES);
      this.input.copy(smaller, 0, from, this.filled);
      this.input = smaller;
    } else {
      this.input.copyWithin(0, from, this.filled);
    }
    this.filled = rest;
  }

  /** One line of the file (the loop body of ReadLogs); true when the byte or line limit is reached. */
  private line(data: Buffer, start: number, end: number): boolean {
    this.parse ??= parserFor(data, start, end);
    if (!this.parse) {
      throw new CoreError('ERR_ILLEGAL_STATE', `failed to get parse function: unsupported log format: ${JSON.stringify(data.toString('utf8', start, end))}`);
    }
    const record = this.record;
    if (this.parse(data, start, end, record, this.needTime) !== undefined) {
      this.stats.badLines++;
      return false;
    }
    if (this.format(record)) return true;
    this.left--;
    this.isNewLine = record.end === record.start || record.source[record.end - 1] === NEWLINE;
    return this.left === 0;
  }

  /** logWriter.write: since, timestamp prefix at the start of a logical line, limitBytes; true at the limit. */
  private format(record: LogRecord): boolean {
    if (this.since !== undefined && (record.time === undefined || record.time.epochNs < this.since)) return false;
    if (record.stream !== 'stdout' && record.stream !== 'stderr')
      throw new CoreError('ERR_ILLEGAL_STATE', `unexpected stream type ${JSON.stringify(record.stream)}`);
    if (this.options.timestamps && this.isNewLine) {
      const prefix = Buffer.from(`${formatLogTime(record.time)} `, 'latin1');
      this.gather(prefix, 0, prefix.length);
    }
    this.gather(record.source, record.start, record.end);
    return this.remain <= 0;
  }

  /** Gathers `source[start, end)`, cut at limitBytes. */
  private gather(source: Buffer, start: number, end: number): void {
    end = Math.min(end, start + this.remain);
    this.remain -= end - start;
    this.writer.gather(source, start, end);
  }

  private startWatching(): void {
    this.watching = true;
    const onEvent = (): void => {
      this.dirty = true;
      this.wake?.();
    };
    try {
      this.watcher = (this.deps.watch ?? fsWatch)(dirname(this.path), onEvent);
      // inotify limits reached or the directory gone: the poll still finds every change.
      this.watcher.on('error', () => this.watcher?.close());
    } catch {
      this.watcher = undefined;
    }
  }

  /** Whether the path now names another file than the one open (rotated: renamed, and the runtime reopened). */
  private async fileReplaced(): Promise<boolean> {
    const current = await stat(this.path).catch(() => undefined);
    return current !== undefined && current.ino !== this.ino;
  }

  private async switchFile(): Promise<void> {
    this.rotated = false;
    await this.file!.close().catch(() => undefined);
    this.file = undefined;
    await this.openFile();
    this.position = 0;
    // containerd ends each record with a newline before it reopens: nothing of the old file is pending.
    this.filled = 0;
  }

  private async waitForChange(): Promise<void> {
    if (this.dirty || this.signal.aborted) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, this.deps.pollIntervalMs ?? DEFAULT_POLL_MS);
      const { signal, out } = this;
      function done(): void {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        out.off('close', done);
        resolve();
      }
      this.wake = done;
      signal.addEventListener('abort', done);
      out.on('close', done);
    });
    this.wake = undefined;
  }
}
