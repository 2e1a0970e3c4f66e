import { keepaliveProblems, loadConfig, renderDefaultConfig, type ConfigSources } from '../shared/config/loader.js';
import { bool, int, oneOf, str, strList, type ConfigOf } from '../shared/config/schema.js';
import { LOG_LEVELS } from '../shared/logger.js';

const MiB = 1024 * 1024;

/** Every cloudcore option with its default and documentation (`cloudcore --print-default-config`). */
export function cloudCoreSchema() {
  return {
    logLevel: oneOf(LOG_LEVELS, 'info', 'Log level.'),
    kubeAPI: {
      kubeconfig: str('', 'kubeconfig of the cluster; empty means in-cluster (service account) when cloudcore runs in a pod.', { allowEmpty: true }),
      qps: int(100, 'Requests per second cloudcore may send to the API server (status, leases, nodes).', { min: 1 }),
      burst: int(200, 'Requests cloudcore may send at once above qps.', { min: 1 }),
    },
    modules: {
      cloudHub: {
        address: str('0.0.0.0', 'Address of the edge-facing WebSocket hub (wss, mutual TLS).'),
        port: int(10000, 'Port of the WebSocket hub; 0 picks a free port.', { min: 0, max: 65535 }),
        certServerAddress: str('0.0.0.0', 'Address of the HTTPS server that hands out the CA and signs node certificates.'),
        certServerPort: int(10002, 'Port of the certificate server; 0 picks a free port.', { min: 0, max: 65535 }),
        advertiseAddresses: strList([], 'Addresses edges use to reach cloudcore; they become IP/DNS SANs of the serving certificate. Empty means 127.0.0.1 and every IPv4 address of this host.'),
        dnsNames: strList([], 'Extra DNS names for the serving certificate.'),
        caCertFile: str('/etc/kubeedge/ca/rootCA.crt', 'CA certificate (PEM). Created with its key on first start when neither file exists.'),
        caKeyFile: str('/etc/kubeedge/ca/rootCA.key', 'CA private key (PEM). Keep it secret: it signs node certificates and join tokens.'),
        serverCertFile: str('/etc/kubeedge/certs/server.crt', 'Serving certificate (PEM); reissued when missing, not from this CA, near expiry or missing an advertised address.'),
        serverKeyFile: str('/etc/kubeedge/certs/server.key', 'Serving certificate key (PEM).'),
        edgeCertValiditySeconds: int(365 * 86_400, 'Validity of node certificates signed for edges (KubeEdge edgeCertSigningDuration: 365 days). Edges renew at 70-90% of it.', { min: 10 }),
        tokenTtlMinutes: int(24 * 60, 'Default lifetime of join tokens made by `cloudcore token create`.', { min: 1 }),
        nodeLimit: int(20_000, 'Most edge connections this replica serves; further connections are refused with 503.', { min: 1 }),
        heartbeatIntervalMs: int(30_000, 'The hub probes an edge silent for 1.5x this. Edges ping every heartbeat; 30 s keeps an idle edge under 750 bytes a minute.', { min: 100 }),
        sessionTimeoutMs: int(90_000, 'A session with no frame for this long is closed (KubeEdge keepaliveInterval).', { min: 200 }),
        handshakeTimeoutMs: int(15_000, 'Time an edge has to finish TLS and the WebSocket upgrade at the hub, or TLS and its request at the certificate server.', { min: 100 }),
        streamWindowBytes: int(1 * MiB, 'Bytes an edge may send on one stream before it waits for credit.', { min: 16 * 1024 }),
        maxMessageBytes: int(32 * MiB, 'Largest single message accepted from an edge (KubeEdge: 32 MiB).', { min: 64 * 1024 }),
        upstreamWorkers: int(64, 'Edge reports processed at once across all nodes (keyed: one at a time per object).', { min: 1 }),
        upstreamTimeoutMs: int(30_000, 'Time a controller has to process one edge report before it is retried on reconnect.', { min: 100 }),
      },
      edgeController: {
        enable: bool(true, 'Sync pods, configmaps, secrets and nodes with edges.'),
        source: oneOf(['kubernetes', 'local'] as const, 'kubernetes', 'Where desired objects come from: `kubernetes` (pods, configmaps, secrets and nodes of the cluster in kubeAPI) or `local`, a SQLite object store for running without a cluster.'),
        localStorePath: str('/var/lib/kubeedge/cloudcore-objects.db', 'SQLite file of the local object store.'),
        pollIntervalMs: int(50, 'How often the local object store is checked for changes.', { min: 5 }),
        leaseDurationSeconds: int(40, 'Lease duration of edge nodes (kubelet default), renewed by cloudcore while the edge is connected.', { min: 5 }),
        leaseRenewIntervalMs: int(10_000, 'How often cloudcore renews a connected edge node\'s Lease (6 API writes a minute per idle node).', { min: 1_000 }),
        podAutonomy: bool(true, 'Give pods that target edge nodes tolerations for unreachable/not-ready without a deadline (a mutating webhook), so a disconnected edge keeps its pods. Annotate a pod kubeedge-ts.io/evict-when-unreachable: "true" to keep normal eviction.'),
        webhookAddress: str('0.0.0.0', 'Address of the pod admission webhook server.'),
        webhookPort: int(10010, 'Port of the pod admission webhook server; 0 picks a free port.', { min: 0, max: 65535 }),
        webhookHost: str('', 'Host the API server uses to reach the webhook; empty means the first of modules.cloudHub.advertiseAddresses, else 127.0.0.1.', { allowEmpty: true }),
        nodeStatusRefreshMs: int(300_000, 'Node status is patched when it changes, and at least this often (kubelet nodeStatusReportFrequency).', { min: 10_000 }),
      },
      deviceController: {
        enable: bool(true, 'Sync devices.kubeedge.io/v1beta1 Devices and DeviceModels with the nodes they name, and write device reports into Device status (needs edgeController.source kubernetes and the CRDs in build/crds).'),
      },
    },
  };
}

export type CloudCoreConfig = ConfigOf<ReturnType<typeof cloudCoreSchema>>;

export function loadCloudCoreConfig(sources: ConfigSources): CloudCoreConfig {
  return loadConfig(cloudCoreSchema(), sources, (c) => {
    const hub = c.modules.cloudHub;
    const problems: string[] = [];
    problems.push(...keepaliveProblems('modules.cloudHub', hub));
    const ec = c.modules.edgeController;
    if (ec.leaseRenewIntervalMs >= ec.leaseDurationSeconds * 1000) {
      problems.push(`modules.edgeController.leaseRenewIntervalMs (${ec.leaseRenewIntervalMs}) must be shorter than leaseDurationSeconds (${ec.leaseDurationSeconds} s)`);
    }
    if (hub.port !== 0 && hub.port === hub.certServerPort && hub.address === hub.certServerAddress) {
      problems.push(`modules.cloudHub.port and certServerPort are both ${hub.port}`);
    }
    return problems;
  });
}

export function defaultCloudCoreConfigText(): string {
  return renderDefaultConfig(cloudCoreSchema(), 'cloudcore configuration. Every key is optional; shown with its default.');
}
