import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { GoAwayCode, goAwayName } from '../../shared/channel/frame.js';
import { daemonRegistry } from '../../shared/monitor/monitor-server.js';

// cloudcore's Prometheus metrics, each defined once (docs/metrics.md lists them). No label names a node or a
// pod: 100,000 edges must not mean 100,000 series. Per-node state is summed when Prometheus scrapes.

/** Latencies from a fraction of a millisecond (a local ACK) to a minute (a backlog after an outage). */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** What CloudHub holds, read at scrape time. */
export interface HubSnapshot {
  connectedEdges: number;
  /** Objects waiting in all node outboxes: queued, or sent and not yet ACKed. */
  outboxObjects: number;
  /** performance.now() of the oldest of them; undefined when none waits. */
  oldestEnqueuedAtMs: number | undefined;
  upstreamQueued: number;
}

/** Why the hub turned a connection away before a session existed. */
export const REFUSED_REASONS = ['tls_handshake', 'certificate', 'node_limit', 'bad_upgrade', 'handshake_timeout'] as const;
export type RefusedReason = (typeof REFUSED_REASONS)[number];

/**
 * How a kubelet stream (one API server connection to an edge kubelet, issue 13) began on this replica: opened on a
 * channel (here or through the replica holding the node), served here for another replica, or refused.
 */
export const KUBELET_STREAM_RESULTS = ['opened', 'served_for_replica', 'not_connected', 'too_many', 'unauthorized', 'failed'] as const;
export type KubeletStreamResult = (typeof KUBELET_STREAM_RESULTS)[number];

export class CloudMetrics {
  readonly registry: Registry;
  private hub: (() => HubSnapshot) | undefined;
  private readonly kubeletOpen: Array<() => number> = [];
  private snapshot: { at: number; value: HubSnapshot } | undefined;

  readonly sessionsOpened: Counter;
  readonly sessionsClosed: Counter<'reason'>;
  readonly goAways: Counter<'reason'>;
  readonly connectionsRefused: Counter<'reason'>;
  readonly delivery: Histogram;
  readonly upstreamProcessing: Histogram;
  readonly apiRequests: Counter<'verb' | 'resource' | 'code'>;
  readonly apiDuration: Histogram<'verb' | 'resource'>;
  readonly informerRelists: Counter<'resource'>;
  readonly watchRestarts: Counter<'resource'>;
  readonly certificatesIssued: Counter<'kind'>;
  readonly certificateRequestsRefused: Counter<'reason'>;
  readonly replicas: Gauge;
  readonly expectedEdges: Gauge;
  readonly kubeletStreams: Counter<'result'>;
  /** Bytes through kubelet tunnels, bound once: `to_edge` (the API server's) and `from_edge`. */
  readonly kubeletStreamBytes: Readonly<Record<'to_edge' | 'from_edge', Counter.Internal>>;
  readonly kubeletStreamsIdleClosed: Counter;

