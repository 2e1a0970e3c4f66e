import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Logger } from '../../shared/logger.js';
import type { CriRuntime } from './cri/cri-types.js';
import type { Container, Pod, Probe } from './pod-types.js';

type Kind = 'liveness' | 'readiness' | 'startup';

interface Worker {
  timer: NodeJS.Timeout | undefined;
  successes: number;
  failures: number;
  /** The probe's verdict under its thresholds; undefined until it has one. */
  result: boolean | undefined;
  lastMessage: string;
}

interface ContainerProbes {
  id: string;
  workers: Partial<Record<Kind, Worker>>;
  stopped: boolean;
}

/**
 * Runs the liveness, readiness and startup probes of running containers (exec through the runtime, HTTP and
 * TCP to the pod's address) with the kubelet's timing and thresholds, and says when a verdict changes.
 */
export class ProbeManager {
  private readonly containers = new Map<string, ContainerProbes>();

  constructor(
    private readonly deps: {
      cri: CriRuntime;
      /** A verdict changed: the pod should be synced. */
      onChange(uid: string): void;
      onFailure(pod: Pod, container: string, kind: Kind, message: string): void;
      logger: Logger;
    },
  ) {}

  /** Starts the probes of a running container once; probes of an earlier instance stop. */
  ensure(pod: Pod, container: Container, id: string, podIP: string): void {
    const key = `${pod.metadata.uid}/${container.name}`;
    const current = this.containers.get(key);
    if (current?.id === id) return;
    if (current) stop(current);
    if (!container.livenessProbe && !container.readinessProbe && !container.startupProbe) return this.containers.delete(key) as unknown as void;
    const entry: ContainerProbes = { id, workers: {}, stopped: false };
    this.containers.set(key, entry);
    const host = pod.spec.hostNetwork ? '127.0.0.1' : podIP || '127.0.0.1';
    for (const [kind, probe] of [
      ['startup', container.startupProbe],
      ['liveness', container.livenessProbe],
      ['readiness', container.readinessProbe],
    ] as const) {
      if (!probe) continue;
      const worker: Worker = { timer: undefined, successes: 0, failures: 0, result: undefined, lastMessage: '' };
      entry.workers[kind] = worker;
      const tick = async (): Promise<void> => {
        if (entry.stopped) return;
        // Liveness and readiness wait for the startup probe, as in the kubelet.
        if (kind !== 'startup' && entry.workers.startup && entry.workers.startup.result !== true) return this.schedule(entry, worker, probe, tick);
        const { ok, message } = await runProbe(this.deps.cri, probe, id, host, container).catch((err: Error) => ({ ok: false, message: err.message }));
        if (entry.stopped) return;
        this.record(pod, container.name, kind, probe, worker, ok, message);
        this.schedule(entry, worker, probe, tick);
      };
      worker.timer = setTimeout(() => void tick(), (probe.initialDelaySeconds ?? 0) * 1000);
    }
  }

  ready(uid: string, name: string, id: string): boolean | undefined {
    const entry = this.live(uid, name, id);
    if (!entry?.workers.readiness) return undefined;
    return entry.workers.readiness.result === true;
  }

  /** Startup probe verdict; undefined when none runs (yet) for this container instance. */
  started(uid: string, name: string, id: string): boolean | undefined {
    const worker = this.live(uid, name, id)?.workers.startup;
    return worker ? worker.result === true : undefined;
  }

  /** The failure message when the liveness (or a failed startup) probe says the container must restart. */
  mustRestart(uid: string, name: string, id: string): string | undefined {
    const entry = this.live(uid, name, id);
    for (const kind of ['liveness', 'startup'] as const)
      if (entry?.workers[kind]?.result === false) return `${kind} probe failed: ${entry.workers[kind]!.lastMessage}`;
    return undefined;
  }

