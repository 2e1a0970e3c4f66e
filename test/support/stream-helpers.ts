import { createHash } from 'node:crypto';
import { once } from 'node:events';
import type { ChannelStream } from '../../shared/channel/channel-stream.js';

/** Reads a stream to its end; resolves with every byte. */
export function readAll(stream: ChannelStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('error', reject);
  });
}

/** Resolves with the error the stream is destroyed with (fails if it ends cleanly). */
export function streamError(stream: ChannelStream): Promise<Error & { code?: string; resetCode?: number; reason?: string }> {
  return new Promise((resolve, reject) => {
    stream.once('error', resolve);
    stream.once('close', () => setImmediate(() => reject(new Error(`stream ${stream.id} closed without an error`))));
  });
}

/** Writes `data` in `chunkBytes` pieces, honouring backpressure, then ends the stream. */
export async function writeAll(stream: ChannelStream, data: Buffer, chunkBytes = 16 * 1024): Promise<void> {
  for (let offset = 0; offset < data.length; offset += chunkBytes) {
    // events.once rejects on 'error' and removes both listeners afterwards.
    if (!stream.write(data.subarray(offset, offset + chunkBytes))) await once(stream, 'drain');
  }
  await new Promise<void>((resolve) => stream.end(resolve));
}

export const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

/** Deterministic pseudo-random bytes (xorshift), so a failure can be reproduced. */
export function patternBytes(length: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  let x = seed | 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 255;
  }
  return out;
}

/** Lets the event loop run `turns` times (setImmediate), for "nothing more happens" checks without timers. */
export async function turns(count: number): Promise<void> {
  for (let i = 0; i < count; i++) await new Promise((r) => setImmediate(r));
}
