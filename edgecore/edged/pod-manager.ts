import type { Logger } from '../../shared/logger.js';
import { POD_PHASES, type PodPhase } from '../metrics/edge-metrics.js';
import { podStatus } from './pod-status.js';
import type { PodSync, SyncResult } from './pod-sync.js';
import type { Pod, PodStatus } from './pod-types.js';
import type { ProbeManager } from './probe-manager.js';
import type { RuntimeState } from './runtime-state.js';

export interface PodManagerDeps {
  runtime: RuntimeState;
  sync: PodSync;
  probes: ProbeManager;
  pod(uid: string): Pod | undefined;
  podUids(): string[];
  /** A status to report (only called when it changed). */
  report(pod: Pod, status: PodStatus): void;
  /** The pod's containers are stopped after a graceful deletion: the API object may go. */
  confirmDeletion(pod: Pod): void;
  hostIP: string;
  relistIntervalMs: number;
  /** The runtime stopped or started answering. */
  onRuntimeChange?(up: boolean, message: string): void;
  /** Every pod is synced at least this often (the kubelet's syncFrequency). */
  resyncIntervalMs: number;
  logger: Logger;
}

interface Worker {
  running: boolean;
  again: boolean;
  retry: NodeJS.Timeout | undefined;
}

/**
 * Drives the pod workers: one sync at a time per pod (a trigger during a sync runs it once more), triggered
 * by store changes, by the runtime's relist (a container exited), by probe verdicts and by back-off timers.
 * Reports each pod's status when it changed.
 */
export class PodManager {
  private readonly workers = new Map<string, Worker>();
  private readonly reported = new Map<string, string>();
  private readonly statuses = new Map<string, PodStatus>();
  private readonly confirmed = new Set<string>();
  private relistTimer: NodeJS.Timeout | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private relisting: Promise<void> | undefined;
  private nextRelist: Promise<void> | undefined;
  private stopped = false;
  private runtimeFailures = 0;
  /** Why the runtime is not answering, for the node's Ready condition. */
  runtimeMessage = '';

  constructor(private readonly deps: PodManagerDeps) {}

