import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { decodeFrames, encodeFrames } from '../../shared/channel/codec.js';
import type { ChannelStream } from '../../shared/channel/channel-stream.js';
import { FrameType, ResetCode, type Frame } from '../../shared/channel/frame.js';
import { ConnectionError, ProtocolError, StreamResetError } from '../../shared/errors.js';
import { memoryPair, waitFor } from '../support/memory-pair.js';
import { patternBytes, readAll, sha256, streamError, turns, writeAll } from '../support/stream-helpers.js';

type PairOptions = Parameters<typeof memoryPair>[0];
type Accepted = { stream: ChannelStream; header: string };

/** A started pair whose sides collect the dynamic streams their peer opens. */
async function openPair(opts: PairOptions = {}): Promise<ReturnType<typeof memoryPair> & { atServer: Accepted[]; atClient: Accepted[] }> {
  const atServer: Accepted[] = [];
  const atClient: Accepted[] = [];
  const pair = memoryPair({
    ...opts,
    serverHandlers: { onStreamOpen: (stream, header) => void atServer.push({ stream, header: Buffer.from(header).toString() }), ...opts.serverHandlers },
    clientHandlers: { onStreamOpen: (stream, header) => void atClient.push({ stream, header: Buffer.from(header).toString() }), ...opts.clientHandlers },
  });
  pair.server.session.start();
  pair.client.session.start();
  await waitFor(() => pair.client.session.status === 'open' && pair.server.session.status === 'open', 2000, 'handshake');
  return { ...pair, atServer, atClient };
}

const header = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));

/** Every frame one side wrote. */
const framesOf = (written: Uint8Array[]): Frame[] => written.flatMap((batch) => decodeFrames(batch, 1 << 20));

