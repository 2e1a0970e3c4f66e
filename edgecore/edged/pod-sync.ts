import { mkdirSync } from 'node:fs';
import type { Logger } from '../../shared/logger.js';
import type { EdgeMetrics } from '../metrics/edge-metrics.js';
import { ContainerConfigError, containerEnv, type ConfigSource } from './container-env.js';
import type { ContainerStatus as CriContainerStatus, CriRuntime, PodSandboxConfig } from './cri/cri-types.js';
import { CrashBackoff } from './crash-backoff.js';
import type { EventRecorder } from './event-recorder.js';
import { ImageError, type ImageManager } from './image-manager.js';
import { containerMounts, preparePodVolumes, removePodVolumes, VolumeError } from './pod-volumes.js';
import { attemptsOf, restarts, type Waiting } from './pod-status.js';
import type { Container, Pod } from './pod-types.js';
import type { ProbeManager } from './probe-manager.js';
import { CONTAINER_HASH_ANNOTATION, containerConfig, containerHash, podLogDirectory, sandboxConfig } from './runtime-config.js';
import type { PodRuntime, RuntimeState } from './runtime-state.js';

export interface PodSyncDeps {
  cri: CriRuntime;
  runtime: RuntimeState;
  source: ConfigSource;
  images: ImageManager;
  probes: ProbeManager;
  events: EventRecorder;
  backoff: CrashBackoff;
  paths: { podsRoot: string; logRoot: string; cgroupParent: string };
  hostIP: string;
  logger: Logger;
  metrics?: EdgeMetrics;
}

/** What one sync left for the status and the scheduler. */
export interface SyncResult {
  waiting: Map<string, Waiting>;
  podIP: string;
  /** Sync again after this long (a back-off ending, a volume to retry); undefined: on the next event. */
  retryInMs?: number;
  /** The pod's containers are all stopped (deleted, or finished for good). */
  stopped: boolean;
}

const RETRY_MS = 5_000;

/**
 * One pass of the kubelet's syncPod for one pod: volumes, a ready sandbox, init containers one after
 * another, app containers as the restart policy and the back-off say, liveness restarts, spec changes; or,
 * for a pod being deleted, everything stopped within its grace period.
 */
export class PodSync {
  private readonly podIPs = new Map<string, string>();

  constructor(private readonly deps: PodSyncDeps) {}

  async sync(pod: Pod, runtime: PodRuntime): Promise<SyncResult> {
    const result: SyncResult = { waiting: new Map(), podIP: '', stopped: false };
    const volumes = this.volumes(pod, result);
    if (!volumes) return result;
    const sandbox = await this.ensureSandbox(pod, runtime, result);
    if (!sandbox) return result;
    result.podIP = sandbox.podIP;
    const ctx = { pod, runtime, sandboxId: sandbox.id, config: sandbox.config, volumes, result };
    for (const c of pod.spec.initContainers ?? []) {
      if (!(await this.initContainer(ctx, c))) return result;
    }
    for (const c of pod.spec.containers) await this.appContainer(ctx, c);
    return result;
  }

  /** Stops every container (gracefully) and the sandboxes; with `remove`, deletes them and the pod's files. */
  async kill(uid: string, runtime: PodRuntime, graceSeconds: number, remove: boolean, pod?: Pod): Promise<void> {
    this.deps.probes.forget(uid);
    await Promise.all(
      runtime.containers
        .filter((c) => c.status.state === 'CONTAINER_RUNNING')
        .map(async (c) => {
          if (pod) this.deps.events.pod(pod, c.container.metadata.name, 'Normal', 'Killing', `Stopping container ${c.container.metadata.name}`);
          await this.deps.cri
            .stopContainer(c.container.id, graceSeconds)
            .catch((err: Error) => this.deps.logger.warn({ err, podUid: uid }, 'cannot stop container'));
        }),
    );
    for (const s of runtime.sandboxes)
      await this.deps.cri.stopPodSandbox(s.id).catch((err: Error) => this.deps.logger.warn({ err, podUid: uid }, 'cannot stop sandbox'));
    if (!remove) return;
    for (const c of runtime.containers) await this.deps.cri.removeContainer(c.container.id).catch(() => undefined);
    for (const s of runtime.sandboxes)
      await this.deps.cri.removePodSandbox(s.id).catch((err: Error) => this.deps.logger.warn({ err, podUid: uid }, 'cannot remove sandbox'));
    removePodVolumes(this.deps.paths.podsRoot, uid);
    this.deps.backoff.forget(`${uid}/`);
    this.podIPs.delete(uid);
  }