  forget(uid: string, name?: string): void {
    for (const [key, entry] of this.containers) {
      if (key === `${uid}/${name}` || (name === undefined && key.startsWith(`${uid}/`))) {
        stop(entry);
        this.containers.delete(key);
      }
    }
  }

  stopAll(): void {
    for (const entry of this.containers.values()) stop(entry);
    this.containers.clear();
  }

  private live(uid: string, name: string, id: string): ContainerProbes | undefined {
    const entry = this.containers.get(`${uid}/${name}`);
    return entry?.id === id ? entry : undefined;
  }

  private record(pod: Pod, name: string, kind: Kind, probe: Probe, worker: Worker, ok: boolean, message: string): void {
    worker.lastMessage = message;
    if (ok) (worker.successes++, (worker.failures = 0));
    else (worker.failures++, (worker.successes = 0));
    let verdict = worker.result;
    // Readiness starts out false; liveness and startup count as passing until their failures add up.
    if (ok && worker.successes >= (kind === 'readiness' ? (probe.successThreshold ?? 1) : 1)) verdict = true;
    if (!ok && worker.failures >= (probe.failureThreshold ?? 3)) verdict = false;
    if (!ok) this.deps.onFailure(pod, name, kind, message);
    if (verdict !== worker.result) {
      worker.result = verdict;
      this.deps.onChange(pod.metadata.uid);
    }
  }

  private schedule(entry: ContainerProbes, worker: Worker, probe: Probe, tick: () => Promise<void>): void {
    if (!entry.stopped) worker.timer = setTimeout(() => void tick(), (probe.periodSeconds ?? 10) * 1000);
  }
}

function stop(entry: ContainerProbes): void {
  entry.stopped = true;
  for (const w of Object.values(entry.workers)) clearTimeout(w.timer);
}

async function runProbe(cri: CriRuntime, probe: Probe, id: string, host: string, container: Container): Promise<{ ok: boolean; message: string }> {
  const timeoutMs = (probe.timeoutSeconds ?? 1) * 1000;
  if (probe.exec) {
    const r = await cri.execSync(id, probe.exec.command ?? [], Math.ceil(timeoutMs / 1000));
    return { ok: r.exit_code === 0, message: `exit code ${r.exit_code}: ${r.stdout.toString().slice(0, 200)}${r.stderr.toString().slice(0, 200)}`.trim() };
  }
  const portOf = (port: number | string): number =>
    typeof port === 'number' ? port : (container.ports?.find((p) => p.name === port)?.containerPort ?? Number(port));
  if (probe.httpGet) {
    const g = probe.httpGet;
    const client = g.scheme === 'HTTPS' ? https : http;
    return new Promise((resolve) => {
      const req = client.get(
        {
          host: g.host || host,
          port: portOf(g.port),
          path: g.path ?? '/',
          timeout: timeoutMs,
          rejectUnauthorized: false,
          headers: Object.fromEntries((g.httpHeaders ?? []).map((h) => [h.name, h.value])),
        },
        (res) => {
          res.resume();
          const code = res.statusCode ?? 0;
          resolve({ ok: code >= 200 && code < 400, message: `HTTP probe failed with statuscode: ${code}` });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`Get "http://${g.host || host}:${portOf(g.port)}${g.path ?? '/'}": timeout after ${timeoutMs} ms`)));
      req.on('error', (err) => resolve({ ok: false, message: err.message }));
    });
  }
  if (probe.tcpSocket) {
    const port = portOf(probe.tcpSocket.port);
    return new Promise((resolve) => {
      const socket = net.connect({ host: probe.tcpSocket!.host || host, port, timeout: timeoutMs });
      socket.once('connect', () => (socket.destroy(), resolve({ ok: true, message: '' })));
      socket.once('timeout', () => (socket.destroy(), resolve({ ok: false, message: `dial tcp ${host}:${port}: i/o timeout` })));
      socket.once('error', (err) => resolve({ ok: false, message: `dial tcp ${host}:${port}: ${err.message}` }));
    });
  }
  return { ok: true, message: '' };
}
