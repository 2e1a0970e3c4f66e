import { keepaliveProblems } from '../../shared/config/loader.js';
import { bool, int, str, strList, type ConfigOf } from '../../shared/config/schema.js';

const MiB = 1024 * 1024;

/** CloudHub's slice of the cloudcore config (`modules.cloudHub`); cloudcore's schema composes it. */
export function cloudHubConfigSchema() {
  return {
    address: str('0.0.0.0', 'Address of the edge-facing WebSocket hub (wss, mutual TLS).'),
    port: int(10000, 'Port of the WebSocket hub; 0 picks a free port.', { min: 0, max: 65535 }),
    certServerAddress: str('0.0.0.0', 'Address of the HTTPS server that hands out the CA and signs node certificates.'),
    certServerPort: int(10002, 'Port of the certificate server; 0 picks a free port.', { min: 0, max: 65535 }),
    advertiseAddresses: strList(
      [],
      'Addresses edges use to reach cloudcore; they become IP/DNS SANs of the serving certificate. Empty means 127.0.0.1 and every IPv4 address of this host.',
    ),
    dnsNames: strList([], 'Extra DNS names for the serving certificate.'),
    caCertFile: str('/etc/kubeedge/ca/rootCA.crt', 'CA certificate (PEM). Created with its key on first start when neither file exists.'),
    caKeyFile: str('/etc/kubeedge/ca/rootCA.key', 'CA private key (PEM). Keep it secret: it signs node certificates and join tokens.'),
    serverCertFile: str(
      '/etc/kubeedge/certs/server.crt',
      'Serving certificate (PEM); reissued when missing, not from this CA, near expiry or missing an advertised address.',
    ),
    serverKeyFile: str('/etc/kubeedge/certs/server.key', 'Serving certificate key (PEM).'),
    edgeCertValiditySeconds: int(
      365 * 86_400,
      'Validity of node certificates signed for edges (KubeEdge edgeCertSigningDuration: 365 days). Edges renew at 70-90% of it.',
      { min: 10 },
    ),
    tokenTtlMinutes: int(24 * 60, 'Default lifetime of join tokens made by `cloudcore token create`.', { min: 1 }),
    nodeLimit: int(20_000, 'Most edge connections this replica serves; further connections are refused with 503.', { min: 1 }),
    heartbeatIntervalMs: int(
      30_000,
      'The hub probes an edge silent for 1.5x this. Edges ping every heartbeat; 30 s keeps an idle edge under 750 bytes a minute.',
      { min: 100 },
    ),
    sessionTimeoutMs: int(90_000, 'A session with no frame for this long is closed (KubeEdge keepaliveInterval).', { min: 200 }),
    handshakeTimeoutMs: int(15_000, 'Time an edge has to finish TLS and the WebSocket upgrade at the hub, or TLS and its request at the certificate server.', {
      min: 100,
    }),
    streamWindowBytes: int(1 * MiB, 'Bytes an edge may send on one stream before it waits for credit.', { min: 16 * 1024 }),
    maxMessageBytes: int(32 * MiB, 'Largest single message accepted from an edge (KubeEdge: 32 MiB).', { min: 64 * 1024 }),
    upstreamWorkers: int(64, 'Edge reports processed at once across all nodes (keyed: one at a time per object).', { min: 1 }),
    upstreamTimeoutMs: int(30_000, 'Time a controller has to process one edge report before it is retried on reconnect.', { min: 100 }),
    rebalance: {
      enable: bool(
        true,
        "Balance edges across replicas (docs/replicas.md): publish this replica's connection count, and send edges above its share to replicas with room.",
      ),
      replicaId: str('', 'This replica in the reports: a lower-case DNS label, unique among replicas. Empty: the host name and the hub port.', {
        allowEmpty: true,
        pattern: /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/,
        expected: 'a lower-case DNS label',
      }),
      address: str('', 'host:port edges dial to reach this replica directly (named in GOAWAY REBALANCE). Empty: the first advertiseAddress and the hub port.', {
        allowEmpty: true,
        pattern: /^(\[[0-9a-fA-F:]+\]|[^\s:/[\]]+):\d{1,5}$/,
        expected: 'host:port',
      }),
      reportIntervalMs: int(
        10_000,
        'Publish the report and balance at least this often (and within a second of a change). A report unchanged for three intervals is a dead replica.',
        {
          min: 100,
        },
      ),
      tolerancePercent: int(10, 'Shed only when holding more than the expected share E by this percentage ...', { min: 0, max: 1_000 }),
      minExcess: int(5, '... and by at least this many edges.', { min: 0 }),
      shedPerSecond: int(100, 'Most GOAWAY REBALANCE sent per second while shedding: each moved edge costs its new replica a TLS handshake and a resync.', {
        min: 1,
      }),
      observeMs: int(30_000, 'After shedding, wait this long before deciding again.', { min: 0 }),
    },
  };
}

export type CloudHubConfig = ConfigOf<ReturnType<typeof cloudHubConfigSchema>>;

/** Checks within the slice; `prefix` is where the slice sits in the daemon's config (`modules.cloudHub`). */
export function cloudHubConfigProblems(c: CloudHubConfig, prefix: string): string[] {
  const problems = keepaliveProblems(prefix, c);
  if (c.port !== 0 && c.port === c.certServerPort && c.address === c.certServerAddress) problems.push(`${prefix}.port and certServerPort are both ${c.port}`);
  return problems;
}
