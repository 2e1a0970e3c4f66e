import { bool, int, oneOf, str, type ConfigOf } from '../../shared/config/schema.js';

/** EdgeController's slice of the cloudcore config (`modules.edgeController`); cloudcore's schema composes it. */
export function edgeControllerConfigSchema() {
  return {
    enable: bool(true, 'Sync pods, configmaps, secrets and nodes with edges.'),
    source: oneOf(
      ['kubernetes', 'local'] as const,
      'kubernetes',
      'Where desired objects come from: `kubernetes` (pods, configmaps, secrets and nodes of the cluster in kubeAPI) or ' +
        '`local`, a SQLite object store for running without a cluster.',
    ),
    localStorePath: str('/var/lib/kubeedge/cloudcore-objects.db', 'SQLite file of the local object store.'),
    pollIntervalMs: int(50, 'How often the local object store is checked for changes.', { min: 5 }),
    leaseDurationSeconds: int(40, 'Lease duration of edge nodes (kubelet default), renewed by cloudcore while the edge is connected.', { min: 5 }),
    leaseRenewIntervalMs: int(10_000, "How often cloudcore renews a connected edge node's Lease (6 API writes a minute per idle node).", { min: 1_000 }),
    podAutonomy: bool(
      true,
      'Give pods that target edge nodes tolerations for unreachable/not-ready without a deadline (a mutating webhook), ' +
        'so a disconnected edge keeps its pods. Annotate a pod kubeedge-ts.io/evict-when-unreachable: "true" to keep normal eviction.',
    ),
    webhookAddress: str('0.0.0.0', 'Address of the pod admission webhook server.'),
    webhookPort: int(10010, 'Port of the pod admission webhook server; 0 picks a free port.', { min: 0, max: 65535 }),
    webhookHost: str('', 'Host the API server uses to reach the webhook; empty means the first of modules.cloudHub.advertiseAddresses, else 127.0.0.1.', {
      allowEmpty: true,
    }),
    nodeStatusRefreshMs: int(300_000, 'Node status is patched when it changes, and at least this often (kubelet nodeStatusReportFrequency).', { min: 10_000 }),
  };
}

export type EdgeControllerConfig = ConfigOf<ReturnType<typeof edgeControllerConfigSchema>>;

/** Checks within the slice; `prefix` is where the slice sits in the daemon's config (`modules.edgeController`). */
export function edgeControllerConfigProblems(c: EdgeControllerConfig, prefix: string): string[] {
  return c.leaseRenewIntervalMs < c.leaseDurationSeconds * 1000
    ? []
    : [`${prefix}.leaseRenewIntervalMs (${c.leaseRenewIntervalMs}) must be shorter than leaseDurationSeconds (${c.leaseDurationSeconds} s)`];
}
