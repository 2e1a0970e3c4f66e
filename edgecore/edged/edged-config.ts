import { bool, int, str, strList, type ConfigOf } from '../../shared/config/schema.js';

/** edged's slice of the edgecore config (`modules.edged`); edgecore's schema composes it. */
export function edgedConfigSchema() {
  return {
    enable: bool(true, 'Report this node and run the pods bound to it.'),
    nodeIP: str('', 'InternalIP reported for the node; empty means the first non-loopback IPv4 address.', { allowEmpty: true }),
    maxPods: int(110, 'Pods this node offers (capacity and allocatable "pods").', { min: 1 }),
    nodeLabels: strList([], 'Extra labels for the Node, as key=value.'),
    nodeStatusCheckMs: int(60_000, 'How often the host is checked; the node status is reported when it changed.', { min: 1_000 }),
    runtimeEndpoint: str(
      'unix:///run/containerd/containerd.sock',
      'CRI endpoint of the container runtime (containerd, CRI-O). Empty: report the node only, run no pods.',
      { allowEmpty: true, pattern: /^(unix:\/\/)?\/\S+$/, expected: 'unix:///path/to/socket' },
    ),
    rootDirectory: str('/var/lib/kubeedge/pods', 'Where pod volumes (ConfigMaps, Secrets, emptyDirs) live on the host.'),
    podLogsDirectory: str('/var/log/pods', 'Container logs in CRI format: <dir>/<namespace>_<pod>_<uid>/<container>/<restart>.log.'),
    cgroupParent: str('/kubeedge', "cgroup parent of pod sandboxes (cgroupfs driver); pods go to <parent>/pod<uid>. Empty: the runtime's default.", {
      allowEmpty: true,
    }),
    staticPodPath: str('/etc/kubeedge/manifests', 'Folder of static pod manifests (YAML or JSON), run without the cloud and mirrored to it.'),
    relistIntervalMs: int(1_000, 'How often the runtime is listed to notice exits (the kubelet PLEG period).', { min: 100 }),
    crashLoopBackOffMs: int(10_000, 'First restart delay of a crashing container; doubles per restart (kubelet: 10 s).', { min: 10 }),
    crashLoopBackOffMaxMs: int(300_000, 'Longest restart delay (kubelet: 5 min).', { min: 10 }),
  };
}

export type EdgedConfig = ConfigOf<ReturnType<typeof edgedConfigSchema>>;

/** Checks within the slice; `prefix` is where the slice sits in the daemon's config (`modules.edged`). */
export function edgedConfigProblems(c: EdgedConfig, prefix: string): string[] {
  const problems: string[] = [];
  for (const label of c.nodeLabels) {
    if (!/^[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?=[-A-Za-z0-9_.]*$/.test(label)) problems.push(`${prefix}.nodeLabels: "${label}" is not key=value`);
  }
  return problems;
}
