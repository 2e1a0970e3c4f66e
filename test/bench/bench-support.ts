// Process and measurement helpers for benchmarks (no vitest here: benchmarks are plain programs).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { stringify } from 'yaml';
import { freePort } from '../support/ports.js';

export { freePort };

/** The repository root, whether this runs compiled (dist/test/bench) or from source (test/bench). */
export const ROOT = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../..' : '../..', import.meta.url));
export const CLOUDCORE_BIN = join(ROOT, 'dist/cloudcore/main.js');
/** The V8 flags build/install.sh runs cloudcore with (docs/performance.md, streams); KE_BENCH_CLOUD_NODE_ARGS replaces them. */
export const CLOUDCORE_V8_FLAGS = '--max-semi-space-size=32';

/** Node flags from the environment variable `env` (space-separated), else `fallback`. */
export function nodeArgsFrom(env: string, fallback: string): string[] {
  return (process.env[env] ?? fallback).split(' ').filter(Boolean);
}
export const EDGECORE_BIN = join(ROOT, 'dist/edgecore/main.js');

/** One benchmark figure, printed as one JSON line. */
export function report(metric: string, value: number, unit: string, extra: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ metric, value: Math.round(value * 100) / 100, unit, ...extra })}\n`);
}

export function note(text: string): void {
  process.stderr.write(`bench: ${text}\n`);
}

const cleanups: Array<() => void> = [];
export function onExit(fn: () => void): void {
  cleanups.push(fn);
}
export function cleanup(): void {
  for (const fn of cleanups.splice(0).reverse()) {
    try {
      fn();
    } catch {
      /* best effort */
    }
  }
}
process.on('exit', cleanup);
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));

export function benchDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ke-bench-'));
  onExit(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface Proc {
  child: ChildProcess;
  waitForLog(predicate: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
}

/** Starts a program (optionally through a wrapper such as `ip netns exec`) and follows its JSON log. */
export function start(bin: string, args: string[], opts: { wrapper?: string[]; nodeArgs?: string[]; ipc?: boolean } = {}): Proc {
  const argv = [...(opts.nodeArgs ?? []), bin, ...args];
  const [cmd, ...cmdArgs] = opts.wrapper ? [...opts.wrapper, process.execPath, ...argv] : [process.execPath, ...argv];
  const child = spawn(cmd!, cmdArgs, { stdio: ['ignore', 'pipe', 'inherit', ...(opts.ipc ? ['ipc' as const] : [])] });
  onExit(() => child.kill('SIGKILL'));
  const lines: Array<Record<string, unknown>> = [];
  const waiters = new Set<{ p: (l: Record<string, unknown>) => boolean; r: (l: Record<string, unknown>) => void }>();
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let line: Record<string, unknown>;
    try {
      line = JSON.parse(text) as Record<string, unknown>;
    } catch {
      line = { msg: text };
      if (process.env.KE_BENCH_DEBUG) process.stderr.write(`${text}\n`);
    }
    if (typeof line.level === 'number' && line.level >= 50) note(`${String(line.msg)} ${JSON.stringify(line.err ?? '')}`.slice(0, 300));
    lines.push(line);
    if (lines.length > 2000) lines.splice(0, 1000);
    for (const w of waiters)
      if (w.p(line)) {
        waiters.delete(w);
        w.r(line);
      }
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    exited,
    waitForLog(predicate, timeoutMs = 60_000) {
      const found = lines.find(predicate);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const w = { p: predicate, r: resolve };
        waiters.add(w);
        setTimeout(() => {
          if (waiters.delete(w)) reject(new Error(`${bin}: expected log line did not appear within ${timeoutMs} ms`));
        }, timeoutMs).unref();
      });
    },
  };
}

/** Resident set size of a process, from /proc; `peak` for the largest it has been (VmHWM). */
export function rssKiB(pid: number, which: 'now' | 'peak' = 'now'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number((which === 'peak' ? /VmHWM:\s+(\d+)/ : /VmRSS:\s+(\d+)/).exec(status)?.[1] ?? Number.NaN);
}

export interface CloudFiles {
  dir: string;
  configPath: string;
  hubPort: number;
  certPort: number;
  caCertFile: string;
  caKeyFile: string;
  storePath: string;
}

export async function writeCloudConfig(dir: string, extra: Record<string, unknown> = {}, address = '127.0.0.1'): Promise<CloudFiles> {
  mkdirSync(join(dir, 'cloud'), { recursive: true });
  const files = {
    dir,
    configPath: join(dir, 'cloudcore.yaml'),
    hubPort: await freePort(),
    certPort: await freePort(),
    caCertFile: join(dir, 'cloud', 'ca.crt'),
    caKeyFile: join(dir, 'cloud', 'ca.key'),
    storePath: join(dir, 'cloud', 'objects.db'),
  };
  const config = {
    logLevel: 'warn',
    ...(extra.kubeAPI ? { kubeAPI: extra.kubeAPI } : {}),
    monitorServer: { port: 0, ...(extra.monitorServer as object) },
    modules: {
      cloudHub: {
        address,
        port: files.hubPort,
        certServerAddress: address,
        certServerPort: files.certPort,
        advertiseAddresses: [address],
        caCertFile: files.caCertFile,
        caKeyFile: files.caKeyFile,
        serverCertFile: join(dir, 'cloud', 'server.crt'),
        serverKeyFile: join(dir, 'cloud', 'server.key'),
        ...(extra.cloudHub as object),
      },
      edgeController: { source: 'local', localStorePath: files.storePath, ...(extra.edgeController as object) },
    },
  };
  writeFileSync(files.configPath, stringify(config));
  return files;
}

/** CPU seconds (user + system) a process has used, from /proc. */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Sorted-sample percentile. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Runs a benchmark's main: exit 0 when it finished, 1 with the error when it failed; cleans up either way. */
export function runBench(main: () => Promise<void>): void {
  main().then(
    () => {
      cleanup();
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
      cleanup();
      process.exit(1);
    },
  );
}
