import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../../../shared/logger.js';
import { formatResourceMetrics, RESOURCE_METRICS_CONTENT_TYPE } from './resource-metrics.js';
import type { StatsCollector } from './stats-collector.js';
import { cpuAndMemoryOnly, summaryJson } from './stats-summary.js';

// The kubelet's two stats endpoints (issue 13), as pkg/kubelet/server/server.go routes them in v1.33:
// `/metrics/resource` (a Prometheus handler on that exact path: no `/metrics/resource/v1alpha1` any more)
// and `/stats/summary` (GET or POST, pkg/kubelet/server/stats/handler.go).

export const RESOURCE_METRICS_PATH = '/metrics/resource';
export const STATS_SUMMARY_PATH = '/stats/summary';

export interface StatsDeps {
  /** Holds the CRI client, node name, cgroup root and clock, and the previous CPU samples: it outlives requests. */
  collector: StatsCollector;
  logger?: Logger;
}

/**
 * Serves `GET /metrics/resource` and `GET|POST /stats/summary[?only_cpu_and_memory=true]`. Resolves false,
 * without touching `res`, for any other path, so the caller can route it elsewhere.
 */
export async function serveStats(req: IncomingMessage, res: ServerResponse, deps: StatsDeps): Promise<boolean> {
  const url = new URL(req.url ?? '/', 'http://kubelet');
  if (url.pathname === RESOURCE_METRICS_PATH) {
    if (!allow(req, res, ['GET', 'HEAD'])) return true;
    // Like the kubelet, a failed sample is still a 200 scrape: `resource_scrape_error 1` says what happened.
    const summary = await deps.collector.summary().catch((err: unknown) => {
      deps.logger?.warn({ err }, 'resource metrics scrape failed');
      return undefined;
    });
    send(res, 200, RESOURCE_METRICS_CONTENT_TYPE, formatResourceMetrics(summary), req.method === 'HEAD');
    return true;
  }
  if (url.pathname === STATS_SUMMARY_PATH) {
    if (!allow(req, res, ['GET', 'POST'])) return true;
    let body: string;
    try {
      const summary = await deps.collector.summary();
      // handler.go: only the exact single value "true" trims the summary.
      const only = url.searchParams.getAll('only_cpu_and_memory');
      body = summaryJson(only.length === 1 && only[0] === 'true' ? cpuAndMemoryOnly(summary) : summary);
    } catch (err) {
      deps.logger?.warn({ err }, 'stats summary failed');
      send(res, 500, 'text/plain; charset=utf-8', `Internal Error: ${(err as Error).message}`);
      return true;
    }
    send(res, 200, 'application/json', body);
    return true;
  }
  return false;
}

function allow(req: IncomingMessage, res: ServerResponse, methods: string[]): boolean {
  if (methods.includes(req.method ?? 'GET')) return true;
  res.setHeader('Allow', methods.join(', '));
  send(res, 405, 'text/plain; charset=utf-8', `${req.method} not allowed\n`);
  return false;
}

function send(res: ServerResponse, status: number, contentType: string, body: string, headOnly = false): void {
  const bytes = Buffer.from(body, 'utf8');
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': bytes.length });
  res.end(headOnly ? undefined : bytes);
}
