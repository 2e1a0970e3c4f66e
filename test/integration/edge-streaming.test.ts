import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { describe, expect, it, onTestFinished } from 'vitest';
import { RuntimeError } from '../../edgecore/edged/cri/runtime-error.js';
import { StreamSessions } from '../../edgecore/edged/kubelet-api/stream-sessions.js';
import { StreamTargets } from '../../edgecore/edged/kubelet-api/stream-targets.js';
import { isStreamingPath, serveStreaming, serveStreamingRequest, type StreamingDeps } from '../../edgecore/edged/kubelet-api/streaming.js';
import type { Container, Pod } from '../../edgecore/edged/pod-types.js';
import { containerConfig, sandboxConfig } from '../../edgecore/edged/runtime-config.js';
import { silentLogger } from '../../shared/logger.js';
import { useContainerd } from '../support/containerd.js';
import { eventually, freePort } from '../support/harness.js';
import { rawRequest, readToClose, SpdyTestClient, type RawResponse } from '../support/spdy-client.js';

const BUSYBOX = 'localhost/lite/busybox:latest';
const NODE = 'edge-streams';
const NS = 'stream-test';
const containerd = useContainerd();

// The headers the 1.33 API server sends the kubelet (docs/kubeedge-stream-facts.md §1.2).
const EXEC_UPGRADE: Array<[string, string]> = [
  ['Content-Length', '0'],
  ['Connection', 'Upgrade'],
  ['Upgrade', 'SPDY/3.1'],
  ...['v5.channel.k8s.io', 'v4.channel.k8s.io', 'v3.channel.k8s.io', 'v2.channel.k8s.io', 'channel.k8s.io'].map((v): [string, string] => [
    'X-Stream-Protocol-Version',
    v,
  ]),
];
const PORT_FORWARD_UPGRADE: Array<[string, string]> = [
  ['Content-Length', '0'],
  ['Connection', 'Upgrade'],
  ['Upgrade', 'SPDY/3.1'],
  ['X-Stream-Protocol-Version', 'portforward.k8s.io'],
];

interface Edge {
  port: number;
  sessions: StreamSessions;
  /** Each CRI Exec/Attach/PortForward request and the URL it got. */
  calls: Array<{ method: string; request: unknown; url: string }>;
  /** Each connection opened to the runtime's streaming server. */
  upstreams: Socket[];
}

/** The edge's pods as edged would hold them (store + static). */
const pods = new Map<string, Pod>();

