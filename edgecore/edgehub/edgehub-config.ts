import { keepaliveProblems } from '../../shared/config/loader.js';
import { bool, int, secretFile, str, strOrList, type ConfigOf } from '../../shared/config/schema.js';

const MiB = 1024 * 1024;

/** EdgeHub's slice of the edgecore config (`modules.edgeHub`); edgecore's schema composes it. */
export function edgeHubConfigSchema() {
  return {
    server: strOrList(
      ['127.0.0.1:10000'],
      'The cloudcore WebSocket hub: host:port (or wss:// URL), or a list of them for several replicas. A host may be a DNS ' +
        'name; it is resolved at each dial and every address it yields is a candidate (TLS still verifies the name). Each ' +
        'attempt picks at random among the candidates not yet tried since the last connection; a replica that shed this ' +
        'edge (GOAWAY REBALANCE) is avoided for 10 minutes while another is left.',
      { pattern: /^(wss:\/\/)?[^/\s:]+:\d{1,5}\/?$/, expected: 'host:port or wss://host:port' },
    ),
    certServer: str('https://127.0.0.1:10002', 'https:// URL of the cloudcore certificate server (KubeEdge httpServer).', {
      pattern: /^https:\/\/[^/\s]+\/?$/,
      expected: 'an https:// URL',
    }),
    token: str('', 'Join token from `cloudcore token create`; needed only until this node has a certificate.', { allowEmpty: true }),
    tokenFile: secretFile('token'),
    caFile: str('/etc/kubeedge/ca/rootCA.crt', 'CA certificate (PEM), fetched with the token on first start.'),
    certFile: str('/etc/kubeedge/certs/server.crt', "This node's client certificate (PEM)."),
    keyFile: str('/etc/kubeedge/certs/server.key', "This node's private key (PEM)."),
    rotateCertificates: bool(true, 'Renew the node certificate at 70-90% of its lifetime, then reconnect with it.'),
    heartbeatIntervalMs: int(30_000, 'Ping the cloud after this long without traffic (KubeEdge: 15 s; 30 s keeps idle traffic under 750 bytes a minute).', {
      min: 100,
    }),
    sessionTimeoutMs: int(90_000, 'Give up on a session with no frame from the cloud for this long.', { min: 200 }),
    handshakeTimeoutMs: int(15_000, 'Time allowed for TLS and the WebSocket upgrade.', { min: 100 }),
    reconnectInitialDelayMs: int(
      1_000,
      'Reconnect delays are drawn uniformly from [0, min(reconnectMaxDelayMs, this × 2^n)] for the n-th failure since a ' +
        'session lasted 30 s ("full jitter"), the first one after a lost session included, so the edges of a dead ' +
        'replica spread out; a GOAWAY naming another hub is followed at once.',
      { min: 10 },
    ),
    reconnectMaxDelayMs: int(30_000, 'Cap of the reconnect delay window.', { min: 10 }),
    streamWindowBytes: int(1 * MiB, 'Bytes the cloud may send on one stream before waiting for this edge to commit.', { min: 16 * 1024 }),
    maxMessageBytes: int(32 * MiB, 'Largest single message accepted from the cloud.', { min: 64 * 1024 }),
    upstreamResendMs: int(60_000, 'Resend reports the cloud has not ACKed for this long.', { min: 100 }),
    requestTimeoutMs: int(60_000, 'Time the cloud has to answer a query (KubeEdge remoteQueryTimeout).', { min: 100 }),
  };
}

export type EdgeHubConfig = ConfigOf<ReturnType<typeof edgeHubConfigSchema>>;

/** Checks within the slice; `prefix` is where the slice sits in the daemon's config (`modules.edgeHub`). */
export function edgeHubConfigProblems(c: EdgeHubConfig, prefix: string): string[] {
  const problems = keepaliveProblems(prefix, c);
  if (c.reconnectMaxDelayMs < c.reconnectInitialDelayMs) problems.push(`${prefix}.reconnectMaxDelayMs must not be below reconnectInitialDelayMs`);
  return problems;
}
