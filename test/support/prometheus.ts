import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { onTestFailed, onTestFinished } from 'vitest';
import { stringify } from 'yaml';
import { eventually } from './harness.js';
import { freePort } from './ports.js';

/** Debian's prometheus package (build/scripts/prepare.mjs installs it for the tests). */
export const PROMETHEUS_BIN = '/usr/bin/prometheus';

export interface Prometheus {
  url: string;
  /** An instant query through the HTTP API: each series' labels and value. */
  query(promql: string): Promise<Array<{ metric: Record<string, string>; value: number }>>;
  /** The single value of a query that returns one series; undefined when it returns none. */
  value(promql: string): Promise<number | undefined>;
}

/**
 * A real Prometheus scraping `targets` (job name → host:port list) every second, with its own data directory;
 * killed when the test ends. Resolves once every target has been scraped successfully (`up` is 1).
 */
export async function startPrometheus(dir: string, targets: Record<string, string[]>, ruleFiles: string[] = []): Promise<Prometheus> {
  if (!existsSync(PROMETHEUS_BIN)) throw new Error(`${PROMETHEUS_BIN} missing: install the Debian package prometheus (apt-get install prometheus)`);
  mkdirSync(join(dir, 'data'), { recursive: true });
  const configFile = join(dir, 'prometheus.yml');
  writeFileSync(
    configFile,
    stringify({
      global: { scrape_interval: '1s', scrape_timeout: '900ms', evaluation_interval: '1s' },
      rule_files: ruleFiles,
      scrape_configs: Object.entries(targets).map(([job, addresses]) => ({ job_name: job, static_configs: [{ targets: addresses }] })),
    }),
  );
  const port = await freePort();
  const child = spawn(
    PROMETHEUS_BIN,
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      // Instant queries look back this far for a sample; scrapes come every second.
      '--query.lookback-delta=5s',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const log: string[] = [];
  child.stderr!.on('data', (chunk: Buffer) => log.push(chunk.toString()));
  onTestFinished(() => {
    child.kill('SIGKILL');
  });
  onTestFailed(() => console.error(`--- prometheus log ---\n${log.join('').split('\n').slice(-30).join('\n')}`));
  const url = `http://127.0.0.1:${port}`;
  const query = async (promql: string): Promise<Array<{ metric: Record<string, string>; value: number }>> => {
    const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = (await res.json()) as {
      status: string;
      error?: string;
      data?: { result: Array<{ metric: Record<string, string>; value: [number, string] }> };
    };
    if (body.status !== 'success') throw new Error(`prometheus query ${promql}: ${body.error ?? res.status}`);
    return body.data!.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
  };
  const prometheus: Prometheus = {
    url,
    query,
    async value(promql) {
      const result = await query(promql);
      if (result.length > 1) throw new Error(`prometheus query ${promql} returned ${result.length} series`);
      return result[0]?.value;
    },
  };
  const expected = Object.values(targets).flat().length;
  // Start-up (TSDB, WAL) and the first scrapes: generous for a loaded 2-core machine.
  await eventually(
    async () => {
      const up = await query('up == 1');
      if (up.length !== expected) throw new Error(`${up.length} of ${expected} targets up`);
    },
    60_000,
    250,
  );
  return prometheus;
}
