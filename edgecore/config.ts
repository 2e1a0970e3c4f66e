import { hostname } from 'node:os';
import { keepaliveProblems, loadConfig, renderDefaultConfig, type ConfigSources } from '../shared/config/loader.js';
import { bool, int, oneOf, str, strList, type ConfigOf } from '../shared/config/schema.js';
import { LOG_LEVELS } from '../shared/logger.js';

const MiB = 1024 * 1024;
/** Kubernetes node names are DNS-1123 subdomains. */
export const NODE_NAME_PATTERN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

function defaultNodeName(): string {
  const name = hostname().toLowerCase().replace(/[^-a-z0-9.]/g, '-').replace(/^[-.]+|[-.]+$/g, '');
  return name || 'edge-node';
}

/** Every edgecore option with its default and documentation (`edgecore --print-default-config`). */
export function edgeCoreSchema() {
  return {
    logLevel: oneOf(LOG_LEVELS, 'info', 'Log level.'),
    nodeName: str(defaultNodeName(), 'Name of this edge node in the cluster (defaults to the host name).', { pattern: NODE_NAME_PATTERN, expected: 'a DNS-1123 name (lower-case letters, digits, "-" and ".")' }),
    database: {
      path: str('/var/lib/kubeedge/edgecore.db', 'SQLite file holding everything this node received and everything waiting to go up.'),
      synchronous: oneOf(['normal', 'full'] as const, 'normal', 'normal survives edgecore crashes; full also survives power loss at the cost of an fsync per commit (a lost commit is healed by the resync anyway).'),
    },
    modules: {
      edged: {
        enable: bool(true, 'Report this node and run the pods bound to it.'),
        nodeIP: str('', 'InternalIP reported for the node; empty means the first non-loopback IPv4 address.', { allowEmpty: true }),
        maxPods: int(110, 'Pods this node offers (capacity and allocatable "pods").', { min: 1 }),
        nodeLabels: strList([], 'Extra labels for the Node, as key=value.'),
        nodeStatusCheckMs: int(60_000, 'How often the host is checked; the node status is reported when it changed.', { min: 1_000 }),
        runtimeEndpoint: str('unix:///run/containerd/containerd.sock', 'CRI endpoint of the container runtime (containerd, CRI-O). Empty: report the node only, run no pods.', { allowEmpty: true, pattern: /^(unix:\/\/)?\/\S+$/, expected: 'unix:///path/to/socket' }),
        rootDirectory: str('/var/lib/kubeedge/pods', 'Where pod volumes (ConfigMaps, Secrets, emptyDirs) live on the host.'),
        podLogsDirectory: str('/var/log/pods', 'Container logs in CRI format: <dir>/<namespace>_<pod>_<uid>/<container>/<restart>.log.'),
        cgroupParent: str('/kubeedge', 'cgroup parent of pod sandboxes (cgroupfs driver); pods go to <parent>/pod<uid>. Empty: the runtime\'s default.', { allowEmpty: true }),
        staticPodPath: str('/etc/kubeedge/manifests', 'Folder of static pod manifests (YAML or JSON), run without the cloud and mirrored to it.'),
        relistIntervalMs: int(1_000, 'How often the runtime is listed to notice exits (the kubelet PLEG period).', { min: 100 }),
        crashLoopBackOffMs: int(10_000, 'First restart delay of a crashing container; doubles per restart (kubelet: 10 s).', { min: 10 }),
        crashLoopBackOffMaxMs: int(300_000, 'Longest restart delay (kubelet: 5 min).', { min: 10 }),
      },
      eventBus: {
        enable: bool(true, 'MQTT for devices and mappers (KubeEdge EventBus).'),
        mode: oneOf(['internal', 'external', 'both'] as const, 'internal', 'internal: an embedded broker; external: a client of another broker (e.g. mosquitto); both: the two at once.'),
        internal: {
          address: str('127.0.0.1', 'Address of the embedded broker; keep it on loopback unless mappers run on other hosts.'),
          port: int(1884, 'Port of the embedded broker (KubeEdge mqttServerInternal); 0 picks a free port.', { min: 0, max: 65535 }),
          username: str('', 'When set, clients of the embedded broker must log in with this username and the password.', { allowEmpty: true }),
          password: str('', 'Password for `username`.', { allowEmpty: true }),
        },
        external: {
          url: str('tcp://127.0.0.1:1883', 'URL of the external broker (KubeEdge mqttServerExternal).', { pattern: /^(tcp|mqtt|mqtts|tls|ssl|ws|wss):\/\/[^/\s]+$/, expected: 'a broker URL like tcp://127.0.0.1:1883' }),
          username: str('', 'Username at the external broker.', { allowEmpty: true }),
          password: str('', 'Password at the external broker.', { allowEmpty: true }),
        },
      },
      deviceTwin: {
        enable: bool(true, 'Keep device twins in the edge store and speak KubeEdge\'s device MQTT topics (needs eventBus).'),
      },
      edgeHub: {
        server: str('127.0.0.1:10000', 'host:port (or wss:// URL) of the cloudcore WebSocket hub.', { pattern: /^(wss:\/\/)?[^/\s:]+:\d{1,5}\/?$/, expected: 'host:port or wss://host:port' }),
        certServer: str('https://127.0.0.1:10002', 'https:// URL of the cloudcore certificate server (KubeEdge httpServer).', { pattern: /^https:\/\/[^/\s]+\/?$/, expected: 'an https:// URL' }),
        token: str('', 'Join token from `cloudcore token create`; needed only until this node has a certificate.', { allowEmpty: true }),
        caFile: str('/etc/kubeedge/ca/rootCA.crt', 'CA certificate (PEM), fetched with the token on first start.'),
        certFile: str('/etc/kubeedge/certs/server.crt', 'This node\'s client certificate (PEM).'),
        keyFile: str('/etc/kubeedge/certs/server.key', 'This node\'s private key (PEM).'),
        rotateCertificates: bool(true, 'Renew the node certificate at 70-90% of its lifetime, then reconnect with it.'),
        heartbeatIntervalMs: int(30_000, 'Ping the cloud after this long without traffic (KubeEdge: 15 s; 30 s keeps idle traffic under 750 bytes a minute).', { min: 100 }),
        sessionTimeoutMs: int(90_000, 'Give up on a session with no frame from the cloud for this long.', { min: 200 }),
        handshakeTimeoutMs: int(15_000, 'Time allowed for TLS and the WebSocket upgrade.', { min: 100 }),
        reconnectInitialDelayMs: int(1_000, 'First reconnect delay; doubles per failed attempt, with jitter.', { min: 10 }),
        reconnectMaxDelayMs: int(30_000, 'Cap of the reconnect delay.', { min: 10 }),
        streamWindowBytes: int(1 * MiB, 'Bytes the cloud may send on one stream before waiting for this edge to commit.', { min: 16 * 1024 }),
        maxMessageBytes: int(32 * MiB, 'Largest single message accepted from the cloud.', { min: 64 * 1024 }),
        upstreamResendMs: int(60_000, 'Resend reports the cloud has not ACKed for this long.', { min: 100 }),
        requestTimeoutMs: int(60_000, 'Time the cloud has to answer a query (KubeEdge remoteQueryTimeout).', { min: 100 }),
      },
    },
  };
}