  private volumes(pod: Pod, result: SyncResult): Map<string, string> | undefined {
    try {
      return preparePodVolumes(pod, this.deps.paths.podsRoot, this.deps.source, { podIP: this.podIPs.get(pod.metadata.uid) ?? '', hostIP: this.deps.hostIP });
    } catch (err) {
      if (!(err instanceof VolumeError)) throw err;
      this.deps.events.pod(pod, undefined, 'Warning', 'FailedMount', err.message);
      for (const c of [...(pod.spec.initContainers ?? []), ...pod.spec.containers])
        result.waiting.set(c.name, { reason: 'ContainerCreating', message: err.message });
      result.retryInMs = RETRY_MS;
      return undefined;
    }
  }

  private async ensureSandbox(pod: Pod, runtime: PodRuntime, result: SyncResult): Promise<{ id: string; podIP: string; config: PodSandboxConfig } | undefined> {
    const uid = pod.metadata.uid;
    const ready = runtime.sandboxes.find((s) => s.state === 'SANDBOX_READY');
    const attempt = ready ? ready.metadata.attempt : (runtime.sandboxes[0]?.metadata.attempt ?? -1) + 1;
    const config = sandboxConfig(pod, { attempt, logRoot: this.deps.paths.logRoot, cgroupParent: this.deps.paths.cgroupParent });
    if (ready) {
      if (!this.podIPs.has(uid)) this.podIPs.set(uid, (await this.deps.cri.podSandboxStatus(ready.id)).network?.ip ?? '');
      return { id: ready.id, podIP: this.podIPs.get(uid)!, config };
    }
    // No ready sandbox (first start, a reboot, a dead pause): everything of the old one goes, a new one comes.
    if (runtime.sandboxes.length > 0) await this.kill(uid, runtime, 0, false);
    for (const c of runtime.containers) await this.deps.cri.removeContainer(c.container.id).catch(() => undefined);
    for (const s of runtime.sandboxes) await this.deps.cri.removePodSandbox(s.id).catch(() => undefined);
    runtime.containers = [];
    try {
      mkdirSync(podLogDirectory(this.deps.paths.logRoot, pod), { recursive: true });
      const id = await this.deps.cri.runPodSandbox(config);
      const podIP = (await this.deps.cri.podSandboxStatus(id)).network?.ip ?? '';
      this.podIPs.set(uid, podIP);
      return { id, podIP, config };
    } catch (err) {
      const message = `failed to create pod sandbox: ${(err as Error).message}`;
      this.deps.events.pod(pod, undefined, 'Warning', 'FailedCreatePodSandBox', message);
      for (const c of [...(pod.spec.initContainers ?? []), ...pod.spec.containers]) result.waiting.set(c.name, { reason: 'ContainerCreating', message });
      result.retryInMs = RETRY_MS;
      return undefined;
    }
  }

  /** True when the init container finished successfully and the next one may start. */
  private async initContainer(ctx: SyncContext, c: Container): Promise<boolean> {
    const [latest] = attemptsOf(ctx.runtime, c.name);
    if (latest?.state === 'CONTAINER_EXITED' && latest.exit_code === 0) return true;
    if (latest && latest.state !== 'CONTAINER_EXITED') return false;
    // A failed init container under restartPolicy Never fails the pod; otherwise it runs again.
    if (latest && (ctx.pod.spec.restartPolicy ?? 'Always') === 'Never') return false;
    if (latest && !this.mayRestart(ctx, c, latest)) return false;
    await this.start(ctx, c, latest ? latest.metadata.attempt + 1 : 0, true);
    return false;
  }