describe('dynamic channel streams', () => {
  it('opens from either side with odd edge ids and even cloud ids, and carries the header', async () => {
    const { client, server, atServer, atClient } = await openPair();
    const fromEdge = client.session.openStream(header({ kind: 'logs', path: '/var/log/pods/a' }));
    const fromCloud = server.session.openStream(header({ kind: 'exec' }));
    const fromCloud2 = server.session.openStream(Buffer.alloc(0));
    expect([fromEdge.id, fromCloud.id, fromCloud2.id]).toEqual([17, 16, 18]);
    await waitFor(() => atServer.length === 1 && atClient.length === 2);
    expect(JSON.parse(atServer[0]!.header)).toEqual({ kind: 'logs', path: '/var/log/pods/a' });
    expect(atClient.map((a) => [a.stream.id, a.header])).toEqual([
      [16, '{"kind":"exec"}'],
      [18, ''],
    ]);
    await waitFor(() => fromEdge.accepted && fromCloud.accepted);
  });

  it('moves bytes both ways and half-closes: each direction ends on its own', async () => {
    const { client, atServer } = await openPair();
    const stream = client.session.openStream(header({ kind: 'exec' }));
    await waitFor(() => atServer.length === 1);
    const remote = atServer[0]!.stream;
    const atRemote = readAll(remote);
    stream.end('request bytes');
    expect((await atRemote).toString()).toBe('request bytes');
    // The edge's direction ended; the cloud's is still open and keeps flowing.
    const atLocal = readAll(stream);
    remote.write('answer, ');
    remote.end('then done');
    expect((await atLocal).toString()).toBe('answer, then done');
    await waitFor(() => [...client.session.dynamicStreams()].length === 0 && remote.destroyed && stream.destroyed, 2000, 'both sides forget the stream');
    expect(client.session.status).toBe('open');
  });

  it('resets both ways with the reason, and a refusing handler names its reason', async () => {
    const { client, server, atServer, atClient } = await openPair({
      serverHandlers: {
        onStreamOpen: (stream, h) => {
          if (Buffer.from(h).toString() === 'bad') throw new Error('no such container');
          atServer.push({ stream, header: '' });
        },
      },
    });
    const a = client.session.openStream(header('a'));
    await waitFor(() => atServer.length === 1);
    const aRemote = streamError(atServer[0]!.stream);
    const aLocal = streamError(a);
    a.destroy(new Error('kubectl went away'));
    expect((await aLocal).message).toBe('kubectl went away');
    expect(await aRemote).toMatchObject({ code: 'ERR_STREAM_RESET', resetCode: ResetCode.CANCEL, reason: 'kubectl went away' });

    const b = server.session.openStream(header('b'));
    await waitFor(() => atClient.length === 1);
    const bLocal = streamError(b);
    atClient[0]!.stream.reset(ResetCode.REFUSED, 'pod not found');
    const error = await bLocal;
    expect(error).toBeInstanceOf(StreamResetError);
    expect(error).toMatchObject({ resetCode: ResetCode.REFUSED, reason: 'pod not found' });

    const refused = streamError(client.session.openStream(Buffer.from('bad')));
    expect(await refused).toMatchObject({ resetCode: ResetCode.REFUSED, reason: 'no such container' });
    expect([client.session.status, server.session.status]).toEqual(['open', 'open']);
  });

  it('drops a stream reset before its handler ran, without calling the handler or raising an error', async () => {
    const { client, server, atServer } = await openPair();
    // OPEN and RESET leave in the same batch and are handled in one receive.
    client.session.openStream(header('gone at once')).destroy();
    const stream = client.session.openStream(header('next'));
    await waitFor(() => stream.accepted);
    expect(atServer.map((a) => a.header)).toEqual(['"next"']);
    expect([...server.session.dynamicStreams()].map((s) => s.id)).toEqual([stream.id]);
  });

  it('destroys every open stream with a connection error when the session closes', async () => {
    const { client, server, atServer } = await openPair();
    const local = [client.session.openStream(header(1)), client.session.openStream(header(2))];
    await waitFor(() => atServer.length === 2);
    const errors = Promise.all([...local, ...atServer.map((a) => a.stream)].map(streamError));
    server.session.close('shutting down');
    const [edge1, edge2, cloud1] = await errors;
    for (const err of [edge1, edge2, cloud1]) expect(err).toBeInstanceOf(ConnectionError);
    expect(edge1!.message).toMatch(/^channel to cloudcore closed: /);
    expect(cloud1!.message).toBe('channel to node-a closed: session closed');
    expect([...client.session.dynamicStreams()]).toEqual([]);
  });

  it('refuses an OPEN beyond the stream limit and keeps the session', async () => {
    const { client, atServer } = await openPair({ session: { maxDynamicStreams: 3 } });
    const streams = Array.from({ length: 3 }, (_, i) => client.session.openStream(header(i)));
    await waitFor(() => streams.every((s) => s.accepted));
    const fourth = streamError(client.session.openStream(header(3)));
    expect(await fourth).toMatchObject({ resetCode: ResetCode.STREAM_LIMIT, reason: 'too many open streams (limit 3)' });
    expect(client.session.status).toBe('open');
    // A slot frees once a stream ends both ways.
    atServer[0]!.stream.resume();
    atServer[0]!.stream.end();
    streams[0]!.resume();
    streams[0]!.end();
    await waitFor(() => atServer[0]!.stream.destroyed && streams[0]!.destroyed);
    const fifth = client.session.openStream(header(4));
    await waitFor(() => fifth.accepted);
  });

  it('gets the reason from a peer without a stream handler, and sends it nothing before acceptance', async () => {
    const { client, server } = await openPair({ serverHandlers: { onStreamOpen: undefined } });
    const stream = client.session.openStream(header({ kind: 'logs' }));
    // Written before any answer: an older peer would drop the session on DATA for a stream it does not know.
    stream.write('early bytes');
    const error = await streamError(stream);
    expect(error).toMatchObject({ code: 'ERR_STREAM_RESET', resetCode: ResetCode.REFUSED, reason: 'dynamic streams are not supported' });
    expect(
      framesOf(client.written)
        .filter((f) => f.stream === stream.id)
        .map((f) => f.type),
    ).toEqual([FrameType.OPEN]);
    expect([client.session.status, server.session.status]).toEqual(['open', 'open']);
  });

  it('resets only the offending stream on data beyond credit, data after close and an unknown id', async () => {
    const { client, server, deliver, atServer } = await openPair({ session: { dynamicStreamWindowBytes: 8 * 1024 } });
    const [a, b] = [client.session.openStream(header('a')), client.session.openStream(header('b'))];
    await waitFor(() => atServer.length === 2 && a.accepted && b.accepted);
    const [aRemote, bRemote] = atServer.map((x) => x.stream) as [ChannelStream, ChannelStream];
    const aErrors = Promise.all([streamError(a), streamError(aRemote)]);
    deliver('client', encodeFrames([{ type: FrameType.DATA, stream: a.id, payload: Buffer.alloc(9 * 1024) }]));
    const [aLocalError, aRemoteError] = await aErrors;
    expect(aRemoteError).toBeInstanceOf(ProtocolError);
    expect(aRemoteError.code).toBe('ERR_FLOW_CONTROL');
    expect(aLocalError).toMatchObject({ resetCode: ResetCode.PROTOCOL_ERROR });

    b.end();
    bRemote.resume();
    await waitFor(() => bRemote.readableEnded, 2000, 'CLOSE of b');
    const bErrors = Promise.all([streamError(b), streamError(bRemote)]);
    deliver('client', encodeFrames([{ type: FrameType.DATA, stream: b.id, payload: Buffer.from('late') }]));
    const [bLocalError, bRemoteError] = await bErrors;
    expect(bRemoteError).toMatchObject({ code: 'ERR_PROTOCOL', message: 'stream 19: DATA after CLOSE' });
    expect(bLocalError).toMatchObject({ resetCode: ResetCode.PROTOCOL_ERROR, reason: 'stream 19: DATA after CLOSE' });

    const before = server.written.length;
    deliver('client', encodeFrames([{ type: FrameType.DATA, stream: 1001, payload: Buffer.from('?') }]));
    await waitFor(() => framesOf(server.written.slice(before)).some((f) => f.type === FrameType.RESET && f.stream === 1001));
    expect([client.session.status, server.session.status]).toEqual(['open', 'open']);
    const c = client.session.openStream(header('c'));
    await waitFor(() => c.accepted);
  });

  it('stops a writer whose reader does not read: about one window in flight, window + chunk buffered', async () => {
    const window = 64 * 1024;
    const chunk = 16 * 1024;
    const { client, atServer } = await openPair({ session: { dynamicStreamWindowBytes: window } });
    const stream = client.session.openStream(header('bulk'));
    await waitFor(() => atServer.length === 1 && stream.accepted);
    const remote = atServer[0]!.stream;
    const data = patternBytes(1024 * 1024, 7);
    let drains = 0;
    stream.on('drain', () => drains++);
    // A writer that honours backpressure, until no 'drain' comes any more.
    let accepted = 0;
    for (;;) {
      while (stream.write(data.subarray(accepted, accepted + chunk))) accepted += chunk;
      accepted += chunk;
      const before = drains;
      await turns(50);
      if (drains === before) break;
    }
    // Nobody reads: nothing more arrives, however many turns the loop takes.
    await turns(50);
    expect(remote.bytesReceived).toBe(window);
    expect(remote.bufferedBytes).toBe(window);
    expect(accepted).toBeGreaterThanOrEqual(window);
    expect(accepted).toBeLessThanOrEqual(window + 3 * chunk);
    expect(stream.queuedBytes).toBeLessThanOrEqual(3 * chunk);

    // Read two chunks, then stop again: credit goes back for what was read, and the buffer never exceeds
    // window + one chunk (the one waiting in the Duplex).
    const first: Buffer[] = [];
    for (let i = 0; i < 2; i++) {
      const piece = remote.read() as Buffer | null;
      if (!piece) await once(remote, 'readable');
      else first.push(piece);
    }
    const firstBytes = first.reduce((n, b) => n + b.length, 0);
    await waitFor(() => remote.bytesReceived > window, 2000, 'credit returned for what was read');
    await turns(50);
    expect(remote.bufferedBytes).toBeLessThanOrEqual(window + chunk);
    expect(remote.bytesReceived).toBeLessThanOrEqual(firstBytes + window + chunk);

    // Reading everything resumes the flow: 'drain' comes and the writer finishes.
    const drainsBefore = drains;
    const rest = readAll(remote);
    await writeAll(stream, data.subarray(accepted));
    expect(drains).toBeGreaterThan(drainsBefore);
    expect(sha256(Buffer.concat([...first, await rest]))).toBe(sha256(data));
  });

  it('carries 64 streams of 1 MiB each way at once, each checksum-verified', async () => {
    const { client } = await openPair({
      // The cloud echoes every byte back: backpressure works both ways at once.
      serverHandlers: { onStreamOpen: (stream) => void stream.pipe(stream) },
      session: { maxDynamicStreams: 64 },
    });
    const results = await Promise.all(
      Array.from({ length: 64 }, async (_, i) => {
        const data = patternBytes(1024 * 1024, i + 1);
        const stream = client.session.openStream(header({ i, sha256: sha256(data) }));
        const [echo] = await Promise.all([readAll(stream), writeAll(stream, data, 7 * 1024 + i)]);
        return sha256(echo) === sha256(data);
      }),
    );
    expect(results.every(Boolean)).toBe(true);
    await waitFor(() => [...client.session.dynamicStreams()].length === 0);
  });

  it('answers a ping while a 50 MiB stream flows, with at most a few batches of data ahead of the pong', async () => {
    const size = 50 * 1024 * 1024;
    const { client, server } = await openPair({
      serverHandlers: { onStreamOpen: (stream) => void writeAll(stream, Buffer.alloc(size, 1), 64 * 1024) },
    });
    const stream = client.session.openStream(header('big log'));
    let received = 0;
    stream.on('data', (c: Buffer) => (received += c.length));
    const ended = new Promise((r) => stream.once('end', r));
    await waitFor(() => received > 5 * 1024 * 1024, 20_000, 'the bulk stream under way');
    const before = server.written.length;
    await client.session.ping();
    const receivedAtPong = received;
    let dataBeforePong = 0;
    let batches = 0;
    outer: for (const batch of server.written.slice(before)) {
      batches++;
      for (const f of decodeFrames(batch, 1 << 20)) {
        if (f.type === FrameType.PONG) break outer;
        if (f.type === FrameType.DATA) dataBeforePong += f.payload.length;
      }
    }
    // In flight (128 KiB) plus the batch carrying the pong; data batches hold one chunk of the stream each.
    expect(dataBeforePong).toBeLessThanOrEqual(3 * 64 * 1024);
    expect(batches).toBeLessThanOrEqual(16);
    expect(receivedAtPong).toBeLessThan(size);
    await ended;
    expect(received).toBe(size);
    const chunksPerBatch = server.written.map((batch) => decodeFrames(batch, 1 << 20).filter((f) => f.type === FrameType.DATA).length);
    expect(Math.max(...chunksPerBatch)).toBe(1);
  });
});