/** An HTTP server whose 'upgrade' and 'request' events serve the streaming paths, as edgecore's kubelet server will. */
async function startEdge(options: { maxSessions?: number; idleTimeoutMs?: number; cri?: StreamingDeps['cri'] } = {}): Promise<Edge> {
  const { client } = containerd();
  const calls: Edge['calls'] = [];
  const upstreams: Socket[] = [];
  const cri = options.cri ?? client;
  const record =
    <A extends unknown[]>(method: string, call: (...args: A) => Promise<string>) =>
    async (...args: A): Promise<string> => {
      const url = await call(...args);
      calls.push({ method, request: args.length === 1 ? args[0] : args, url });
      return url;
    };
  const sessions = new StreamSessions({ maxSessions: options.maxSessions });
  const deps: StreamingDeps = {
    targets: new StreamTargets({ cri: client, pods: () => pods.values() }),
    cri: {
      exec: record('Exec', (r) => cri.exec(r)),
      attach: record('Attach', (r) => cri.attach(r)),
      portForward: record('PortForward', (id, p) => cri.portForward(id, p)),
    },
    sessions,
    logger: silentLogger(),
    idleTimeoutMs: options.idleTimeoutMs,
    connect: (target: URL): Duplex => {
      const socket = connect({ host: target.hostname, port: Number(target.port) });
      upstreams.push(socket);
      return socket;
    },
  };
  const server = createServer((req, res) => {
    if (isStreamingPath(req.url ?? '')) void serveStreamingRequest(req, res, deps);
    else res.writeHead(404).end();
  });
  server.on('upgrade', (req, socket: Duplex, head: Buffer) => void serveStreaming(req, socket, head, deps));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(async () => {
    sessions.destroyAll();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return { port: (server.address() as { port: number }).port, sessions, calls, upstreams };
}

/** A host-network pod run as edged runs it (its labels and config builders), removed when the test ends. */
async function runPod(name: string, containers: Container[]): Promise<Pod> {
  const { client, workdir, cgroupParent } = containerd();
  const pod: Pod = { metadata: { name, namespace: NS, uid: randomUUID() }, spec: { nodeName: NODE, hostNetwork: true, containers } };
  const sandbox = sandboxConfig(pod, { attempt: 0, logRoot: `${workdir}/logs`, cgroupParent });
  mkdirSync(sandbox.log_directory!, { recursive: true });
  const sandboxId = await client.runPodSandbox(sandbox);
  pods.set(pod.metadata.uid, pod);
  onTestFinished(async () => {
    pods.delete(pod.metadata.uid);
    await client.stopPodSandbox(sandboxId).catch(() => undefined);
    await client.removePodSandbox(sandboxId).catch(() => undefined);
  });
  for (const c of containers) {
    const config = containerConfig(pod, c, { attempt: 0, image: BUSYBOX, envs: [], mounts: [], init: false });
    await client.startContainer(await client.createContainer(sandboxId, config, sandbox));
  }
  return pod;
}

const sleeper = (name: string, extra: Partial<Container> = {}): Container => ({ name, command: ['sleep', '3600'], ...extra });

function query(params: Record<string, string | string[]>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) for (const value of [v].flat()) q.append(k, value);
  return q.toString();
}

function header(res: RawResponse, name: string): string | undefined {
  return res.headers.find(([n]) => n.toLowerCase() === name.toLowerCase())?.[1];
}

/** An upgrade request answered 101: the SPDY client on it. */
async function spdy(edge: Edge, path: string, headers = EXEC_UPGRADE): Promise<{ res: RawResponse; client: SpdyTestClient }> {
  const res = await rawRequest(edge.port, 'POST', path, headers);
  expect(res.status, res.rest.toString()).toBe(101);
  const client = new SpdyTestClient(res.socket, res.rest);
  onTestFinished(() => client.close());
  res.socket.resume();
  return { res, client };
}

/** An upgrade request answered with an error: status and body (the connection closes after it). */
async function refused(edge: Edge, method: string, path: string, headers = EXEC_UPGRADE): Promise<{ status: number; body: string }> {
  const res = await rawRequest(edge.port, method, path, headers);
  return { status: res.status, body: (await readToClose(res)).slice(0, 2000) };
}

function exitStatus(raw: Buffer): { status: string; reason?: string; exitCode?: string } {
  const s = JSON.parse(raw.toString()) as { status: string; reason?: string; details?: { causes?: Array<{ reason: string; message: string }> } };
  return { status: s.status, reason: s.reason, exitCode: s.details?.causes?.find((c) => c.reason === 'ExitCode')?.message };
}

describe('edge streaming (exec, attach, port-forward) relayed to containerd over SPDY/3.1', () => {
  it('runs an exec: stdout, stderr and the exit code on the v4 error stream; then both connections close', async () => {
    const edge = await startEdge();
    await runPod('exec', [sleeper('app')]);
    const cmd = ['sh', '-c', 'echo out; echo err >&2; exit 7'];
    const { res, client } = await spdy(edge, `/exec/${NS}/exec/app?${query({ command: cmd, error: '1', output: '1' })}`);
    expect(header(res, 'X-Stream-Protocol-Version')).toBe('v4.channel.k8s.io');
    const error = client.open({ streamtype: 'error' });
    const stdout = client.open({ streamtype: 'stdout' });
    const stderr = client.open({ streamtype: 'stderr' });
    await client.closed;
    expect(client.stream(stdout).data.toString()).toBe('out\n');
    expect(client.stream(stderr).data.toString()).toBe('err\n');
    expect(exitStatus(client.stream(error).data)).toEqual({ status: 'Failure', reason: 'NonZeroExitCode', exitCode: '7' });
    expect(edge.calls).toMatchObject([{ method: 'Exec', request: { cmd, stdin: false, stdout: true, stderr: true, tty: false } }]);
    await eventually(() => expect(edge.upstreams.map((u) => u.destroyed)).toEqual([true]));
    await eventually(() => expect(edge.sessions.active).toBe(0));
  });

  it('carries stdin to the container: cat echoes what the client sends, then exits 0', async () => {
    const edge = await startEdge();
    await runPod('stdin', [sleeper('app')]);
    const { client } = await spdy(edge, `/exec/${NS}/stdin/app?${query({ command: 'cat', input: '1', output: '1' })}`);
    const error = client.open({ streamtype: 'error' });
    const stdin = client.open({ streamtype: 'stdin' });
    const stdout = client.open({ streamtype: 'stdout' });
    await eventually(() => expect(client.stream(stdin).replied).toBe(true));
    client.send(stdin, 'through the edge\n', { fin: true });
    await client.closed;
    expect(client.stream(stdout).data.toString()).toBe('through the edge\n');
    expect(exitStatus(client.stream(error).data).status).toBe('Success');
  });

  it('attaches to a running container with the tty of its spec, and closes the runtime side when the client goes', async () => {
    const edge = await startEdge();
    const ticker = { name: 'ticker', command: ['sh', '-c', 'while true; do echo tick; sleep 0.2; done'] };
    await runPod('attach', [ticker]);
    // The query's tty=1 is ignored: the container has no terminal (kubelet_pods.go GetAttach).
    const { client } = await spdy(edge, `/attach/${NS}/attach/ticker?${query({ output: '1', tty: '1' })}`);
    client.open({ streamtype: 'error' });
    const stdout = client.open({ streamtype: 'stdout' });
    await eventually(() => expect(client.stream(stdout).data.toString()).toContain('tick\n'));
    expect(edge.calls).toMatchObject([{ method: 'Attach', request: { tty: false, stdout: true, stdin: false, stderr: false } }]);
    expect(edge.sessions.active).toBe(1);
    client.close();
    await eventually(() => expect(edge.upstreams.map((u) => u.destroyed)).toEqual([true]));
    await eventually(() => expect(edge.sessions.active).toBe(0));
  });

  it('port-forwards to a port of the pod: 101 for portforward.k8s.io, then an HTTP GET through a data stream', async () => {
    const edge = await startEdge();
    const port = await freePort();
    const script = `mkdir -p /www && echo hello-through-port-forward > /www/index.html && exec httpd -f -p 127.0.0.1:${port} -h /www`;
    await runPod('pf', [{ name: 'web', command: ['sh', '-c', script] }]);
    await eventually(
      () =>
        new Promise<void>((resolve, reject) => {
          const s = connect({ host: '127.0.0.1', port }, () => (s.destroy(), resolve()));
          s.on('error', reject);
        }),
    );
    const { res, client } = await spdy(edge, `/portForward/${NS}/pf`, PORT_FORWARD_UPGRADE);
    expect(header(res, 'X-Stream-Protocol-Version')).toBe('portforward.k8s.io');
    client.open({ streamtype: 'error', port: String(port), requestid: '0' });
    const data = client.open({ streamtype: 'data', port: String(port), requestid: '0' });
    await eventually(() => expect(client.stream(data).replied).toBe(true));
    client.send(data, 'GET / HTTP/1.0\r\n\r\n');
    await eventually(() => expect(client.stream(data).data.toString()).toContain('hello-through-port-forward'));
    expect(edge.calls).toMatchObject([{ method: 'PortForward', request: [expect.any(String), []] }]);
  });

  it('answers a missing pod with 404 and a missing container with the kubelet texts', async () => {
    const edge = await startEdge();
    await runPod('present', [sleeper('app')]);
    const exec = query({ command: 'true', output: '1' });
    expect(await refused(edge, 'POST', `/exec/${NS}/absent/app?${exec}`)).toEqual({ status: 404, body: 'pod does not exist' });
    expect(await refused(edge, 'POST', `/portForward/${NS}/absent`, PORT_FORWARD_UPGRADE)).toEqual({ status: 404, body: 'pod does not exist' });
    expect(await refused(edge, 'POST', `/exec/${NS}/present/nope?${exec}`)).toEqual({ status: 500, body: 'container not found ("nope")' });
    expect(await refused(edge, 'POST', `/attach/${NS}/present/nope?output=1`)).toEqual({ status: 500, body: `container nope not found in pod present_${NS}` });
    expect(await refused(edge, 'POST', `/portForward/${NS}/present/other-uid`, PORT_FORWARD_UPGRADE)).toEqual({ status: 404, body: 'pod not found' });
    expect(edge.calls).toEqual([]);
  });

  it('validates as the kubelet: no stream → 400, tty drops stderr, no upgrade → 500, unknown route or method', async () => {
    const edge = await startEdge();
    await runPod('checks', [sleeper('app')]);
    expect(await refused(edge, 'POST', `/exec/${NS}/checks/app?command=true`)).toEqual({
      status: 400,
      body: 'you must specify at least 1 of stdin, stdout, stderr',
    });
    // With tty, error=1 alone asks for nothing: stderr is dropped before the check.
    expect((await refused(edge, 'POST', `/exec/${NS}/checks/app?command=true&tty=1&error=1`)).status).toBe(400);
    const res = await fetch(`http://127.0.0.1:${edge.port}/exec/${NS}/checks/app?command=true&output=1`, { method: 'POST' });
    expect({ status: res.status, body: await res.text() }).toEqual({ status: 500, body: 'Upgrade request required\n' });
    expect(await refused(edge, 'POST', `/exec/${NS}/checks`)).toMatchObject({ status: 404 });
    expect(await refused(edge, 'PUT', `/exec/${NS}/checks/app?output=1`)).toMatchObject({ status: 405 });
    expect(edge.calls).toEqual([]);

    const { client } = await spdy(edge, `/exec/${NS}/checks/app?${query({ command: ['echo', 'x'], output: '1', error: '1', tty: '1' })}`);
    client.open({ streamtype: 'error' });
    client.open({ streamtype: 'stdout' });
    client.open({ streamtype: 'resize' });
    await client.closed;
    expect(edge.calls).toMatchObject([{ method: 'Exec', request: { tty: true, stdout: true, stderr: false } }]);
  });

  it('uses each one-time URL once: a second upgrade on it gets containerd 404, passed on, and both sides close', async () => {
    const edge = await startEdge();
    await runPod('once', [sleeper('app')]);
    const { client } = await spdy(edge, `/exec/${NS}/once/app?${query({ command: 'true', output: '1' })}`);
    client.open({ streamtype: 'error' });
    client.open({ streamtype: 'stdout' });
    await client.closed;
    const spent = edge.calls[0]!.url;
    expect(edge.calls).toHaveLength(1);
    // A runtime that hands out a spent URL: the relay passes on containerd's refusal and closes.
    const replay: StreamingDeps['cri'] = {
      exec: () => Promise.resolve(spent),
      attach: () => Promise.resolve(spent),
      portForward: () => Promise.resolve(spent),
    };
    const edge2 = await startEdge({ cri: replay });
    expect(await refused(edge2, 'POST', `/exec/${NS}/once/app?${query({ command: 'true', output: '1' })}`)).toEqual({
      status: 404,
      body: expect.stringContaining('404 page not found') as string,
    });
    await eventually(() => expect(edge2.upstreams.map((u) => u.destroyed)).toEqual([true]));
    await eventually(() => expect(edge2.sessions.active).toBe(0));
  });

  it('answers a CRI error as the kubelet: NotFound → 404, ResourceExhausted → 429, others → 500, with the gRPC text', async () => {
    await runPod('crierr', [sleeper('app')]);
    const failing = (grpcCode: number): StreamingDeps['cri'] => {
      const fail = (): Promise<string> => Promise.reject(new RuntimeError('Exec', grpcCode, 'no can do'));
      return { exec: fail, attach: fail, portForward: fail };
    };
    const path = `/exec/${NS}/crierr/app?output=1&command=true`;
    const answers = [];
    for (const code of [5, 8, 2]) answers.push(await refused(await startEdge({ cri: failing(code) }), 'POST', path));
    expect(answers).toEqual([
      { status: 404, body: 'rpc error: code = NotFound desc = no can do' },
      { status: 429, body: 'rpc error: code = ResourceExhausted desc = no can do' },
      { status: 500, body: 'rpc error: code = Unknown desc = no can do' },
    ]);
  });

  it('refuses a session beyond maxSessions with 429 and ends an idle session after idleTimeoutMs', async () => {
    const edge = await startEdge({ maxSessions: 1, idleTimeoutMs: 1000 });
    await runPod('limits', [sleeper('app')]);
    const path = `/attach/${NS}/limits/app?output=1`;
    const { client } = await spdy(edge, path);
    client.open({ streamtype: 'error' });
    client.open({ streamtype: 'stdout' });
    expect(await refused(edge, 'POST', path)).toMatchObject({ status: 429 });
    // `sleep` writes nothing and the client sends nothing: the idle timer ends the session.
    await client.closed;
    await eventually(() => expect(edge.upstreams.map((u) => u.destroyed)).toEqual([true]));
    await eventually(() => expect(edge.sessions.active).toBe(0));
  });
});