  constructor(registry: Registry = daemonRegistry()) {
    this.registry = registry;
    const registers = [registry];
    // One scrape reads the sessions once, whatever number of gauges it fills.
    const hub = (): HubSnapshot | undefined => {
      if (!this.hub) return undefined;
      const now = performance.now();
      if (!this.snapshot || now - this.snapshot.at > 100) this.snapshot = { at: now, value: this.hub() };
      return this.snapshot.value;
    };
    /** A gauge read from CloudHub's state when Prometheus scrapes; 0 before CloudHub is there. */
    const hubGauge = (name: string, help: string, read: (s: HubSnapshot) => number): void => {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          const snapshot = hub();
          this.set(snapshot ? read(snapshot) : 0);
        },
      });
    };
    hubGauge('cloudcore_connected_edges', 'Edge nodes with an open session on this cloudcore.', (s) => s.connectedEdges);
    // The name KubeEdge's cloudcore exports (cloud/pkg/common/monitor/monitor.go), so its dashboards keep working.
    hubGauge(
      'KubeEdge_CloudHub_connected_nodes',
      'Number of nodes that connected to the cloudHub instance (KubeEdge name; same value as cloudcore_connected_edges).',
      (s) => s.connectedEdges,
    );
    hubGauge(
      'cloudcore_outbox_objects',
      'Objects waiting for edges, summed over all node outboxes: queued, or sent and not yet acknowledged.',
      (s) => s.outboxObjects,
    );
    hubGauge('cloudcore_outbox_oldest_age_seconds', 'Age of the oldest object waiting in any node outbox; 0 when none waits.', (s) =>
      s.oldestEnqueuedAtMs === undefined ? 0 : Math.max(0, (performance.now() - s.oldestEnqueuedAtMs) / 1000),
    );
    hubGauge('cloudcore_upstream_queue_messages', 'Messages from edges (status reports, queries) waiting for a controller.', (s) => s.upstreamQueued);
    this.sessionsOpened = new Counter({ name: 'cloudcore_sessions_opened_total', help: 'Edge sessions whose hello was accepted.', registers });
    this.sessionsClosed = new Counter({
      name: 'cloudcore_sessions_closed_total',
      help: 'Edge sessions ended, by reason: an error code (ERR_SESSION_TIMEOUT, ERR_CONNECTION …), goaway_<CODE> after cloudcore sent one, or closed.',
      labelNames: ['reason'],
      registers,
    });
    this.goAways = new Counter({
      name: 'cloudcore_goaways_sent_total',
      help: 'GOAWAY frames sent to edges, by code (SHUTDOWN, REBALANCE, REPLACED, CERTIFICATE_EXPIRED …).',
      labelNames: ['reason'],
      registers,
    });
    this.connectionsRefused = new Counter({
      name: 'cloudcore_connections_refused_total',
      help: 'Edge connections refused by the hub before a session: tls_handshake, certificate, node_limit, bad_upgrade, handshake_timeout.',
      labelNames: ['reason'],
      registers,
    });
    this.delivery = new Histogram({
      name: 'cloudcore_delivery_duration_seconds',
      help: 'From an object change queued for an edge to the edge acknowledging it committed.',
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.upstreamProcessing = new Histogram({
      name: 'cloudcore_upstream_processing_duration_seconds',
      help: 'From a message of an edge arriving to its controller having handled it.',
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.apiRequests = new Counter({
      name: 'cloudcore_apiserver_requests_total',
      help: 'Requests to the Kubernetes API server, by verb, resource and HTTP status code (0: no answer).',
      labelNames: ['verb', 'resource', 'code'],
      registers,
    });
    this.apiDuration = new Histogram({
      name: 'cloudcore_apiserver_request_duration_seconds',
      help: 'Latency of requests to the Kubernetes API server, until the whole response was read (watches are not included).',
      labelNames: ['verb', 'resource'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.informerRelists = new Counter({
      name: 'cloudcore_informer_relists_total',
      help: 'Full lists an informer made (its first, and each after its watch fell too far behind).',
      labelNames: ['resource'],
      registers,
    });
    this.watchRestarts = new Counter({
      name: 'cloudcore_informer_watch_restarts_total',
      help: 'Watches an informer opened again after one ended or failed.',
      labelNames: ['resource'],
      registers,
    });
    this.certificatesIssued = new Counter({
      name: 'cloudcore_certificates_issued_total',
      help: 'Node certificates signed: kind join (with a join token) or renewal (with the current certificate).',
      labelNames: ['kind'],
      registers,
    });
    this.certificateRequestsRefused = new Counter({
      name: 'cloudcore_certificate_requests_refused_total',
      help: 'Certificate requests refused, by error code (ERR_TOKEN_EXPIRED, ERR_AUTH, ERR_TOKEN_USED_UP …).',
      labelNames: ['reason'],
      registers,
    });
    this.replicas = new Gauge({
      name: 'cloudcore_replicas',
      help: 'Live cloudcore replicas this one sees in the replica reports, itself included (1 when it runs alone).',
      registers,
    });
    this.replicas.set(1);
    this.expectedEdges = new Gauge({
      name: 'cloudcore_rebalance_expected_edges',
      help: 'The share of edges this replica is expected to hold: ceil(edges on live replicas / replicas taking edges), within node limits.',
      registers,
    });
    this.kubeletStreams = new Counter({
      name: 'cloudcore_kubelet_streams_total',
      help:
        'Kubelet streams (kubectl logs/exec/attach/port-forward, node proxy) by how they began: opened, served_for_replica, ' +
        'not_connected, too_many (maxStreamsPerNode), unauthorized (kubelet client certificate), failed (the stream could not be opened).',
      labelNames: ['result'],
      registers,
    });
    const bytes = new Counter({
      name: 'cloudcore_kubelet_stream_bytes_total',
      help: 'Bytes relayed through kubelet streams opened on this replica, by direction (to_edge, from_edge).',
      labelNames: ['direction'],
      registers,
    });
    this.kubeletStreamBytes = { to_edge: bytes.labels('to_edge'), from_edge: bytes.labels('from_edge') };
    this.kubeletStreamsIdleClosed = new Counter({
      name: 'cloudcore_kubelet_streams_idle_closed_total',
      help: 'Kubelet streams closed because no byte went either way for modules.streams.idleTimeoutMs.',
      registers,
    });
    const open = this.kubeletOpen;
    new Gauge({
      name: 'cloudcore_kubelet_streams_open',
      help: 'Kubelet streams open on this replica: its own tunnels and those it serves for other replicas.',
      registers,
      collect() {
        this.set(open.reduce((sum, read) => sum + read(), 0));
      },
    });
    this.zeroFixedSeries();
  }

  /** A source of open kubelet streams (the front's tunnels, the replica relay), summed when Prometheus scrapes. */
  observeKubeletStreams(read: () => number): void {
    this.kubeletOpen.push(read);
  }

  /** Series of fixed label sets exported at 0 from the start, so rate() and alerts see them before the first event. */
  private zeroFixedSeries(): void {
    for (const code of Object.values(GoAwayCode)) this.goAways.labels(goAwayName(code)).inc(0);
    for (const reason of REFUSED_REASONS) this.connectionsRefused.labels(reason).inc(0);
    for (const kind of ['join', 'renewal']) this.certificatesIssued.labels(kind).inc(0);
    for (const result of KUBELET_STREAM_RESULTS) this.kubeletStreams.labels(result).inc(0);
  }

  /** CloudHub hands over how to read its state; read at most every 100 ms, when Prometheus scrapes. */
  observeHub(snapshot: () => HubSnapshot): void {
    this.hub = snapshot;
    this.snapshot = undefined;
  }
}