export type EdgeCoreConfig = ConfigOf<ReturnType<typeof edgeCoreSchema>>;

export function loadEdgeCoreConfig(sources: ConfigSources): EdgeCoreConfig {
  return loadConfig(edgeCoreSchema(), sources, (c) => {
    const hub = c.modules.edgeHub;
    const problems: string[] = [];
    problems.push(...keepaliveProblems('modules.edgeHub', hub));
    for (const label of c.modules.edged.nodeLabels) {
      if (!/^[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?=[-A-Za-z0-9_.]*$/.test(label)) problems.push(`modules.edged.nodeLabels: "${label}" is not key=value`);
    }
    const eb = c.modules.eventBus;
    if (eb.internal.password && !eb.internal.username) problems.push('modules.eventBus.internal.password is set but username is empty');
    if (c.modules.deviceTwin.enable && !eb.enable) problems.push('modules.deviceTwin needs modules.eventBus (enable it, or disable deviceTwin)');
    if (hub.reconnectMaxDelayMs < hub.reconnectInitialDelayMs) {
      problems.push('modules.edgeHub.reconnectMaxDelayMs must not be below reconnectInitialDelayMs');
    }
    return problems;
  });
}

export function defaultEdgeCoreConfigText(): string {
  return renderDefaultConfig(edgeCoreSchema(), 'edgecore configuration. Every key is optional; shown with its default.');
}
