import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import type { ChannelStream } from '../../shared/channel/channel-stream.js';
import { PROTOCOL_VERSION, type Hello } from '../../shared/channel/frame.js';
import { ChannelSession, type SessionHandlers } from '../../shared/channel/session.js';
import { bindWebSocket, webSocketTransport } from '../../shared/channel/ws-transport.js';
import { testSettings, waitFor } from '../support/memory-pair.js';
import { patternBytes, sha256, writeAll } from '../support/stream-helpers.js';

const WINDOW = 256 * 1024;
const CHUNK = 16 * 1024;
const hello: Hello = { protocolVersion: PROTOCOL_VERSION, nodeName: 'node-ws', settings: testSettings, softwareVersion: 'test', sessionId: '' };
const teardown: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const step of teardown.splice(0).reverse()) await step();
});

/** A cloud and an edge session over a real `ws` WebSocket on 127.0.0.1, port 0. */
async function webSocketPair(edgeHandlers: Partial<SessionHandlers>): Promise<{ cloud: ChannelSession; edge: ChannelSession }> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  teardown.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const cloudReady = new Promise<ChannelSession>((resolve) =>
    server.once('connection', (ws) => {
      const cloud = new ChannelSession({
        role: 'server',
        settings: testSettings,
        transport: webSocketTransport(ws),
        handlers: { onHello: (peer) => ({ ...hello, nodeName: peer.nodeName, sessionId: 'ws-1' }), onMessage: () => undefined, onClose: () => undefined },
      });
      bindWebSocket(ws, cloud);
      cloud.start();
      resolve(cloud);
    }),
  );
  const { port } = server.address() as { port: number };
  const ws = new WebSocket(`ws://127.0.0.1:${port}/events`);
  teardown.push(() => ws.terminate());
  await once(ws, 'open');
  const edge = new ChannelSession({
    role: 'client',
    settings: testSettings,
    hello,
    transport: webSocketTransport(ws),
    handlers: { onHello: () => undefined, onMessage: () => undefined, onClose: () => undefined, ...edgeHandlers },
  });
  bindWebSocket(ws, edge);
  edge.start();
  const cloud = await cloudReady;
  teardown.push(() => cloud.close('test over'));
  await waitFor(() => cloud.status === 'open' && edge.status === 'open', 5000, 'websocket handshake');
  return { cloud, edge };
}

describe('dynamic stream over a real WebSocket', () => {
  it('moves 20 MiB to a slow reader without either side buffering more than a window', async () => {
    const log = patternBytes(20 * 1024 * 1024, 99);
    let edgeStream: ChannelStream | undefined;
    let drains = 0;
    let maxQueued = 0;
    const { cloud, edge } = await webSocketPair({
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
