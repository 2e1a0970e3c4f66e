import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../../shared/logger.js';
import type { CriRuntime } from '../cri/cri-types.js';
import { RuntimeError } from '../cri/runtime-error.js';
import { sendAnswer, writeRawAnswer, type HttpAnswer } from './http-answer.js';
import type { StreamSessions } from './stream-sessions.js';
import { relayUpgrade } from './stream-relay.js';
import { containerSpec, type StreamTargets } from './stream-targets.js';

// The kubelet's exec, attach and portForward endpoints (`K8S:pkg/kubelet/server/server.go`, the routes and
// getExec/getAttach/getPortForward), served on the edge: the same paths, checks, status codes and texts; the
// session itself is relayed byte for byte to the runtime's streaming server (docs/kubeedge-stream-facts.md §3).

/** A session with no byte either way for this long is closed: containerd's and the kubelet's `streamIdleTimeout`. */
export const DEFAULT_STREAM_IDLE_TIMEOUT_MS = 4 * 60 * 60 * 1000;
/** How long the runtime's streaming server may take to answer the upgrade. */
export const DEFAULT_STREAM_RESPONSE_TIMEOUT_MS = 30_000;

export interface StreamingDeps {
  targets: Pick<StreamTargets, 'pod' | 'runningContainerId' | 'readySandboxId'>;
  cri: Pick<CriRuntime, 'exec' | 'attach' | 'portForward'>;
  /** The node's open sessions and their ceiling (429 beyond it). */
  sessions: StreamSessions;
  logger: Logger;
  /** Default DEFAULT_STREAM_IDLE_TIMEOUT_MS (4 h). */
  idleTimeoutMs?: number;
  /** Default DEFAULT_STREAM_RESPONSE_TIMEOUT_MS (30 s). */
  responseTimeoutMs?: number;
  /** Opens the connection to a streaming URL; TCP by default. */
  connect?: (target: URL) => Duplex;
}

type Kind = 'exec' | 'attach' | 'portForward';

interface Route {
  kind: Kind;
  namespace: string;
  pod: string;
  /** The `/{uid}/` forms: the pod must have this uid. */
  uid: string;
  container: string;
}

/** A checked request: the CRI call that gives its one-time URL. */
type Prepared = (cri: StreamingDeps['cri']) => Promise<string>;

const PATH_SEGMENTS: Record<Kind, readonly number[]> = { exec: [3, 4], attach: [3, 4], portForward: [2, 3] };

/** The path is one of the streaming endpoints (any method, valid or not): serveStreaming answers it. */
export function isStreamingPath(url: string): boolean {
  const first = url.split('?')[0]!.split('/')[1];
  return first === 'exec' || first === 'attach' || first === 'portForward';
}

/**
 * Serves an upgrade request (the HTTP server's 'upgrade' event) on a streaming path: checks it as the kubelet
 * does, asks CRI for the session's URL and relays the connection to it. Every refusal is an HTTP answer on
 * `socket`, after which it is closed. Settles when the session is over; never rejects.
 */
export async function serveStreaming(req: IncomingMessage, socket: Duplex, head: Buffer, deps: StreamingDeps): Promise<void> {
  socket.on('error', () => undefined); // a peer that vanished shows as 'close'
  const url = new URL(req.url ?? '/', 'http://kubelet');
  const log = deps.logger.child({ path: url.pathname });
  const prepared = await prepare(req, url, deps);
  if (!isCall(prepared)) {
    log.debug({ status: prepared.status }, 'streaming request refused');
    return writeRawAnswer(socket, prepared);
  }
  let session: ReturnType<typeof relayUpgrade> | undefined;
  const release = deps.sessions.acquire(() => (session ? session.destroy() : socket.destroy()));
  if (!release) {
    const body = `too many streaming sessions on this node (at most ${deps.sessions.maxSessions})`;
    return writeRawAnswer(socket, { status: 429, body, headers: { 'Retry-After': '1' } });
  }
  try {
    let target: URL;
    try {
      target = new URL(await prepared(deps.cri));
    } catch (err) {
      log.debug({ err }, 'runtime refused the streaming session');
      return writeRawAnswer(socket, runtimeErrorAnswer(err));
    }
    // The one-time URL is used at once and only once: containerd drops the token on the first attempt.
    const request = { method: req.method ?? 'POST', target, headers: forwardedHeaders(req.rawHeaders), head };
    session = relayUpgrade(socket, request, {
      idleTimeoutMs: deps.idleTimeoutMs ?? DEFAULT_STREAM_IDLE_TIMEOUT_MS,
      responseTimeoutMs: deps.responseTimeoutMs ?? DEFAULT_STREAM_RESPONSE_TIMEOUT_MS,
      connect: deps.connect,
    });
    const { status } = await session.done;
    log.debug({ status }, 'streaming session closed');
  } finally {
    release();
  }
}

