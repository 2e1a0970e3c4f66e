import { describe, expect, it, vi, afterEach } from 'vitest';
import { decodeFrames, encodeFrames } from '../../shared/channel/codec.js';
import { FLAG_FIN, FrameType, StreamId } from '../../shared/channel/frame.js';
import { memoryPair, waitFor, testSettings } from '../support/memory-pair.js';

const bytes = (n: number, fill = 7): Buffer => Buffer.alloc(n, fill);

async function openPair(opts: Parameters<typeof memoryPair>[0] = {}): Promise<ReturnType<typeof memoryPair>> {
  const pair = memoryPair(opts);
  pair.server.session.start();
  pair.client.session.start();
  await waitFor(() => pair.client.session.status === 'open' && pair.server.session.status === 'open', 2000, 'handshake');
  return pair;
}

afterEach(() => {
  vi.useRealTimers();
});

describe('channel session', () => {
  it('exchanges hellos and delivers messages both ways in order per stream', async () => {
    const { client, server } = await openPair();
    expect(server.session.peerHello?.nodeName).toBe('node-a');
    for (let i = 0; i < 50; i++) server.session.write(StreamId.objects, Buffer.from(`o${i}`));
    for (let i = 0; i < 50; i++) client.session.write(StreamId.upstream, Buffer.from(`u${i}`));
    await waitFor(() => client.received.length === 50 && server.received.length === 50);
    expect(client.received.map((r) => r.message.data.toString())).toEqual(Array.from({ length: 50 }, (_, i) => `o${i}`));
    expect(server.received.map((r) => [r.stream, r.message.seq])).toEqual(Array.from({ length: 50 }, (_, i) => [StreamId.upstream, i + 1]));
  });

  it('reassembles a 10 MiB message sent in chunks', async () => {
    const { client, server } = await openPair();
    const big = Buffer.alloc(10 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4096) big.writeUInt32BE(i, i);
    server.session.write(StreamId.objects, big);
    await waitFor(() => client.received.length === 1, 10_000, '10 MiB message');
    expect(Buffer.compare(Buffer.from(client.received[0]!.message.data), big)).toBe(0);
    // It travelled as many frames, none larger than a chunk.
    expect(server.written.length).toBeGreaterThan(100);
  });

  it('answers a ping ahead of a 10 MiB message still being sent', async () => {
    const { client, server } = await openPair();
    // Where the server's writes stood when the ping reached it: counting from there, not from when the client
    // queued it, leaves out the batches written while the ping was on its way (a matter of scheduling).
    let atArrival = -1;
    const receive = server.session.receive.bind(server.session);
    server.session.receive = (data: Uint8Array) => {
      if (atArrival < 0 && decodeFrames(data, 1 << 20).some((f) => f.type === FrameType.PING && f.seq === 42)) atArrival = server.written.length;
      receive(data);
    };
    server.session.write(StreamId.objects, bytes(10 * 1024 * 1024));
    await waitFor(() => server.written.length > 5);
    client.session['queueControl']({ type: FrameType.PING, seq: 42 });
    await waitFor(() => atArrival >= 0 && server.written.slice(atArrival).some((b) => decodeFrames(b, 1 << 20).some((f) => f.type === FrameType.PONG)));
    // The data written between the ping's arrival and the pong: at most one batch already in flight plus the batch
    // that carries the pong itself.
    let dataBeforePong = 0;
    outer: for (const batch of server.written.slice(atArrival)) {
      for (const f of decodeFrames(batch, 1 << 20)) {
        if (f.type === FrameType.PONG) break outer;
        if (f.type === FrameType.DATA) dataBeforePong += f.payload.length;
      }
    }
    expect(dataBeforePong).toBeLessThanOrEqual(3 * 64 * 1024);
    // The message is not disturbed by the pong between its chunks. (Whether it had finished before the ping got
    // there depends on the schedule, so it is not asserted.)
    await waitFor(() => client.received.length === 1, 10_000, '10 MiB message');
    expect(client.received[0]!.message.data.length).toBe(10 * 1024 * 1024);
  });

  it('stops sending when the receiver holds its window and resumes on release', async () => {
    const { client, server } = await openPair({ client: { streamWindowBytes: 64 * 1024 } });
    client.autoRelease = false;
    for (let i = 0; i < 100; i++) server.session.write(StreamId.objects, bytes(4096));
    await waitFor(() => client.received.length >= 16);
    await new Promise((r) => setTimeout(r, 50));
    // 16 × 4 KiB fill the 64 KiB window; nothing more may arrive until the client releases.
    expect(client.received.length).toBe(16);
    for (const r of client.received) r.release();
    await waitFor(() => client.received.length >= 32);
    client.autoRelease = true;
    for (const r of client.received.slice(32)) r.release();
    for (const r of client.received.slice(16, 32)) r.release();
    await waitFor(() => client.received.length === 100, 5000, 'all messages');
  });

  it('reports a full send queue through writable() and a drain callback', async () => {
    let drained = 0;
    const { client, server } = await openPair({ serverHandlers: { onDrain: () => drained++ } });
    client.autoRelease = false;
    while (server.session.writable(StreamId.objects)) server.session.write(StreamId.objects, bytes(64 * 1024));
    expect(server.session.writable(StreamId.objects)).toBe(false);
    await waitFor(() => client.received.length > 0);
    client.autoRelease = true;
    for (const r of client.received) r.release();
    await waitFor(() => drained > 0, 5000, 'drain');
    expect(server.session.writable(StreamId.objects)).toBe(true);
  });

  it('carries cumulative and selective acks', async () => {
    const { client, server } = await openPair();
    client.session.ack(StreamId.objects, 5);
    client.session.ack(StreamId.objects, 9);
    client.session.ackSelective(StreamId.upstream, [3, 7]);
    await waitFor(() => server.acks.length === 2);
    expect(server.acks).toContainEqual({ stream: StreamId.objects, cumulative: 9, selective: [] });
    expect(server.acks).toContainEqual({ stream: StreamId.upstream, cumulative: 0, selective: [3, 7] });
  });

  it('closes with ERR_FRAME_MALFORMED on garbage and with ERR_UNKNOWN_STREAM on an unknown stream', async () => {
    const a = await openPair();
    a.deliver('client', Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2]));
    await waitFor(() => a.server.closed !== undefined);
    expect(a.server.closed!.error?.code).toBe('ERR_FRAME_MALFORMED');
    await waitFor(() => a.client.closed !== undefined);

    const b = await openPair();
    b.deliver('client', encodeFrames([{ type: FrameType.DATA, stream: 11, seq: 1, flags: FLAG_FIN, payload: bytes(3) }]));
    await waitFor(() => b.server.closed !== undefined);
    expect(b.server.closed!.error?.code).toBe('ERR_UNKNOWN_STREAM');
  });

  it('refuses data before the hello and data that ignores credit', async () => {
    const a = memoryPair();
    a.server.session.start();
    a.deliver('client', encodeFrames([{ type: FrameType.DATA, stream: StreamId.objects, seq: 1, flags: FLAG_FIN, payload: bytes(3) }]));
    await waitFor(() => a.server.closed !== undefined);
    expect(a.server.closed!.error?.code).toBe('ERR_PROTOCOL');

    const b = await openPair({ server: { streamWindowBytes: 8 * 1024 } });
    b.server.autoRelease = false;
    const frames = Array.from({ length: 4 }, (_, i) => ({
      type: FrameType.DATA,
      stream: StreamId.upstream,
      seq: i + 1,
      flags: FLAG_FIN,
      payload: bytes(4096),
    }));
    b.deliver('client', encodeFrames(frames));
    await waitFor(() => b.server.closed !== undefined);
    expect(b.server.closed!.error?.code).toBe('ERR_FLOW_CONTROL');
  });

  it('rejects a message larger than the peer accepts before sending it', async () => {
    const { server } = await openPair({ client: { maxMessageBytes: 4096 } });
    expect(() => server.session.write(StreamId.objects, bytes(5000))).toThrow(expect.objectContaining({ code: 'ERR_MESSAGE_TOO_LARGE' }));
    expect(server.session.status).toBe('open');
  });

  it('pings an idle server and times out a silent peer', async () => {
    const { client, server } = await openPair();
    const pingsBefore = server.written.length;
    await waitFor(() => client.session.rttMs !== undefined, 3 * testSettings.heartbeatIntervalMs, 'a ping/pong round trip');
    expect(server.written.length).toBeGreaterThan(pingsBefore);
    // Silence the client: the server must give up after its session timeout.
    client.session['scheduleFlush'] = () => undefined;
    client.session['flushNow'] = () => undefined;
    await waitFor(() => server.closed !== undefined, testSettings.sessionTimeoutMs + 2000, 'session timeout');
    expect(server.closed!.error?.code).toBe('ERR_SESSION_TIMEOUT');
  });

  it('tells the peer about a GOAWAY with its reason and address', async () => {
    const got: unknown[] = [];
    const pair = await openPair();
    pair.client.session['options'].handlers.onGoAway = (code, reason, address) => got.push({ code, reason, address });
    pair.server.session.goAway(1, 'rebalance', 'wss://127.0.0.2:10000');
    await waitFor(() => got.length === 1);
    expect(got[0]).toEqual({ code: 1, reason: 'rebalance', address: 'wss://127.0.0.2:10000' });
  });
});
