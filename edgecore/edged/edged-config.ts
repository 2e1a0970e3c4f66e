import { bool, int, str, strList, type ConfigOf } from '../../shared/config/schema.js';

/** The Hostname address is a name the apiserver dials and a TLS server name: a DNS-1123 subdomain, as node names. */
const HOSTNAME_PATTERN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** edged's slice of the edgecore config (`modules.edged`); edgecore's schema composes it. */
export function edgedConfigSchema() {
  return {
    enable: bool(true, 'Report this node and run the pods bound to it.'),
    nodeIP: str('', 'InternalIP reported for the node; empty means the first non-loopback IPv4 address.', { allowEmpty: true }),
    // KubeEdge's edged has the same field (`modules.edged.tailoredKubeletFlag.hostnameOverride`); so do edges
    // sharing one machine in tests, which would otherwise report identical addresses.
    hostnameOverride: str('', "Hostname address reported for the node (the kubelet's --hostname-override); empty: this machine's host name.", {
      allowEmpty: true,
      pattern: HOSTNAME_PATTERN,
      expected: 'a lower-case DNS name',
    }),
    // 10350 is KubeEdge's constants.ServerPort, which its edged reports here (edge/pkg/edged/edged_status.go).
    kubeletPort: int(
      10350,
      'Kubelet API port in the node status (daemonEndpoints), dialled by the apiserver and metrics-server; nothing listens on it: cloudcore relays.',
      {
        min: 1,
        max: 65535,
      },
    ),
    // KubeletConfiguration's streamingConnectionIdleTimeout (4h0m0s), which KubeEdge's edged takes from its
    // tailoredKubeletConfig too; containerd's stream_idle_timeout ends its side at the same age.
    streamingConnectionIdleTimeoutMs: int(
      4 * 60 * 60 * 1000,
      'An exec, attach or port-forward session with no byte either way for this long is closed (kubelet streamingConnectionIdleTimeout).',
      { min: 1_000 },
    ),
    maxStreamingSessions: int(
      64,
      'exec, attach and port-forward sessions open on this node at once, whichever cloudcore replica they come through; one more is answered 429.',
      { min: 1 },
    ),
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