/**
 * Answers a request without upgrade on a streaming path: the kubelet checks it like any other, then its
 * proxy refuses it with 500 "Upgrade request required" (`upgradeaware.go` with `upgradeRequired`). Unlike the
 * kubelet, no CRI call is made for it, so no one-time URL is spent.
 */
export async function serveStreamingRequest(req: IncomingMessage, res: ServerResponse, deps: StreamingDeps): Promise<void> {
  const prepared = await prepare(req, new URL(req.url ?? '/', 'http://kubelet'), deps);
  sendAnswer(res, isCall(prepared) ? { status: 500, body: 'Upgrade request required\n' } : prepared);
}

function isCall(p: HttpAnswer | Prepared): p is Prepared {
  return typeof p === 'function';
}

async function prepare(req: IncomingMessage, url: URL, deps: StreamingDeps): Promise<HttpAnswer | Prepared> {
  const route = parseRoute(url.pathname);
  // go-restful's own answers for a path or a method it has no route for.
  if (!route) return { status: 404, body: '404 page not found' };
  if (req.method !== 'GET' && req.method !== 'POST') return { status: 405, body: '405: Method Not Allowed' };
  try {
    return route.kind === 'portForward' ? await preparePortForward(route, url, req, deps) : await prepareCommand(route, url, deps);
  } catch (err) {
    // The runtime failed while the container or sandbox was looked up (the kubelet's GetPods error).
    return runtimeErrorAnswer(err);
  }
}

/** exec and attach (`getExec`, `getAttach`, `GetExec`, `GetAttach`). */
async function prepareCommand(route: Route, url: URL, deps: StreamingDeps): Promise<HttpAnswer | Prepared> {
  const options = commandOptions(url.searchParams);
  if ('status' in options) return options;
  const pod = deps.targets.pod(route.namespace, route.pod);
  if (!pod) return { status: 404, body: 'pod does not exist' };
  const fullName = `${route.pod}_${route.namespace}`;
  const id = await deps.targets.runningContainerId(route.uid || pod.metadata.uid, route.container);
  if (route.kind === 'exec') {
    if (!id) return { status: 500, body: `container not found (${JSON.stringify(route.container)})` };
    const cmd = url.searchParams.getAll('command');
    return (cri) => cri.exec({ container_id: id, cmd, ...options });
  }
  if (!id) return { status: 500, body: `container ${route.container} not found in pod ${fullName}` };
  if (route.uid && route.uid !== pod.metadata.uid) return { status: 500, body: `pod ${fullName} not found` };
  const spec = containerSpec(pod, route.container);
  if (!spec) return { status: 500, body: `container ${route.container} not found in pod ${fullName}` };
  // Whether the process has a terminal was fixed when it started: attach takes it from the spec, not the query.
  const tty = spec.tty === true;
  return (cri) => cri.attach({ container_id: id, ...options, tty });
}

/** `getPortForward`, `GetPortForward`. */
async function preparePortForward(route: Route, url: URL, req: IncomingMessage, deps: StreamingDeps): Promise<HttpAnswer | Prepared> {
  const ports = portForwardPorts(url.searchParams, req);
  if (!Array.isArray(ports)) return ports;
  const pod = deps.targets.pod(route.namespace, route.pod);
  if (!pod) return { status: 404, body: 'pod does not exist' };
  if (route.uid && route.uid !== pod.metadata.uid) return { status: 404, body: 'pod not found' };
  const sandboxId = await deps.targets.readySandboxId(pod.metadata.uid);
  if (!sandboxId) return { status: 500, body: `pod not found (${JSON.stringify(`${route.pod}_${route.namespace}`)})` };
  return (cri) => cri.portForward(sandboxId, ports);
}

function parseRoute(pathname: string): Route | undefined {
  const [kind, ...rest] = pathname.split('/').slice(1);
  if (kind !== 'exec' && kind !== 'attach' && kind !== 'portForward') return undefined;
  if (!PATH_SEGMENTS[kind].includes(rest.length) || rest.some((s) => s === '')) return undefined;
  let parts: string[];
  try {
    parts = rest.map(decodeURIComponent);
  } catch {
    return undefined;
  }
  const [namespace, pod] = parts as [string, string];
  if (kind === 'portForward') return { kind, namespace, pod, uid: parts[2] ?? '', container: '' };
  return { kind, namespace, pod, uid: parts.length === 4 ? parts[2]! : '', container: parts.at(-1)! };
}

