import { createServer as createHttpServer } from 'node:http';
import { createServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { describe, expect, it, onTestFinished } from 'vitest';
import { relayUpgrade } from '../../edgecore/edged/kubelet-api/stream-relay.js';
import { StreamSessions } from '../../edgecore/edged/kubelet-api/stream-sessions.js';
import { serveStreaming, type StreamingDeps } from '../../edgecore/edged/kubelet-api/streaming.js';
import type { Pod } from '../../edgecore/edged/pod-types.js';
import { silentLogger } from '../../shared/logger.js';
import { eventually } from '../support/harness.js';
import { memoryPair, waitFor } from '../support/memory-pair.js';
import { rawRequest, readToClose } from '../support/spdy-client.js';

// The relay against a scripted streaming server (no containerd): what it sends, and how it treats answers
// other than a 101. test/integration/edge-streaming.test.ts runs it against containerd.

interface FakeRuntime {
  port: number;
  /** Everything each connection sent, as text. */
  received: string[];
  sockets: Socket[];
}

/** A TCP server standing in for containerd's streaming server; `answer` runs on each new connection. */
async function fakeRuntime(answer: (socket: Socket) => void): Promise<FakeRuntime> {
  const runtime: FakeRuntime = { port: 0, received: [], sockets: [] };
  const server = createServer((socket) => {
    const i = runtime.received.push('') - 1;
    runtime.sockets.push(socket);
    socket.on('data', (c: Buffer) => (runtime.received[i] += c.toString('latin1')));
    socket.on('error', () => undefined);
    answer(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => {
    for (const s of runtime.sockets) s.destroy();
    server.close();
  });
  runtime.port = (server.address() as { port: number }).port;
  return runtime;
}

const POD: Pod = { metadata: { name: 'p', namespace: 'ns', uid: 'u1' }, spec: { containers: [{ name: 'c' }] } };

async function edge(runtime: FakeRuntime, options: Partial<StreamingDeps> = {}): Promise<{ port: number; sessions: StreamSessions }> {
  const url = `http://127.0.0.1:${runtime.port}/exec/t0k3n`;
  const sessions = new StreamSessions();
  const deps: StreamingDeps = {
    targets: { pod: () => POD, runningContainerId: () => Promise.resolve('cid'), readySandboxId: () => Promise.resolve('sid') },
    cri: { exec: () => Promise.resolve(url), attach: () => Promise.resolve(url), portForward: () => Promise.resolve(url) },
    sessions,
    logger: silentLogger(),
    ...options,
  };
  const server = createHttpServer();
  server.on('upgrade', (req, socket: Duplex, head: Buffer) => void serveStreaming(req, socket, head, deps));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => {
    sessions.destroyAll();
    server.closeAllConnections();
    server.close();
  });
  return { port: (server.address() as { port: number }).port, sessions };
}

const UPGRADE: Array<[string, string]> = [
  ['Content-Length', '0'],
  ['Connection', 'Upgrade'],
  ['Upgrade', 'SPDY/3.1'],
  ['X-Stream-Protocol-Version', 'v5.channel.k8s.io'],
  ['X-Stream-Protocol-Version', 'v4.channel.k8s.io'],
  ['Authorization', 'Bearer secret'],
  ['User-Agent', 'Go-http-client/1.1'],
];
const PATH = '/exec/ns/p/c?command=sh&output=1';
const SWITCHED = 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n';

describe('stream relay', () => {
  it('sends the request line with the token path, Host of the URL, the other headers but credentials, then early bytes', async () => {
    const runtime = await fakeRuntime((s) => s.write(SWITCHED));
    const { port } = await edge(runtime);
    const res = await rawRequest(port, 'POST', PATH, UPGRADE, 'EARLY');
    expect(res.status).toBe(101);
    await eventually(() => expect(runtime.received[0]).toContain('EARLY'));
    expect(runtime.received[0]!.split('\r\n')).toEqual([
      'POST /exec/t0k3n HTTP/1.1',
      `Host: 127.0.0.1:${runtime.port}`,
      'Content-Length: 0',
      'Connection: Upgrade',
      'Upgrade: SPDY/3.1',
      'X-Stream-Protocol-Version: v5.channel.k8s.io',
      'X-Stream-Protocol-Version: v4.channel.k8s.io',
      'User-Agent: Go-http-client/1.1',
      '',
      'EARLY',
    ]);
    res.socket.destroy();
  });

  it('relays bytes both ways after the 101; when the client ends, both connections close', async () => {
    const runtime = await fakeRuntime((s) => {
      s.write(SWITCHED);
      s.on('data', (c: Buffer) => c.includes('ping') && s.write('pong'));
    });
    const { port, sessions } = await edge(runtime);
    const res = await rawRequest(port, 'POST', PATH, UPGRADE);
    const got: Buffer[] = [res.rest];
    res.socket.on('data', (c: Buffer) => got.push(c));
    res.socket.resume();
    res.socket.write('ping');
    await eventually(() => expect(Buffer.concat(got).toString()).toBe('pong'));
    expect(sessions.active).toBe(1);
    const clientClosed = new Promise((resolve) => res.socket.once('close', resolve));
    res.socket.end();
    await clientClosed;
    await eventually(() => expect(runtime.sockets[0]!.readableEnded).toBe(true));
    await eventually(() => expect(sessions.active).toBe(0));
  });

  it('turns a non-101 success into 500 "invalid upgrade response", as the kubelet proxy does', async () => {
    const runtime = await fakeRuntime((s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
    const { port } = await edge(runtime);
    const res = await rawRequest(port, 'POST', PATH, UPGRADE);
    expect({ status: res.status, body: await readToClose(res) }).toEqual({ status: 500, body: 'invalid upgrade response: status code 200\n' });
    await eventually(() => expect(runtime.sockets[0]!.destroyed).toBe(true));
  });

  it('answers 500 when the streaming server closes without an answer or stays silent past responseTimeoutMs', async () => {
    const closing = await fakeRuntime((s) => s.end());
    const res = await rawRequest((await edge(closing)).port, 'POST', PATH, UPGRADE);
    expect({ status: res.status, body: await readToClose(res) }).toEqual({ status: 500, body: 'unexpected EOF\n' });

    const silent = await fakeRuntime(() => undefined);
    const quiet = await rawRequest((await edge(silent, { responseTimeoutMs: 100 })).port, 'POST', PATH, UPGRADE);
    expect({ status: quiet.status, body: await readToClose(quiet) }).toEqual({ status: 500, body: `no answer from 127.0.0.1:${silent.port} within 100 ms\n` });
  });

  it('ends every open session on destroyAll', async () => {
    const runtime = await fakeRuntime((s) => s.write(SWITCHED));
    const { port, sessions } = await edge(runtime);
    const res = await rawRequest(port, 'POST', PATH, UPGRADE);
    res.socket.resume();
    await eventually(() => expect(sessions.active).toBe(1));
    const clientClosed = new Promise((resolve) => res.socket.once('close', resolve));
    sessions.destroyAll();
    await clientClosed;
    await eventually(() => expect(runtime.sockets[0]!.destroyed || runtime.sockets[0]!.readableEnded).toBe(true));
    await eventually(() => expect(sessions.active).toBe(0));
  });

  it('ends a channel stream after the last byte and keeps it until the peer closes: nothing received is reset away', async () => {
    // A short exec: the runtime answers 101, writes its frames and closes at once, before the cloud has passed them on.
    const output = Buffer.from('frames of a short-lived exec'.repeat(40));
    const runtime = await fakeRuntime((s) => s.end(Buffer.concat([Buffer.from(SWITCHED), output])));
    const target = new URL(`http://127.0.0.1:${runtime.port}/exec/t0k3n`);
    const request = { method: 'POST', target, headers: UPGRADE, head: Buffer.alloc(0) };
    let edgeSide: Duplex | undefined;
    const { client, server } = memoryPair({
      clientHandlers: {
        onStreamOpen: (stream) => {
          edgeSide = stream;
          relayUpgrade(stream, request, { idleTimeoutMs: 60_000, responseTimeoutMs: 60_000 });
        },
      },
    });
    server.session.start();
    client.session.start();
    await waitFor(() => client.session.status === 'open' && server.session.status === 'open', 10_000, 'handshake');
    const cloud = server.session.openStream(Buffer.from('exec'));
    cloud.on('error', () => undefined);
    const cloudClosed = new Promise((resolve) => cloud.once('close', resolve));
    // As the API server does: its side stays open until it has read the kubelet's end.
    cloud.once('end', () => cloud.end());
    // The cloud reads nothing until the edge has written all and the frames it queued after that have arrived.
    await waitFor(() => edgeSide?.writableFinished === true, 10_000, 'the edge wrote all');
    // Event-loop turns, not time: the in-memory transport delivers each batch on the next one.
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
    const got: Buffer[] = [];
    cloud.on('data', (c: Buffer) => got.push(c));
    await cloudClosed;
    expect({ bytes: Buffer.concat(got).length, errored: cloud.errored?.constructor.name }).toEqual({
      bytes: SWITCHED.length + output.length,
      errored: undefined,
    });
  });
});
