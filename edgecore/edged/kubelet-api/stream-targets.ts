import type { CriRuntime } from '../cri/cri-types.js';
import type { Container, Pod } from '../pod-types.js';
import { CONTAINER_NAME_LABEL, POD_UID_LABEL } from '../runtime-config.js';

export interface StreamTargetsDeps {
  cri: Pick<CriRuntime, 'listContainers' | 'listPodSandbox'>;
  /** The pods edged runs now: the store's pods bound to this node and the static pods. */
  pods(): Iterable<Pod>;
}

/**
 * Where an exec, attach or port-forward goes: the pod from edged's desired pods (the kubelet's `GetPodByName`),
 * then the running container or ready sandbox asked of the runtime at the time of the request, as the kubelet's
 * `findContainer` and `GetPortForward` do (`K8S:pkg/kubelet/kubelet_pods.go`): a container started a moment
 * ago is found although edged's last relist has not seen it.
 */
export class StreamTargets {
  constructor(private readonly deps: StreamTargetsDeps) {}

  pod(namespace: string, name: string): Pod | undefined {
    for (const pod of this.deps.pods()) if (pod.metadata.name === name && (pod.metadata.namespace ?? 'default') === namespace) return pod;
    return undefined;
  }

  /** The id of the running container `name` of the pod with this uid (the newest attempt if several run). */
  async runningContainerId(podUid: string, name: string): Promise<string | undefined> {
    const running = await this.deps.cri.listContainers({ labels: { [POD_UID_LABEL]: podUid, [CONTAINER_NAME_LABEL]: name }, state: 'CONTAINER_RUNNING' });
    return running.sort((a, b) => b.metadata.attempt - a.metadata.attempt)[0]?.id;
  }

  /** The id of the pod's newest ready sandbox. */
  async readySandboxId(podUid: string): Promise<string | undefined> {
    const ready = await this.deps.cri.listPodSandbox({ labels: { [POD_UID_LABEL]: podUid }, state: 'SANDBOX_READY' });
    return ready.sort((a, b) => b.metadata.attempt - a.metadata.attempt || Number(BigInt(b.created_at) - BigInt(a.created_at)))[0]?.id;
  }
}

/** The spec of a container, init container or ephemeral container of the pod (`kubecontainer.GetContainerSpec`). */
export function containerSpec(pod: Pod, name: string): Container | undefined {
  const spec = pod.spec as Pod['spec'] & { ephemeralContainers?: Container[] };
  return [...spec.containers, ...(spec.initContainers ?? []), ...(spec.ephemeralContainers ?? [])].find((c) => c.name === name);
}