/** `KUBELET:pkg/cri/streaming/remotecommand/httpstream.go` `NewOptions`: query `input`, `output`, `error`, `tty`. */
function commandOptions(query: URLSearchParams): { stdin: boolean; stdout: boolean; stderr: boolean; tty: boolean } | HttpAnswer {
  const tty = query.get('tty') === '1';
  const stdin = query.get('input') === '1';
  const stdout = query.get('output') === '1';
  // A terminal merges stderr into stdout: the kubelet drops stderr silently rather than failing.
  const stderr = query.get('error') === '1' && !tty;
  if (!stdin && !stdout && !stderr) return { status: 400, body: 'you must specify at least 1 of stdin, stdout, stderr' };
  return { stdin, stdout, stderr, tty };
}

/**
 * `KUBELET:pkg/cri/streaming/portforward/httpstream.go` `NewV4Options`: SPDY clients name the ports per stream,
 * so the query matters only for a WebSocket request, which must list them (`port=80,443`, repeatable).
 */
function portForwardPorts(query: URLSearchParams, req: IncomingMessage): number[] | HttpAnswer {
  const websocket = /\bupgrade\b/i.test(req.headers.connection ?? '') && (req.headers.upgrade ?? '').toLowerCase() === 'websocket';
  if (!websocket) return [];
  const values = query.getAll('port');
  if (values.length === 0) return { status: 400, body: 'query parameter "port" is required' };
  const ports: number[] = [];
  for (const value of values) {
    if (value === '') return { status: 400, body: 'query parameter "port" cannot be empty' };
    for (const p of value.split(',')) {
      const port = /^\d+$/.test(p) ? Number(p) : NaN;
      if (!(port <= 65535)) {
        const why = Number.isNaN(port) ? 'invalid syntax' : 'value out of range';
        return { status: 400, body: `unable to parse ${JSON.stringify(value)} as a port: strconv.ParseUint: parsing ${JSON.stringify(p)}: ${why}` };
      }
      if (port < 1) return { status: 400, body: `port ${JSON.stringify(value)} must be > 0` };
      ports.push(port);
    }
  }
  return ports;
}

// Go's names of the gRPC codes, as `status.Error(...).Error()` prints them.
const GO_CODE_NAMES = [
  'OK',
  'Canceled',
  'Unknown',
  'InvalidArgument',
  'DeadlineExceeded',
  'NotFound',
  'AlreadyExists',
  'PermissionDenied',
  'ResourceExhausted',
  'FailedPrecondition',
  'Aborted',
  'OutOfRange',
  'Unimplemented',
  'Internal',
  'Unavailable',
  'DataLoss',
  'Unauthenticated',
];
const NOT_FOUND = 5;
const RESOURCE_EXHAUSTED = 8;

/**
 * A failed CRI call as the kubelet answers it (`KUBELET:pkg/cri/streaming/errors.go` `WriteError`): NotFound →
 * 404, ResourceExhausted → 429 with `Retry-After: 60` (containerd's 1000 unused URLs), anything else → 500; the
 * body is the gRPC error's text.
 */
function runtimeErrorAnswer(err: unknown): HttpAnswer {
  if (!(err instanceof RuntimeError)) return { status: 500, body: (err as Error).message };
  const body = `rpc error: code = ${GO_CODE_NAMES[err.grpcCode] ?? `Code(${err.grpcCode})`} desc = ${err.runtimeMessage}`;
  if (err.grpcCode === NOT_FOUND) return { status: 404, body };
  if (err.grpcCode === RESOURCE_EXHAUSTED) return { status: 429, body, headers: { 'Retry-After': '60' } };
  return { status: 500, body };
}

// The caller's credentials stay on the edge; Host names the runtime's server instead. Everything else goes on,
// as the kubelet's proxy sends the cloned request (`Connection`, `Upgrade`, each `X-Stream-Protocol-Version` …).
const DROPPED_HEADERS = new Set(['host', 'authorization', 'proxy-authorization']);

function forwardedHeaders(raw: readonly string[]): Array<[string, string]> {
  const headers: Array<[string, string]> = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if (!DROPPED_HEADERS.has(raw[i]!.toLowerCase())) headers.push([raw[i]!, raw[i + 1]!]);
  return headers;
}
