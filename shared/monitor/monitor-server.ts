import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { ConfigError, asError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Module } from '../module-runtime.js';
import type { MonitorServerConfig } from './monitor-config.js';

/** A readiness condition: undefined when met, otherwise why not (shown by /readyz). */
export type ReadinessCheck = () => string | undefined | Promise<string | undefined>;

export interface MonitorServerDeps {
  config: MonitorServerConfig;
  /** The daemon's registry; its metrics are what /metrics serves. */
  registry: Registry;
  logger: Logger;
  /** Where the slice sits in the daemon's config, for error messages (`monitorServer`). */
  configPath?: string;
}

/**
 * One HTTP port per daemon: `/metrics` (Prometheus text format), `/healthz` (the process answers) and `/readyz`
 * (every readiness check passes and the daemon is not draining). First module to start, last to stop, so
 * readiness can be seen failing while the others start and stop.
 */
export class MonitorServer implements Module {
  readonly name = 'monitor';
  private readonly checks = new Map<string, ReadinessCheck>();
  private server: Server | undefined;
  private draining = false;
  /** Where it listens once started (the port when 0 was asked for). */
  port = 0;

  constructor(private readonly deps: MonitorServerDeps) {}

  /** A named condition /readyz requires; names are shown in its answer. */
  addReadiness(name: string, check: ReadinessCheck): void {
    this.checks.set(name, check);
  }

  /** From now on /readyz answers 503 ("draining"); /healthz and /metrics keep answering. */
  drain(): void {
    this.draining = true;
  }

  async start(): Promise<void> {
    const { config, logger } = this.deps;
    if (!config.enable) return;
    const server = createServer((req, res) => void this.handle(req, res));
    server.keepAliveTimeout = 65_000;
    server.requestTimeout = 10_000;
    const path = this.deps.configPath ?? 'monitorServer';
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: config.address, port: config.port }, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const why = e.code === 'EADDRINUSE' ? 'the port is in use' : e.code === 'EADDRNOTAVAIL' ? 'the address is not on this host' : e.message;
      throw new ConfigError([`${path}: cannot listen on ${config.address}:${config.port}: ${why} (${e.code ?? 'error'})`], { cause: err });
    }
    this.server = server;
    this.port = (server.address() as { port: number }).port;
    logger.info({ url: `http://${config.address.includes(':') ? `[${config.address}]` : config.address}:${this.port}` }, 'monitor server listening');
  }

  async stop(): Promise<void> {
    this.draining = true;
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  /** Every failing condition, `draining` first; empty when ready. */
  async notReady(): Promise<string[]> {
    const failed: string[] = this.draining ? ['draining: shutting down'] : [];
    for (const [name, check] of this.checks) {
      try {
        const why = await check();
        if (why !== undefined) failed.push(`${name}: ${why}`);
      } catch (err) {
        failed.push(`${name}: ${asError(err).message}`);
      }
    }
    return failed;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'method not allowed\n');
      if (path === '/metrics') {
        const body = await this.deps.registry.metrics();
        return send(res, 200, body, this.deps.registry.contentType);
      }
      if (path === '/healthz' || path === '/livez') return send(res, 200, 'ok\n');
      if (path === '/readyz') {
        const failed = await this.notReady();
        if (failed.length === 0) return send(res, 200, 'ok\n');
        return send(res, 503, failed.map((f) => `not ready: ${f}\n`).join(''));
      }
      return send(res, 404, `no such path ${path}; try /metrics, /healthz or /readyz\n`);
    } catch (err) {
      this.deps.logger.warn({ err: asError(err), path }, 'monitor request failed');
      if (!res.headersSent) send(res, 500, `${asError(err).message}\n`);
      else res.destroy();
    }
  }
}

function send(res: ServerResponse, status: number, body: string, contentType = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

/** A registry with the standard process and Node.js metrics (`process_*`, `nodejs_*`) every daemon exports. */
export function daemonRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}
