import type { ContainerStatus as CriContainerStatus } from './cri/cri-types.js';
import type { Container, ContainerState, ContainerStatus, Pod, PodCondition, PodStatus } from './pod-types.js';
import type { PodRuntime } from './runtime-state.js';

export interface Waiting {
  reason: string;
  message?: string;
}

export interface StatusInputs {
  pod: Pod;
  runtime: PodRuntime;
  /** Why a container is not running now (CrashLoopBackOff, ErrImagePull, CreateContainerConfigError …). */
  waiting: ReadonlyMap<string, Waiting>;
  /** Readiness probe result of a running container; undefined when no readiness probe runs for it. */
  ready(container: string, id: string): boolean | undefined;
  /** Startup probe result; undefined when no startup probe runs for it. */
  started(container: string, id: string): boolean | undefined;
  hostIP: string;
  podIP: string;
  nowIso: string;
  /** What was last reported, to keep transition times and the start time. */
  previous?: PodStatus;
}

/** The pod status a kubelet would report: phase, conditions, container statuses, IPs, start time, QoS. */
export function podStatus(inputs: StatusInputs): PodStatus {
  const { pod, runtime } = inputs;
  const init = (pod.spec.initContainers ?? []).map((c) => containerStatus(c, inputs, true));
  const initDone = init.every((s) => s.state.terminated?.exitCode === 0);
  const app = pod.spec.containers.map((c) => containerStatus(c, inputs, false, !initDone));
  const sandboxReady = runtime.sandboxes[0]?.state === 'SANDBOX_READY';
  const containersReady = initDone && app.every((s) => s.ready);
  const status: PodStatus = {
    phase: phaseOf(pod, init, app),
    conditions: [
      condition('PodReadyToStartContainers', sandboxReady, inputs),
      condition('Initialized', initDone, inputs, initDone ? undefined : 'ContainersNotInitialized'),
      condition('Ready', containersReady, inputs, containersReady ? undefined : 'ContainersNotReady'),
      condition('ContainersReady', containersReady, inputs, containersReady ? undefined : 'ContainersNotReady'),
      condition('PodScheduled', true, inputs),
    ],
    hostIP: inputs.hostIP,
    hostIPs: [{ ip: inputs.hostIP }],
    startTime: inputs.previous?.startTime ?? pod.status?.startTime ?? inputs.nowIso,
    containerStatuses: app,
    qosClass: qosClass(pod),
  };
  if (init.length > 0) status.initContainerStatuses = init;
  if (inputs.podIP) {
    status.podIP = inputs.podIP;
    status.podIPs = [{ ip: inputs.podIP }];
  }
  return status;
}

/** The containers the runtime has for a name, newest attempt first. */
export function attemptsOf(runtime: PodRuntime, name: string): CriContainerStatus[] {
  return runtime.containers
    .filter((c) => c.container.metadata.name === name)
    .map((c) => c.status)
    .sort((a, b) => b.metadata.attempt - a.metadata.attempt);
}

function containerStatus(c: Container, inputs: StatusInputs, init: boolean, blockedByInit = false): ContainerStatus {
  const [latest, previous] = attemptsOf(inputs.runtime, c.name);
  const waiting = inputs.waiting.get(c.name);
  let state: ContainerState = latest ? stateOf(latest) : { waiting: { reason: blockedByInit ? 'PodInitializing' : 'ContainerCreating' } };
  let lastState: ContainerState = previous ? stateOf(previous) : {};
  // A container that exited and waits to be restarted shows as waiting, its exit as the last state.
  if (waiting && (!latest || latest.state === 'CONTAINER_EXITED')) {
    if (latest) lastState = stateOf(latest);
    state = { waiting: { reason: waiting.reason, ...(waiting.message ? { message: waiting.message } : {}) } };
  }
  const running = latest?.state === 'CONTAINER_RUNNING';
  // A probe that has not given its verdict yet counts as not passed (a container just started has none).
  const started = running && (inputs.started(c.name, latest.id) ?? !c.startupProbe);
  const ready = running && started && !init && (inputs.ready(c.name, latest.id) ?? !c.readinessProbe);
  return {
    name: c.name,
    state,
    lastState,
    ready,
    started,
    restartCount: latest?.metadata.attempt ?? 0,
    image: c.image ?? '',
    imageID: latest?.image_ref ?? '',
    ...(latest ? { containerID: `containerd://${latest.id}` } : {}),
  };
}

function stateOf(s: CriContainerStatus): ContainerState {
  switch (s.state) {
    case 'CONTAINER_RUNNING':
      return { running: { startedAt: iso(s.started_at) } };
    case 'CONTAINER_EXITED':
      return {
        terminated: {
          exitCode: s.exit_code,
          reason: s.reason || (s.exit_code === 0 ? 'Completed' : 'Error'),
          ...(s.message ? { message: s.message } : {}),
          startedAt: iso(s.started_at),
          finishedAt: iso(s.finished_at),
          containerID: `containerd://${s.id}`,
        },
      };
    default:
      return { waiting: { reason: 'ContainerCreating' } };
  }
}

/** Whether the restart policy brings an exited container back. */
export function restarts(pod: Pod, exitCode: number): boolean {
  const policy = pod.spec.restartPolicy ?? 'Always';
  return policy === 'Always' || (policy === 'OnFailure' && exitCode !== 0);
}

function phaseOf(pod: Pod, init: ContainerStatus[], app: ContainerStatus[]): PodStatus['phase'] {
  const failedInit = init.find((s) => s.state.terminated && s.state.terminated.exitCode !== 0);
  if (failedInit && (pod.spec.restartPolicy ?? 'Always') === 'Never') return 'Failed';
  if (!init.every((s) => s.state.terminated?.exitCode === 0)) return 'Pending';
  if (app.some((s) => s.state.running)) return 'Running';
  const exits = app.map((s) => s.state.terminated?.exitCode);
  if (exits.every((e) => e !== undefined)) {
    if (exits.some((e) => restarts(pod, e!))) return 'Running';
    return exits.every((e) => e === 0) ? 'Succeeded' : 'Failed';
  }
  // Waiting to be restarted after having run once: the pod still runs.
  return app.some((s) => s.restartCount > 0 || s.lastState.terminated) ? 'Running' : 'Pending';
}

function condition(type: string, ok: boolean, inputs: StatusInputs, reason?: string): PodCondition {
  const status = ok ? 'True' : 'False';
  const before = inputs.previous?.conditions?.find((c) => c.type === type);
  return {
    type,
    status,
    ...(reason ? { reason } : {}),
    lastProbeTime: null,
    lastTransitionTime: before?.status === status ? before.lastTransitionTime : inputs.nowIso,
  };
}

function qosClass(pod: Pod): string {
  const all = [...(pod.spec.initContainers ?? []), ...pod.spec.containers];
  const resources = all.map((c) => c.resources ?? {});
  if (resources.every((r) => Object.keys(r.requests ?? {}).length === 0 && Object.keys(r.limits ?? {}).length === 0)) return 'BestEffort';
  const guaranteed = resources.every((r) => ['cpu', 'memory'].every((k) => r.limits?.[k] !== undefined && (r.requests?.[k] ?? r.limits[k]) === r.limits[k]));
  return guaranteed ? 'Guaranteed' : 'Burstable';
}

/** CRI timestamps are nanoseconds since the epoch as decimal strings; 0 means not yet. */
function iso(ns: string): string | undefined {
  const n = BigInt(ns || '0');
  return n === 0n ? undefined : new Date(Number(n / 1_000_000n)).toISOString().replace(/\.\d{3}Z$/, 'Z');
}
