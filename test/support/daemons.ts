import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import Database from 'better-sqlite3';
import { stringify } from 'yaml';
import { onTestFailed, onTestFinished } from 'vitest';
import { LocalObjectStore } from '../../cloudcore/edgecontroller/local-object-store.js';
import { EdgeCore } from '../../edgecore/edgecore.js';
import { loadEdgeCoreConfig } from '../../edgecore/config.js';
import { createLogger, type Logger } from '../../shared/logger.js';
import { freePort } from './harness.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CLOUDCORE_BIN = join(ROOT, 'dist/cloudcore/main.js');
export const EDGECORE_BIN = join(ROOT, 'dist/edgecore/main.js');

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export interface Daemon {
  child: ChildProcess;
  logs: LogLine[];
  stderr: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitForLog(predicate: (line: LogLine) => boolean, timeoutMs?: number, what?: string): Promise<LogLine>;
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };

export interface SpawnDaemonOptions {
  /** Prefixes the command line, e.g. `EdgeNetns.command` to run the daemon in an edge's network namespace. */
  command?: (argv: readonly string[]) => string[];
  /** Node flags before the daemon's script (e.g. `--import` of a probe). */
  nodeArgs?: readonly string[];
  /** Added to the inherited environment. */
  env?: Readonly<Record<string, string>>;
}

