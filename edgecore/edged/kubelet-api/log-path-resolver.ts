import type { CoreError } from '../../../shared/errors.js';
import type { CriRuntime } from '../cri/cri-types.js';
import type { ContainerStatus, Pod, PodStatus } from '../pod-types.js';
import type { LogTarget } from './container-logs.js';

// Which file `kubectl logs` reads, as the kubelet v1.33 chooses it: pod and container lookup from
// pkg/kubelet/server/server.go getContainerLogs (404s), the container ID from pkg/kubelet/kubelet_pods.go
// GetKubeletContainerLogs + validateContainerLogStatus (400s with its texts), the path from CRI
// ContainerStatus.log_path (pkg/kubelet/kuberuntime/kuberuntime_container.go GetContainerLogs), and the
// running check of a follower from k8s.io/cri-client pkg/logs/logs.go isContainerRunning.

export interface LogPathSources {
  /** The pod of this node with that namespace and name (from the store, or a static pod). */
  pod(namespace: string, name: string): Pod | undefined;
  /** edged's latest status of the pod (the kubelet's status manager); the pod's own status is the fallback. */
  status(uid: string): PodStatus | undefined;
  cri: Pick<CriRuntime, 'containerStatus'>;
}

export type LogPathResolver = (namespace: string, pod: string, container: string, previous: boolean) => Promise<LogTarget>;

export function logPathResolver(sources: LogPathSources): LogPathResolver {
  return async (namespace, name, container, previous) => {
    const pod = sources.pod(namespace, name);
    if (!pod) return { status: 404, message: `pod ${JSON.stringify(name)} does not exist` };
    const specs = [...pod.spec.containers, ...(pod.spec.initContainers ?? [])];
    if (!specs.some((c) => c.name === container))
      return { status: 404, message: `container ${JSON.stringify(container)} not found in pod ${JSON.stringify(name)}` };
    const status = sources.status(pod.metadata.uid) ?? pod.status;
    const chosen = containerIdFor(name, container, status, previous);
    if ('error' in chosen) return { status: 400, message: chosen.error };
    const id = chosen.id.includes('://') ? chosen.id.slice(chosen.id.indexOf('://') + 3) : chosen.id;
    const cri = await sources.cri.containerStatus(id).catch(() => undefined);
    if (!cri?.log_path) return { status: 400, message: `unable to retrieve container logs for ${chosen.id}` };
    return { logPath: cri.log_path, isRunning: () => isRunning(sources.cri, id) };
  };
}

/** validateContainerLogStatus: the container ID whose log to read, or the kubelet's reason there is none. */
export function containerIdFor(podName: string, container: string, status: PodStatus | undefined, previous: boolean): { id: string } | { error: string } {
  const subject = `container ${JSON.stringify(container)} in pod ${JSON.stringify(podName)}`;
  const find = (list: ContainerStatus[] | undefined): ContainerStatus | undefined => list?.find((s) => s.name === container);
  const s = find(status?.containerStatuses) ?? find(status?.initContainerStatuses);
  if (!s) return { error: `${subject} is not available` };
  const last = s.lastState?.terminated;
  const { waiting, running, terminated } = s.state;
  if (previous) {
    if (!last?.containerID) return { error: `previous terminated ${subject} not found` };
    return { id: last.containerID };
  }
  if (running) return s.containerID ? { id: s.containerID } : { error: `${subject} is waiting to start - no logs yet` };
  if (terminated) {
    // The next instance did not start: the log of the one before.
    const id = terminated.containerID || last?.containerID;
    return id ? { id } : { error: `${subject} is terminated` };
  }
  if (last) return last.containerID ? { id: last.containerID } : { error: `${subject} is terminated` };
  if (waiting) return { error: `${subject} is waiting to start: ${waitingReason(waiting.reason ?? '')}` };
  return { error: `${subject} is waiting to start - no logs yet` };
}

function waitingReason(reason: string): string {
  if (reason === 'ErrImagePull') return "image can't be pulled";
  if (reason === 'ImagePullBackOff') return 'trying and failing to pull image';
  return reason;
}

/** A runtime that does not answer counts as running (containers outlive their runtime's socket). */
async function isRunning(cri: Pick<CriRuntime, 'containerStatus'>, id: string): Promise<boolean> {
  try {
    return (await cri.containerStatus(id)).state === 'CONTAINER_RUNNING';
  } catch (err) {
    if ((err as CoreError).code === 'ERR_UNAVAILABLE') return true;
    throw err;
  }
}
