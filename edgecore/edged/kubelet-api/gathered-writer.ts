import type { Writable } from 'node:stream';

// Output is gathered into writes of this size: fewer, larger writes down the stream relay and the channel.
const WRITE_BYTES = 64 * 1024;

/**
 * Copies byte ranges into 64 KiB buffers and writes each full one to `out`, waiting for 'drain' whenever `out`
 * is full: at most one buffer sits above its high-water mark. `flush()` writes the partial one too.
 */
export class GatheredWriter {
  /** Bytes passed to `out.write`. */
  bytesWritten = 0;
  private output: Buffer | undefined;
  private outputLength = 0;
  private readonly full: Buffer[] = [];

  constructor(
    private readonly out: Writable,
    private readonly signal: AbortSignal,
  ) {}

  /** The consumer is gone or the request aborted: nothing more is written. */
  stopped(): boolean {
    return this.signal.aborted || this.out.destroyed || this.out.writableEnded;
  }

  /** Copies `source[start, end)`; the source may be reused as soon as this returns. */
  gather(source: Buffer, start: number, end: number): void {
    while (start < end) {
      this.output ??= Buffer.allocUnsafe(WRITE_BYTES);
      const copied = source.copy(this.output, this.outputLength, start, end);
      this.outputLength += copied;
      start += copied;
      if (this.outputLength === WRITE_BYTES) this.seal();
    }
  }

  /** Writes the full buffers gathered so far. */
  write(): Promise<void> {
    return this.writeFull();
  }

  /** Writes everything gathered, the partial buffer included. */
  flush(): Promise<void> {
    this.seal();
    return this.writeFull();
  }

  /** A small buffer is copied out, so a queued write of a few bytes never pins 64 KiB. */
  private seal(): void {
    if (!this.output || this.outputLength === 0) return;
    if (this.outputLength >= WRITE_BYTES / 2) {
      this.full.push(this.output.subarray(0, this.outputLength));
      this.output = undefined;
    } else {
      this.full.push(Buffer.from(this.output.subarray(0, this.outputLength)));
    }
    this.outputLength = 0;
  }

  private async writeFull(): Promise<void> {
    for (let bytes = this.full.shift(); bytes; bytes = this.full.shift()) {
      if (this.stopped()) {
        this.full.length = 0;
        return;
      }
      this.bytesWritten += bytes.length;
      if (!this.out.write(bytes)) await this.drained();
    }
  }

  private drained(): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        this.out.off('drain', done).off('close', done).off('error', done);
        this.signal.removeEventListener('abort', done);
        resolve();
      };
      this.out.on('drain', done).on('close', done).on('error', done);
      this.signal.addEventListener('abort', done);
    });
  }
}