/** Spawns a daemon from dist/ and follows its JSON log; killed (SIGKILL) when the test ends. */
export function spawnDaemon(bin: string, args: string[], name: string, options: SpawnDaemonOptions = {}): Daemon {
  // nsenter execs the daemon without forking, so the child's pid stays the daemon's and kill() reaches it.
  const [program, ...rest] = (options.command ?? ((argv) => [...argv]))([process.execPath, ...(options.nodeArgs ?? []), bin, ...args]);
  const child = spawn(program!, rest, { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ? { ...process.env, ...options.env } : undefined });
  const logs: LogLine[] = [];
  const stderr: string[] = [];
  const waiters = new Set<{ predicate: (l: LogLine) => boolean; resolve: (l: LogLine) => void }>();
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let line: LogLine;
    try {
      line = JSON.parse(text) as LogLine;
    } catch {
      line = { level: 30, msg: text };
    }
    logs.push(line);
    for (const w of waiters)
      if (w.predicate(line)) {
        waiters.delete(w);
        w.resolve(line);
      }
  });
  createInterface({ input: child.stderr! }).on('line', (text) => stderr.push(text));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  onTestFailed(() => {
    const tail = logs.slice(-40).map((l) => JSON.stringify(l).slice(0, 400));
    console.error(`--- last log lines of ${name} (pid ${child.pid}) ---\n${tail.join('\n')}\n${stderr.join('\n')}`);
  });
  return {
    child,
    logs,
    stderr,
    exited,
    waitForLog(predicate, timeoutMs = 20_000, what = 'log line') {
      const found = logs.find(predicate);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const waiter = { predicate, resolve };
        waiters.add(waiter);
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`${name}: no ${what} within ${timeoutMs} ms`));
        }, timeoutMs);
        const settle = resolve;
        waiter.resolve = (l) => {
          clearTimeout(timer);
          settle(l);
        };
        void exited.then(({ code, signal }) => {
          if (!waiters.has(waiter)) return;
          waiters.delete(waiter);
          clearTimeout(timer);
          reject(new Error(`${name} exited (code ${code}, signal ${signal}) before ${what}: ${stderr.join(' ')}`));
        });
      });
    },
    async kill(signal = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

export interface CloudSetup {
  dir: string;
  hubPort: number;
  certPort: number;
  configPath: string;
  storePath: string;
}

/**
 * Writes a cloudcore config for `dir` on fixed free ports (so a restarted cloudcore comes back on them). With
 * `kubeconfig` the objects come from that cluster, otherwise from the local store.
 */
export async function cloudSetup(
  dir: string,
  overrides: {
    kubeconfig?: string;
    cloudHub?: Record<string, unknown>;
    edgeController?: Record<string, unknown>;
    monitorServer?: Record<string, unknown>;
    router?: Record<string, unknown>;
    streams?: Record<string, unknown>;
  } = {},
): Promise<CloudSetup> {
  const hubPort = await freePort();
  const certPort = await freePort();
  const storePath = join(dir, 'cloud', 'objects.db');
  const config = {
    logLevel: 'debug',
    ...(overrides.kubeconfig ? { kubeAPI: { kubeconfig: overrides.kubeconfig, qps: 200, burst: 400 } } : {}),
    // Many daemons share the host in tests: the monitor server on a free port (logged) unless a test fixes one.
    monitorServer: { port: 0, ...overrides.monitorServer },
    modules: {
      cloudHub: {
        address: '127.0.0.1',
        port: hubPort,
        certServerAddress: '127.0.0.1',
        certServerPort: certPort,
        advertiseAddresses: ['127.0.0.1'],
        caCertFile: join(dir, 'cloud', 'ca.crt'),
        caKeyFile: join(dir, 'cloud', 'ca.key'),
        serverCertFile: join(dir, 'cloud', 'server.crt'),
        serverKeyFile: join(dir, 'cloud', 'server.key'),
        ...(overrides.cloudHub as object),
      },
      edgeController: overrides.kubeconfig
        ? // Renewals well inside the test control plane's 10 s node grace period.
          {
            source: 'kubernetes',
            webhookAddress: '127.0.0.1',
            webhookPort: 0,
            leaseRenewIntervalMs: 2_000,
            leaseDurationSeconds: 10,
            ...(overrides.edgeController as object),
          }
        : { source: 'local', localStorePath: storePath, pollIntervalMs: 20, ...(overrides.edgeController as object) },
      ...(overrides.router ? { router: overrides.router } : {}),
      // The kubelet relay between replicas on a free port too, unless a test fixes one.
      ...(overrides.streams ? { streams: { replica: { address: '127.0.0.1', port: 0 }, ...overrides.streams } } : {}),
    },
  };
  const configPath = join(dir, 'cloudcore.yaml');
  mkdirSync(dir, { recursive: true });
  writeFileSync(configPath, stringify(config));
  return { dir, hubPort, certPort, configPath, storePath };
}

export interface Cloud extends Daemon {
  setup: CloudSetup;
  /** The local object store, opened in the test process (the test plays the role of the API server). */
  store: LocalObjectStore;
  token(ttl?: string): Promise<string>;
}

export async function startCloud(setup: CloudSetup, name = 'cloudcore'): Promise<Cloud> {
  const daemon = spawnDaemon(CLOUDCORE_BIN, ['--config', setup.configPath], name);
  await daemon.waitForLog((l) => l.msg === 'cloudcore ready', 30_000, 'ready');
  const store = new LocalObjectStore(setup.storePath);
  onTestFinished(() => store.close());
  return {
    ...daemon,
    setup,
    store,
    token: (ttl = '1h') => runCli(CLOUDCORE_BIN, ['--config', setup.configPath, 'token', 'create', '--ttl', ttl]).then((r) => r.stdout.trim()),
  };
}

export function runCli(bin: string, args: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

export interface EdgeSetup {
  nodeName: string;
  dir: string;
  configPath: string;
  dbPath: string;
  config: Record<string, unknown>;
}

/** An edgecore config for `nodeName` under `dir`, pointed at the cloud (or at `hubPort`, e.g. a proxy). */
export function edgeSetup(
  dir: string,
  nodeName: string,
  cloud: CloudSetup,
  opts: {
    hubPort?: number;
    edgeHub?: Record<string, unknown>;
    edged?: Record<string, unknown>;
    devices?: boolean;
    eventBus?: Record<string, unknown>;
    serviceBus?: Record<string, unknown>;
    monitorServer?: Record<string, unknown>;
  } = {},
): EdgeSetup {
  const base = join(dir, nodeName);
  const dbPath = join(base, 'edgecore.db');
  const config = {
    logLevel: 'debug',
    nodeName,
    database: { path: dbPath },
    monitorServer: { port: 0, ...opts.monitorServer },
    modules: {
      // Channel tests count reports exactly; edged's node status joins only where a test asks for it.
      edged: { enable: false, runtimeEndpoint: '', ...opts.edged },
      // Devices (an MQTT broker per edge, on a free port) only where a test asks for them.
      eventBus: { enable: opts.devices ?? false, internal: { port: 0 }, ...opts.eventBus },
      deviceTwin: { enable: opts.devices ?? false },
      ...(opts.serviceBus ? { serviceBus: opts.serviceBus } : {}),
      edgeHub: {
        server: `127.0.0.1:${opts.hubPort ?? cloud.hubPort}`,
        certServer: `https://127.0.0.1:${cloud.certPort}`,
        caFile: join(base, 'ca.crt'),
        certFile: join(base, 'node.crt'),
        keyFile: join(base, 'node.key'),
        reconnectInitialDelayMs: 200,
        reconnectMaxDelayMs: 2_000,
        ...opts.edgeHub,
      },
    },
  };
  const configPath = join(dir, `${nodeName}.yaml`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(configPath, stringify(config));
  return { nodeName, dir: base, configPath, dbPath, config };
}

export function startEdge(setup: EdgeSetup, token?: string, options: SpawnDaemonOptions = {}): Daemon {
  return spawnDaemon(EDGECORE_BIN, ['--config', setup.configPath, ...(token ? ['--token', token] : [])], setup.nodeName, options);
}

/** An EdgeCore inside the test process (for many edges at once, or to reach its bus). */
export async function startEdgeInProcess(setup: EdgeSetup, token?: string, logger: Logger = debugLogger(setup.nodeName)): Promise<EdgeCore> {
  const overrides = structuredClone(setup.config) as DeepPartial<{ modules: { edgeHub: { token: string } } }> & Record<string, unknown>;
  if (token) overrides.modules!.edgeHub!.token = token;
  const edge = new EdgeCore({ config: loadEdgeCoreConfig({ overrides }), logger });
  await edge.start();
  onTestFinished(() => edge.stop());
  return edge;
}

export function debugLogger(name: string): Logger {
  return createLogger({ name, level: (process.env.TEST_LOG_LEVEL as 'debug') ?? 'silent' });
}

/** key → resourceVersion of what an edge has committed, read from its SQLite file. */
export function readEdgeStore(dbPath: string): Map<string, { uid: string; resourceVersion: string; value: string }> {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('SELECT key, uid, rv, value FROM meta').all() as Array<{ key: string; uid: string; rv: string; value: Buffer }>;
    return new Map(rows.map((r) => [r.key, { uid: r.uid, resourceVersion: r.rv, value: Buffer.from(r.value).toString('utf8') }]));
  } catch (err) {
    if (/no such table/.test(String(err))) return new Map();
    throw err;
  } finally {
    db.close();
  }
}

/** What the cloud says `node` should hold: key → resourceVersion. */
export function desiredFor(store: LocalObjectStore, node: string): Map<string, { uid: string; resourceVersion: string }> {
  return new Map(
    store
      .live()
      .filter((o) => o.node === node)
      .map((o) => [o.key, { uid: o.uid, resourceVersion: String(o.resourceVersion) }]),
  );
}