  private async appContainer(ctx: SyncContext, c: Container): Promise<void> {
    const [latest] = attemptsOf(ctx.runtime, c.name);
    if (latest?.state === 'CONTAINER_RUNNING') {
      const hashChanged = latest.annotations[CONTAINER_HASH_ANNOTATION] !== containerHash(c);
      const unhealthy = this.deps.probes.mustRestart(ctx.pod.metadata.uid, c.name, latest.id);
      if (!hashChanged && !unhealthy) {
        this.deps.probes.ensure(ctx.pod, c, latest.id, ctx.result.podIP);
        return;
      }
      const why = hashChanged ? `Container ${c.name} definition changed, will be restarted` : `Container ${c.name} failed ${unhealthy}, will be restarted`;
      this.deps.events.pod(ctx.pod, c.name, 'Normal', 'Killing', why);
      this.deps.probes.forget(ctx.pod.metadata.uid, c.name);
      await this.deps.cri.stopContainer(latest.id, ctx.pod.spec.terminationGracePeriodSeconds ?? 30);
      // A changed definition restarts whatever the policy; a liveness kill follows the restart policy.
      if (!hashChanged && !restarts(ctx.pod, 137)) return;
      return this.start(ctx, c, latest.metadata.attempt + 1, false);
    }
    if (latest?.state === 'CONTAINER_EXITED' && !restarts(ctx.pod, latest.exit_code)) return;
    if (latest?.state === 'CONTAINER_EXITED' && !this.mayRestart(ctx, c, latest)) return;
    await this.start(ctx, c, latest ? latest.metadata.attempt + 1 : 0, false);
  }

  /** Applies the crash back-off; when it says wait, the container shows CrashLoopBackOff until then. */
  private mayRestart(ctx: SyncContext, c: Container, latest: CriContainerStatus): boolean {
    const key = `${ctx.pod.metadata.uid}/${c.name}`;
    const waitMs = this.deps.backoff.waitMs(key, nsToMs(latest.started_at), nsToMs(latest.finished_at) || Date.now());
    if (waitMs === 0) return true;
    const message =
      `back-off ${Math.round(this.deps.backoff.currentMs(key) / 1000)}s restarting failed ` +
      `container=${c.name} pod=${ctx.pod.metadata.name}_${ctx.pod.metadata.namespace ?? 'default'}(${ctx.pod.metadata.uid})`;
    ctx.result.waiting.set(c.name, { reason: 'CrashLoopBackOff', message });
    this.deps.events.pod(ctx.pod, c.name, 'Warning', 'BackOff', 'Back-off restarting failed container');
    ctx.result.retryInMs = Math.min(ctx.result.retryInMs ?? Infinity, waitMs + 50);
    return false;
  }

  private async start(ctx: SyncContext, c: Container, attempt: number, init: boolean): Promise<void> {
    const { pod, result } = ctx;
    const fail = (reason: string, message: string, event: string): void => {
      result.waiting.set(c.name, { reason, message });
      this.deps.events.pod(pod, c.name, 'Warning', event, message);
      result.retryInMs = Math.min(result.retryInMs ?? Infinity, RETRY_MS);
    };
    let image: { warning?: string };
    try {
      image = await this.deps.images.ensure(c.image, c.imagePullPolicy);
    } catch (err) {
      if (!(err instanceof ImageError)) throw err;
      return fail(err.reason, err.message, 'Failed');
    }
    if (image.warning) this.deps.events.pod(pod, c.name, 'Warning', 'PullFailedUsingLocal', image.warning);
    let config;
    try {
      const envs = containerEnv(pod, c, this.deps.source, { podIP: result.podIP, hostIP: this.deps.hostIP });
      config = containerConfig(pod, c, { attempt, image: c.image!, envs, mounts: containerMounts(c, ctx.volumes), init });
    } catch (err) {
      if (!(err instanceof ContainerConfigError || err instanceof VolumeError)) throw err;
      return fail('CreateContainerConfigError', err.message, 'Failed');
    }
    // Only the last exited instance is kept (for lastState); older ones go (kubelet maxPerPodContainerCount 1).
    for (const old of attemptsOf(ctx.runtime, c.name).slice(1)) await this.deps.cri.removeContainer(old.id).catch(() => undefined);
    let id: string | undefined;
    try {
      id = await this.deps.cri.createContainer(ctx.sandboxId, config, ctx.config);
      this.deps.events.pod(pod, c.name, 'Normal', 'Created', `Created container ${c.name}`);
      await this.deps.cri.startContainer(id);
      this.deps.events.pod(pod, c.name, 'Normal', 'Started', `Started container ${c.name}`);
      if (attempt > 0) this.deps.metrics?.containerRestarts.inc();
    } catch (err) {
      // A start failure leaves an exited container (reason StartError) that the back-off then governs.
      fail(id ? 'RunContainerError' : 'CreateContainerError', (err as Error).message, 'Failed');
    }
  }
}

interface SyncContext {
  pod: Pod;
  runtime: PodRuntime;
  sandboxId: string;
  config: PodSandboxConfig;
  volumes: Map<string, string>;
  result: SyncResult;
}

function nsToMs(ns: string): number {
  return Number(BigInt(ns || '0') / 1_000_000n);
}
