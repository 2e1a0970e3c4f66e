import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { decodeKubeletStreamOpen } from '../../../shared/kubelet-stream.js';
import type { Logger } from '../../../shared/logger.js';
import type { KubeletEndpoint } from '../../metrics/edge-metrics.js';

/** What the kubelet API of this edge serves (issue 13); each route is edged's. */
export interface KubeletRoutes {
  /** `GET /containerLogs/{ns}/{pod}/{container}` */
  containerLogs(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** `GET /stats/summary`, `GET /metrics/resource` */
  stats?(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** The upgrade requests `/exec`, `/attach`, `/portForward` (SPDY), relayed to the runtime's streaming server. */
  streaming?(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** A plain (not upgraded) request to the streaming paths: the kubelet's answer. */
  streamingPlain?(req: IncomingMessage, res: ServerResponse): void;
}

export interface KubeletServerOptions {
  routes: KubeletRoutes;
  logger: Logger;
  /** An idle connection (no request, no bytes) is closed after this long. */
  idleTimeoutMs?: number;
  /** Each request, by the kubelet's name of its endpoint (metrics). */
  onRequest?(endpoint: KubeletEndpoint): void;
}

/** The endpoint a request path names. */
export function kubeletEndpoint(path: string): KubeletEndpoint {
  if (path.startsWith('/containerLogs/')) return 'containerLogs';
  const streaming = STREAMING.exec(path);
  if (streaming) return streaming[1] as 'exec' | 'attach' | 'portForward';
  const stats = STATS.exec(path);
  if (stats) return stats[1] === 'stats/summary' ? 'stats' : 'metrics';
  return 'other';
}

const STREAMING = /^\/(exec|attach|portForward)\//;
const STATS = /^\/(stats\/summary|metrics\/resource)\/?$/;

/**
 * The kubelet API of an edge node, served without a listening socket: every connection is a dynamic channel
 * stream the cloud opened for the API server (shared/kubelet-stream.ts). Node's HTTP parser serves it as it
 * would a TCP connection: keep-alive requests, and upgrades whose bytes are then relayed unchanged.
 */
export class KubeletServer {
  private readonly server: http.Server;
  private readonly logger: Logger;

  constructor(private readonly options: KubeletServerOptions) {
    this.logger = options.logger;
    this.server = http.createServer({ keepAliveTimeout: options.idleTimeoutMs ?? 60_000 }, (req, res) => void this.serve(req, res));
    // Node's default 5 min request timeout would end a followed log or a long exec.
    this.server.requestTimeout = 0;
    this.server.headersTimeout = 30_000;
    this.server.timeout = options.idleTimeoutMs ?? 0;
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head));
    this.server.on('clientError', (err, socket) => {
      this.logger.info({ err }, 'kubelet API: bad request on a stream');
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      else socket.destroy();
    });
  }

  /** A stream the cloud opened: throws (the cloud sees the reason) unless its header is a kubelet stream's. */
  accept(stream: Duplex, header: Uint8Array): void {
    const open = decodeKubeletStreamOpen(header);
    if ('error' in open) throw new Error(open.error);
    stream.on('error', (err) => this.logger.debug({ err, target: open.target }, 'kubelet API stream ended with an error'));
    this.logger.debug({ target: open.target, caller: open.caller }, 'kubelet API connection from the cloud');
    this.server.emit('connection', stream);
  }

  close(): void {
    this.server.closeAllConnections();
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://kubelet').pathname;
    const { routes } = this.options;
    // Classified once: the same answer counts the request and picks its route.
    const endpoint = kubeletEndpoint(path);
    this.options.onRequest?.(endpoint);
    try {
      if (path === '/healthz') return void res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('ok');
      if (endpoint === 'containerLogs') return await routes.containerLogs(req, res);
      if ((endpoint === 'stats' || endpoint === 'metrics') && routes.stats) return await routes.stats(req, res);
      if (isStreaming(endpoint) && routes.streamingPlain) return routes.streamingPlain(req, res);
      // The kubelet's mux for a path it does not serve.
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('404 page not found\n');
    } catch (err) {
      this.logger.warn({ err, path }, 'kubelet API request failed');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`${(err as Error).message}\n`);
      else res.destroy();
    }
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const endpoint = kubeletEndpoint(new URL(req.url ?? '/', 'http://kubelet').pathname);
    this.options.onRequest?.(endpoint);
    if (isStreaming(endpoint) && this.options.routes.streaming) return this.options.routes.streaming(req, socket, head);
    socket.end('HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n404 page not found\n');
  }
}

function isStreaming(endpoint: KubeletEndpoint): endpoint is 'exec' | 'attach' | 'portForward' {
  return endpoint === 'exec' || endpoint === 'attach' || endpoint === 'portForward';
}
