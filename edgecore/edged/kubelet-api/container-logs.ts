import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../../../shared/logger.js';
import { readContainerLogs, type LogReadDeps } from './container-log-reader.js';
import { parseLogOptions } from './log-options.js';

export { readContainerLogs, type LogReadDeps, type LogReadStats } from './container-log-reader.js';
export { parseLogOptions, type LogOptions, type LogOptionsError } from './log-options.js';

// `GET /containerLogs/{namespace}/{pod}/{container}` as kubernetes v1.33 pkg/kubelet/server/server.go
// getContainerLogs answers it (docs/kubeedge-stream-facts.md §1.1): 400/422 for the query, 404 for an
// unknown pod or container, 400 with the kubelet's text when the container has no log to show, else 200 and
// the log streamed, flushed as it is read.

/** Where a container's log is, or the kubelet's answer when there is none. */
export type LogTarget = { logPath: string; isRunning(): Promise<boolean> } | { status: number; message: string };

export interface ContainerLogsDeps {
  /** The log file of the container (of its previous instance with `previous`), as the kubelet chooses it. */
  resolve(namespace: string, pod: string, container: string, previous: boolean): Promise<LogTarget>;
  now?: () => Date;
  /** How often a follower looks at the file without a watch event; 1 s as in the kubelet. */
  pollIntervalMs?: number;
  watch?: LogReadDeps['watch'];
  logger?: Logger;
}

const PATH_PREFIX = '/containerLogs/';

/** `{namespace, pod, container}` of a containerLogs path; undefined when the path is not one (404). */
export function parseContainerLogsPath(pathname: string): { namespace: string; pod: string; container: string } | undefined {
  if (!pathname.startsWith(PATH_PREFIX)) return undefined;
  const parts = pathname.slice(PATH_PREFIX.length).split('/');
  if (parts.length !== 3 || parts.some((p) => p === '')) return undefined;
  try {
    const [namespace, pod, container] = parts.map(decodeURIComponent) as [string, string, string];
    return { namespace, pod, container };
  } catch {
    return undefined;
  }
}

export async function serveContainerLogs(req: IncomingMessage, res: ServerResponse, deps: ContainerLogsDeps): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://kubelet');
  const target = parseContainerLogsPath(url.pathname);
  if (!target) return reply(res, 404, '404 page not found');
  if (req.method !== 'GET') return reply(res, 405, `method ${req.method} is not allowed`);
  const options = parseLogOptions(url.searchParams);
  if ('error' in options) {
    deps.logger?.debug({ ...target, reason: options.detail }, 'container logs query refused');
    return reply(res, options.status, options.error);
  }
  const { namespace, pod, container } = target;
  let found: LogTarget;
  try {
    found = await deps.resolve(namespace, pod, container, options.previous);
  } catch (err) {
    return reply(res, 500, (err as Error).message);
  }
  // The kubelet looks the pod and container up (404) before it refuses a stream it cannot split (400).
  if ('status' in found && found.status === 404) return reply(res, found.status, found.message);
  if (options.stream !== undefined && options.stream !== 'All') {
    return reply(
      res,
      400,
      `unable to return the given log stream: ${JSON.stringify(options.stream)}. Please enable PodLogsQuerySplitStreams feature gate in kubelet`,
    );
  }
  if ('status' in found) return reply(res, found.status, found.message);
  res.writeHead(200, { 'Content-Type': 'text/plain' });
  // Headers go now, as the kubelet's zero-byte write and flush: a follower sees the 200 before any line.
  res.flushHeaders();
  const aborted = new AbortController();
  res.once('close', () => aborted.abort());
  const log = found;
  const { now, pollIntervalMs, watch } = deps;
  try {
    await readContainerLogs(log.logPath, options, res, { isRunning: () => log.isRunning(), now, pollIntervalMs, watch }, aborted.signal);
  } catch (err) {
    // After the 200 the kubelet's WriteError can only append its text to the body; so does this.
    deps.logger?.warn({ err, ...target }, 'container log read failed');
    if (!res.destroyed) res.write((err as Error).message);
  }
  if (!res.destroyed) res.end();
}

function reply(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}