  /** Lists the runtime, then syncs every pod the store or the runtime knows (adopting what runs). */
  async start(): Promise<void> {
    await this.relist();
    for (const uid of new Set([...this.deps.podUids(), ...this.deps.runtime.uids()])) this.trigger(uid);
    const loop = (): void => {
      this.relistTimer = setTimeout(() => void this.relist().finally(() => !this.stopped && loop()), this.deps.relistIntervalMs);
    };
    loop();
    this.resyncTimer = setInterval(() => this.deps.podUids().forEach((uid) => this.trigger(uid)), this.deps.resyncIntervalMs);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.relistTimer);
    clearInterval(this.resyncTimer);
    for (const w of this.workers.values()) clearTimeout(w.retry);
  }

  trigger(uid: string): void {
    if (this.stopped) return;
    let w = this.workers.get(uid);
    if (!w) this.workers.set(uid, (w = { running: false, again: false, retry: undefined }));
    if (w.running) {
      w.again = true;
      return;
    }
    w.running = true;
    clearTimeout(w.retry);
    void this.run(uid)
      .catch((err: unknown) => {
        // A sync that failed (the runtime stopped answering mid-sync) is tried again, like the kubelet's pod
        // worker requeues on error. Nothing else would wake it: a relist after the runtime is back sees the
        // same container state as before, so a pod waiting out its crash back-off when the runtime went down
        // stayed down until the periodic resync (60 s).
        this.deps.logger.error({ err, podUid: uid }, 'pod sync failed');
        if (!this.stopped) w.retry = setTimeout(() => this.trigger(uid), this.deps.relistIntervalMs).unref();
      })
      .finally(() => {
        w.running = false;
        if (w.again && !this.stopped) {
          w.again = false;
          this.trigger(uid);
        }
      });
  }

  /** Lists the runtime (one list at a time; callers during a list share it) and wakes pods that changed. */
  relist(): Promise<void> {
    this.relisting ??= this.deps.runtime
      .relist()
      .then((changed) => {
        if (this.runtimeFailures > 0) {
          this.deps.logger.info({ failedRelists: this.runtimeFailures }, 'container runtime answering again');
          this.runtimeFailures = 0;
          this.runtimeMessage = '';
          this.deps.onRuntimeChange?.(true, '');
          // Every sync attempted while it was down failed: sync every pod once now.
          for (const uid of this.deps.podUids()) this.trigger(uid);
        }
        changed.forEach((uid) => this.trigger(uid));
      })
      .catch((err: unknown) => {
        // Once when it starts, then once a minute or so: a runtime that is down must not flood the log.
        if (this.runtimeFailures++ % 60 === 0) this.deps.logger.warn({ err, failedRelists: this.runtimeFailures }, 'container runtime not answering');
        this.runtimeMessage = (err as Error).message;
        if (this.runtimeFailures === 1) this.deps.onRuntimeChange?.(false, this.runtimeMessage);
      })
      .finally(() => (this.relisting = undefined));
    return this.relisting;
  }

  /** A relist that starts after this call (one in flight may have listed before what the caller just did). */
  freshRelist(): Promise<void> {
    const inflight = this.relisting;
    if (!inflight) return this.relist();
    this.nextRelist ??= inflight.then(() => {
      this.nextRelist = undefined;
      return this.relist();
    });
    return this.nextRelist;
  }

  /** Pods of the store by their last status's phase; a pod not synced yet counts as Pending. */
  phaseCounts(): Record<PodPhase, number> {
    const counts = Object.fromEntries(POD_PHASES.map((p) => [p, 0])) as Record<PodPhase, number>;
    for (const uid of this.deps.podUids()) {
      const phase = this.statuses.get(uid)?.phase ?? 'Pending';
      counts[(POD_PHASES as readonly string[]).includes(phase) ? (phase as PodPhase) : 'Unknown']++;
    }
    return counts;
  }

  /** The pod's status as edged last computed it (the kubelet's status manager); undefined before its first sync. */
  lastStatus(uid: string): PodStatus | undefined {
    return this.statuses.get(uid);
  }

  /** The runtime answered the last relist. */
  get runtimeUp(): boolean {
    return this.runtimeFailures === 0;
  }

  private async run(uid: string): Promise<void> {
    const pod = this.deps.pod(uid);
    const runtime = this.deps.runtime.pod(uid);
    if (!pod) return this.forget(uid, runtime);
    if (pod.metadata.deletionTimestamp) return this.terminate(pod);
    const previous = this.statuses.get(uid);
    // A finished pod never runs again (the kubelet's terminal phases); its sandbox is let go.
    if (isTerminal(previous?.phase ?? pod.status?.phase)) {
      if (runtime.sandboxes.some((s) => s.state === 'SANDBOX_READY')) await this.deps.sync.kill(uid, runtime, 0, false);
      return;
    }
    const result = await this.deps.sync.sync(pod, runtime);
    // What the sync started must be in the snapshot the next sync of this pod sees (or it would start it
    // twice), and shows in the status of this pass.
    await this.freshRelist();
    const status = this.status(pod, result, previous);
    this.publish(pod, status);
    if (isTerminal(status.phase)) this.trigger(uid);
    const w = this.workers.get(uid)!;
    if (result.retryInMs !== undefined) w.retry = setTimeout(() => this.trigger(uid), result.retryInMs).unref();
  }

  /** Graceful deletion: stop within the grace period, report the final status, then let the API object go. */
  private async terminate(pod: Pod): Promise<void> {
    const uid = pod.metadata.uid;
    const grace = pod.metadata.deletionGracePeriodSeconds ?? pod.spec.terminationGracePeriodSeconds ?? 30;
    await this.deps.sync.kill(uid, this.deps.runtime.pod(uid), grace, false, pod);
    await this.freshRelist();
    this.publish(pod, this.status(pod, { waiting: new Map(), podIP: '', stopped: true }, this.statuses.get(uid)));
    if (!this.confirmed.has(uid)) {
      this.confirmed.add(uid);
      this.deps.confirmDeletion(pod);
    }
  }

  private async forget(uid: string, runtime: ReturnType<RuntimeState['pod']>): Promise<void> {
    if (runtime.sandboxes.length > 0 || runtime.containers.length > 0) await this.deps.sync.kill(uid, runtime, 2, true);
    this.workers.delete(uid);
    this.reported.delete(uid);
    this.statuses.delete(uid);
    this.confirmed.delete(uid);
  }

  private status(pod: Pod, result: SyncResult, previous: PodStatus | undefined): PodStatus {
    const uid = pod.metadata.uid;
    const { probes } = this.deps;
    return podStatus({
      pod,
      runtime: this.deps.runtime.pod(uid),
      waiting: result.waiting,
      ready: (name, id) => probes.ready(uid, name, id),
      started: (name, id) => probes.started(uid, name, id),
      hostIP: this.deps.hostIP,
      podIP: pod.spec.hostNetwork ? this.deps.hostIP : result.podIP || previous?.podIP || '',
      nowIso: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      previous: previous ?? pod.status,
    });
  }

  private publish(pod: Pod, status: PodStatus): void {
    const uid = pod.metadata.uid;
    this.statuses.set(uid, status);
    const digest = JSON.stringify(status);
    if (this.reported.get(uid) === digest) return;
    this.reported.set(uid, digest);
    this.deps.report(pod, status);
  }
}

function isTerminal(phase: string | undefined): boolean {
  return phase === 'Succeeded' || phase === 'Failed';
}
