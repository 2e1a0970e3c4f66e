import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { ContainerConfig, KeyValue, LinuxContainerResources, Mount, PodSandboxConfig, PortMapping } from './cri/cri-types.js';
import { canonicalJson } from '../../shared/canonical-json.js';
import { expand } from './container-env.js';
import type { Container, Pod } from './pod-types.js';
import { parseQuantity } from './quantity.js';

// The kubelet's labels and annotations on sandboxes and containers: how edged finds a pod's runtime objects
// again after a restart (and how tools like crictl show them).
export const POD_NAME_LABEL = 'io.kubernetes.pod.name';
export const POD_NAMESPACE_LABEL = 'io.kubernetes.pod.namespace';
export const POD_UID_LABEL = 'io.kubernetes.pod.uid';
export const CONTAINER_NAME_LABEL = 'io.kubernetes.container.name';
export const CONTAINER_HASH_ANNOTATION = 'io.kubernetes.container.hash';
export const RESTART_COUNT_ANNOTATION = 'io.kubernetes.container.restartCount';
export const GRACE_PERIOD_ANNOTATION = 'io.kubernetes.pod.terminationGracePeriod';
/** The node whose edged created it: edged never touches other users (or other nodes) of the same runtime. */
export const MANAGED_LABEL = 'kubeedge-ts.io/node';
/** `init` on init containers. */
export const CONTAINER_KIND_LABEL = 'kubeedge-ts.io/container-kind';

const CPU_PERIOD_US = 100_000;

export interface SandboxOptions {
  attempt: number;
  logRoot: string;
  cgroupParent: string;
}

export const podLogDirectory = (logRoot: string, pod: Pod): string =>
  join(logRoot, `${pod.metadata.namespace ?? 'default'}_${pod.metadata.name}_${pod.metadata.uid}`);

export function podLabels(pod: Pod): Record<string, string> {
  return {
    [POD_NAME_LABEL]: pod.metadata.name,
    [POD_NAMESPACE_LABEL]: pod.metadata.namespace ?? 'default',
    [POD_UID_LABEL]: pod.metadata.uid,
    [MANAGED_LABEL]: pod.spec.nodeName ?? '',
  };
}

export function sandboxConfig(pod: Pod, options: SandboxOptions): PodSandboxConfig {
  const hostNetwork = pod.spec.hostNetwork === true;
  const ports: PortMapping[] = hostNetwork
    ? []
    : pod.spec.containers.flatMap((c) =>
        (c.ports ?? [])
          .filter((p) => p.hostPort)
          .map((p) => ({ protocol: p.protocol ?? 'TCP', container_port: p.containerPort, host_port: p.hostPort, host_ip: p.hostIP ?? '' })),
      );
  return {
    metadata: { name: pod.metadata.name, uid: pod.metadata.uid, namespace: pod.metadata.namespace ?? 'default', attempt: options.attempt },
    hostname: hostNetwork ? '' : (pod.spec.hostname ?? pod.metadata.name).slice(0, 63),
    log_directory: podLogDirectory(options.logRoot, pod),
    port_mappings: ports,
    labels: { ...pod.metadata.labels, ...podLabels(pod) },
    annotations: { ...pod.metadata.annotations, [GRACE_PERIOD_ANNOTATION]: String(pod.spec.terminationGracePeriodSeconds ?? 30) },
    linux: {
      cgroup_parent: options.cgroupParent ? `${options.cgroupParent}/pod${pod.metadata.uid}` : '',
      security_context: { namespace_options: { network: hostNetwork ? 'NODE' : 'POD', pid: 'CONTAINER', ipc: 'POD' } },
    },
  };
}

export interface ContainerOptions {
  attempt: number;
  image: string;
  envs: KeyValue[];
  mounts: Mount[];
  init: boolean;
}

export function containerConfig(pod: Pod, container: Container, options: ContainerOptions): ContainerConfig {
  const vars = new Map(options.envs.map((e) => [e.key, e.value]));
  const config: ContainerConfig = {
    metadata: { name: container.name, attempt: options.attempt },
    image: { image: options.image },
    envs: options.envs,
    mounts: options.mounts,
    labels: { ...podLabels(pod), [CONTAINER_NAME_LABEL]: container.name, ...(options.init ? { [CONTAINER_KIND_LABEL]: 'init' } : {}) },
    annotations: {
      [CONTAINER_HASH_ANNOTATION]: containerHash(container),
      [RESTART_COUNT_ANNOTATION]: String(options.attempt),
      [GRACE_PERIOD_ANNOTATION]: String(pod.spec.terminationGracePeriodSeconds ?? 30),
    },
    log_path: `${container.name}/${options.attempt}.log`,
    tty: container.tty === true,
    linux: {
      resources: linuxResources(container),
      security_context: {
        privileged: container.securityContext?.privileged === true,
        ...(container.securityContext?.runAsUser !== undefined ? { run_as_user: { value: String(container.securityContext.runAsUser) } } : {}),
      },
    },
  };
  // Command and args take $(VAR) references to the container's environment, as in the kubelet.
  if (container.command) config.command = container.command.map((c) => expand(c, vars));
  if (container.args) config.args = container.args.map((a) => expand(a, vars));
  if (container.workingDir) config.working_dir = container.workingDir;
  return config;
}

/**
 * Changes when anything the runtime was given changes: a container with another hash is replaced. Key order
 * and empty fields do not count (the same spec can arrive written differently, e.g. after a cloudcore restart).
 */
export function containerHash(container: Container): string {
  const { livenessProbe: _l, readinessProbe: _r, startupProbe: _s, ...runtimeRelevant } = container;
  return createHash('sha256').update(canonicalJson(runtimeRelevant)).digest('hex').slice(0, 16);
}

/** Requests become CPU shares, limits a CFS quota and a memory limit (as the kubelet maps them on cgroup v1). */
export function linuxResources(container: Container): LinuxContainerResources {
  const { limits = {}, requests = {} } = container.resources ?? {};
  const out: LinuxContainerResources = {};
  const cpuRequest = parseQuantity(requests.cpu ?? limits.cpu);
  if (cpuRequest !== undefined) out.cpu_shares = String(Math.max(2, Math.round(cpuRequest * 1024)));
  const cpuLimit = parseQuantity(limits.cpu);
  if (cpuLimit !== undefined) {
    out.cpu_period = String(CPU_PERIOD_US);
    out.cpu_quota = String(Math.max(1_000, Math.round(cpuLimit * CPU_PERIOD_US)));
  }
  const memory = parseQuantity(limits.memory);
  if (memory !== undefined) out.memory_limit_in_bytes = String(Math.round(memory));
  return out;
}
