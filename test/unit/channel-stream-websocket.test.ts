import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import type { ChannelStream } from '../../shared/channel/channel-stream.js';
import { waitFor } from '../support/memory-pair.js';
import { webSocketPair } from '../support/ws-pair.js';
import { patternBytes, sha256, writeAll } from '../support/stream-helpers.js';

const WINDOW = 256 * 1024;
const CHUNK = 16 * 1024;
const teardown: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const step of teardown.splice(0).reverse()) await step();
});

describe('dynamic stream over a real WebSocket', () => {
  it('moves 20 MiB to a slow reader without either side buffering more than a window', async () => {
    const log = patternBytes(20 * 1024 * 1024, 99);
    let edgeStream: ChannelStream | undefined;
    let drains = 0;
    let maxQueued = 0;
    const pair = await webSocketPair({
      onStreamOpen: (stream, header) => {
        expect(JSON.parse(Buffer.from(header).toString())).toEqual({ kind: 'logs', path: '/var/log/pods/p/c/0.log' });
        edgeStream = stream;
        stream.on('drain', () => drains++);
        const write = stream.write.bind(stream);
        // Sample the sender's queue on every write: it must stay near a chunk, whatever the reader does.
        stream.write = ((chunk: Buffer, ...rest: never[]) => {
          const ok = write(chunk, ...rest);
          maxQueued = Math.max(maxQueued, stream.queuedBytes);
          return ok;
        }) as typeof stream.write;
        void writeAll(stream, log, 64 * 1024);
      },
    });
    teardown.push(() => pair.close());
    const { cloud, edge } = pair;
    const stream = cloud.openStream(Buffer.from(JSON.stringify({ kind: 'logs', path: '/var/log/pods/p/c/0.log' })));
    const pieces: Buffer[] = [];
    let maxBuffered = 0;
    let reads = 0;
    // Not `for await`: leaving that loop destroys the stream, and this one is only half done.
    stream.on('data', (piece: Buffer) => {
      pieces.push(piece);
      maxBuffered = Math.max(maxBuffered, stream.bufferedBytes);
      // A slow consumer (think kubectl on a slow terminal): a pause every few chunks.
      if (++reads % 8 === 0) {
        stream.pause();
        void sleep(1).then(() => stream.resume());
      }
    });
    await once(stream, 'end');
    expect(sha256(Buffer.concat(pieces))).toBe(sha256(log));
    expect(maxBuffered).toBeLessThanOrEqual(WINDOW + CHUNK);
    expect(maxQueued).toBeLessThanOrEqual(64 * 1024 + 3 * CHUNK);
    expect(drains).toBeGreaterThan(0);
    // The edge's direction is done; the cloud's is still open (half-close) until it ends it too.
    await waitFor(() => edgeStream?.writableFinished === true);
    expect([...cloud.dynamicStreams()]).toEqual([stream]);
    stream.end();
    await waitFor(() => [...cloud.dynamicStreams()].length === 0 && [...edge.dynamicStreams()].length === 0 && stream.destroyed);
  });
});
