import { watch as fsWatch, type FSWatcher } from 'node:fs';
import { open, realpath, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Writable } from 'node:stream';
import { CoreError } from '../../../shared/errors.js';
import { formatLogTime, parserFor, type LogMessage, type LogParser } from './cri-log-format.js';
import type { LogOptions } from './log-options.js';
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
  private pending = Buffer.alloc(0);
  private parse: LogParser | undefined;
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
  }

  async run(): Promise<void> {
    await this.openFile();
    this.position = await findTailStart(this.file!, this.options.tailLines, this.stats);
    let found = true;
    for (;;) {
      if (this.stopped() || this.left === 0) return;
      this.dirty = false;
      const chunk = await this.readChunk();
      if (chunk.length > 0) {
        if (await this.consume(Buffer.concat([this.pending, chunk]), false)) return;
        continue;
      }
      if (!this.options.follow) {
        // The kubelet writes an incomplete last line as it is, then stops.
        if (this.pending.length > 0) await this.consume(this.pending, true);
        return;
      }
      // Following: an incomplete line stays pending until its newline arrives.
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
    return this.signal.aborted || this.out.destroyed || this.out.writableEnded;
  }

  private async openFile(): Promise<void> {
    try {
      this.file = await open(this.path, 'r');
      this.ino = (await this.file.stat()).ino;
    } catch (err) {
      throw new CoreError('ERR_NOT_FOUND', `failed to open log file ${JSON.stringify(this.path)}: ${(err as Error).message}`, { cause: err });
    }
  }

  private async readChunk(): Promise<Buffer> {
    const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
    const { bytesRead } = await this.file!.read(buffer, 0, CHUNK_BYTES, this.position);
    this.position += bytesRead;
    this.stats.bytesRead += bytesRead;
    return buffer.subarray(0, bytesRead);
  }

  /** Writes the complete lines of `data` (and the rest too when `final`); true when the reader is done. */
  private async consume(data: Buffer, final: boolean): Promise<boolean> {
    const batch: Buffer[] = [];
    let start = 0;
    let done = false;
    while (start < data.length && !done) {
      let end = data.indexOf(NEWLINE, start) + 1;
      if (end === 0) {
        if (!final && data.length - start <= MAX_LINE_BYTES) break;
        end = Math.min(data.length, start + MAX_LINE_BYTES);
      }
      done = this.line(data.subarray(start, end), batch);
      start = end;
    }
    // Copied: the rest must not pin the whole chunk it came from.
    this.pending = Buffer.from(data.subarray(start));
    await this.write(batch);
    return done || this.stopped();
  }

  /** One line of the file (the loop body of ReadLogs); true when the byte or line limit is reached. */
  private line(line: Buffer, batch: Buffer[]): boolean {
    this.parse ??= parserFor(line);
    if (!this.parse) throw new CoreError('ERR_ILLEGAL_STATE', `failed to get parse function: unsupported log format: ${JSON.stringify(line.toString('utf8'))}`);
    const msg = this.parse(line);
    if ('error' in msg) {
      this.stats.badLines++;
      return false;
    }
    if (this.format(msg, batch)) return true;
    this.left--;
    this.isNewLine = msg.content.length === 0 || msg.content[msg.content.length - 1] === NEWLINE;
    return this.left === 0;
  }

  /** logWriter.write: since, timestamp prefix at the start of a logical line, limitBytes; true at the limit. */
  private format(msg: LogMessage, batch: Buffer[]): boolean {
    if (this.since !== undefined && (msg.time === undefined || msg.time.epochNs < this.since)) return false;
    let bytes = msg.content;
    if (this.options.timestamps && this.isNewLine) bytes = Buffer.concat([Buffer.from(`${formatLogTime(msg.time)} `), bytes]);
    if (bytes.length > this.remain) bytes = bytes.subarray(0, this.remain);
    if (msg.stream !== 'stdout' && msg.stream !== 'stderr') throw new CoreError('ERR_ILLEGAL_STATE', `unexpected stream type ${JSON.stringify(msg.stream)}`);
    batch.push(bytes);
    this.remain -= bytes.length;
    return this.remain <= 0;
  }

  /** One write per chunk read; a full `out` is waited for, so at most one chunk sits above its high-water mark. */
  private async write(batch: Buffer[]): Promise<void> {
    if (batch.length === 0 || this.stopped()) return;
    const bytes = batch.length === 1 ? batch[0]! : Buffer.concat(batch);
    if (bytes.length === 0) return;
    this.stats.bytesWritten += bytes.length;
    if (this.out.write(bytes)) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        this.out.off('drain', done).off('close', done).off('error', done);
        this.signal.removeEventListener('abort', done);
        resolve();
      };
      this.out.on('drain', done).on('close', done).on('error', done);
      this.signal.addEventListener('abort', done);
    });
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
    this.pending = Buffer.alloc(0);
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
