import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { daemonRegistry } from '../../shared/monitor/monitor-server.js';

/** The pod phases of the Kubernetes API; `edgecore_pods` always shows all five. */
export const POD_PHASES = ['Pending', 'Running', 'Succeeded', 'Failed', 'Unknown'] as const;
export type PodPhase = (typeof POD_PHASES)[number];

/**
 * State the scrape-time gauges read, each given by the module that owns it when it starts. A source nobody
 * gave (the module is off) reads as zero.
 */
export interface EdgeMetricSources {
  linkConnected(): boolean;
  upstreamOutbox(): { messages: number; oldestCreatedMs: number | undefined };
  storeObjects(): ReadonlyArray<{ type: string; objects: number }>;
  pods(): Readonly<Record<PodPhase, number>>;
  /** exec, attach and port-forward sessions open on the kubelet API (edged). */
  streamingSessions(): number;
}

/** Types always shown by `edgecore_store_objects`, at 0 when the store has none. */
const STORE_TYPES = ['pod', 'configmap', 'secret', 'device', 'devicemodel'];

/** The `endpoint` label of kubelet API requests: the kubelet's own handler names, `other` for any path it does not serve. */
export const KUBELET_ENDPOINTS = ['containerLogs', 'exec', 'attach', 'portForward', 'stats', 'metrics', 'other'] as const;
export type KubeletEndpoint = (typeof KUBELET_ENDPOINTS)[number];

/** Both CRI metrics of one method, bound once: the call path does no label lookups. */
export interface CriMethodMetrics {
  duration: Histogram.Internal<'method'>;
  error(code: string): void;
}

/** gRPC status names (grpc/doc/statuscodes.md): the `code` label of CRI errors. */
const GRPC_STATUS_NAMES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
];

/**
 * edgecore's Prometheus metrics, each defined once (prefix `edgecore_`, base units). Modules record through
 * the pre-bound children below; gauges that mirror state are computed at scrape time from the sources.
 * Label values come from small fixed sets only: never a pod, device or topic name.
 */
export class EdgeMetrics {
  readonly registry: Registry;
  private readonly sources: Partial<EdgeMetricSources> = {};

  readonly linkConnects: Counter;
  private readonly linkDisconnects: Counter<'reason'>;
  readonly storeCommitDuration: Histogram;
  readonly containerRestarts: Counter;
  private readonly criDuration: Histogram<'method'>;
  private readonly criErrors: Counter<'method' | 'code'>;
  private readonly criMethods = new Map<string, CriMethodMetrics>();
  readonly mqttReceived: Readonly<Record<'internal' | 'external', Counter.Internal>>;
  readonly mqttPublished: Readonly<Record<'internal' | 'external', Counter.Internal>>;
  readonly deviceReports: Readonly<Record<'ok' | 'rejected', Counter.Internal>>;
  readonly twinUpdates: Readonly<Record<'cloud' | 'edge', Counter.Internal>>;
  /** Requests on the kubelet API the cloud relays (issue 13), bound once per endpoint. */
  readonly kubeletRequests: Readonly<Record<KubeletEndpoint, Counter.Internal>>;

  constructor(registry: Registry = daemonRegistry()) {
    this.registry = registry;
    const registers = [registry];
    const sources = this.sources;

    new Gauge({
      name: 'edgecore_link_connected',
      help: '1 while the channel to cloudcore is open, else 0.',
      registers,
      collect() {
        this.set(sources.linkConnected?.() ? 1 : 0);
      },
    });
    this.linkConnects = new Counter({ name: 'edgecore_link_connects_total', help: 'Sessions with cloudcore established.', registers });
    this.linkDisconnects = new Counter({
      name: 'edgecore_link_disconnects_total',
      help: 'Sessions with cloudcore ended, by reason: an error code (ERR_SESSION_TIMEOUT, ERR_CONNECTION …), the GOAWAY code received, or closed.',
      labelNames: ['reason'],
      registers,
    });

    new Gauge({
      name: 'edgecore_upstream_outbox_messages',
      help: 'Reports in the durable upstream outbox, waiting to be sent or ACKed by cloudcore.',
      registers,
      collect() {
        this.set(sources.upstreamOutbox?.().messages ?? 0);
      },
    });
    new Gauge({
      name: 'edgecore_upstream_outbox_oldest_age_seconds',
      help: 'Age of the oldest report in the upstream outbox; 0 when it is empty.',
      registers,
      collect() {
        const oldest = sources.upstreamOutbox?.().oldestCreatedMs;
        this.set(oldest === undefined ? 0 : Math.max(0, (Date.now() - oldest) / 1000));
      },
    });

    this.storeCommitDuration = new Histogram({
      name: 'edgecore_store_commit_duration_seconds',
      help: 'Duration of each SQLite transaction committing a batch of objects from the cloud.',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers,
    });
    new Gauge({
      name: 'edgecore_store_objects',
      help: 'Objects in the edge store, by type.',
      labelNames: ['type'],
      registers,
      collect() {
        this.reset();
        for (const type of STORE_TYPES) this.set({ type }, 0);
        for (const row of sources.storeObjects?.() ?? []) this.set({ type: row.type }, row.objects);
      },
    });

    new Gauge({
      name: 'edgecore_pods',
      help: 'Pods edged manages on this node, by phase.',
      labelNames: ['phase'],
      registers,
      collect() {
        const counts = sources.pods?.();
        for (const phase of POD_PHASES) this.set({ phase }, counts?.[phase] ?? 0);
      },
    });
    this.containerRestarts = new Counter({ name: 'edgecore_container_restarts_total', help: 'Containers edged started again after they had run.', registers });

    this.criDuration = new Histogram({
      name: 'edgecore_cri_request_duration_seconds',
      help: 'Duration of CRI calls to the container runtime, by method (failed calls included).',
      labelNames: ['method'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers,
    });
    this.criErrors = new Counter({
      name: 'edgecore_cri_request_errors_total',
      help: 'CRI calls that failed, by method and gRPC status (UNAVAILABLE, NOT_FOUND, DEADLINE_EXCEEDED …).',
      labelNames: ['method', 'code'],
      registers,
    });

    const received = new Counter({
      name: 'edgecore_mqtt_messages_received_total',
      help: 'MQTT messages EventBus received on the device and node topics, by broker (internal = embedded, external = mosquitto).',
      labelNames: ['broker'],
      registers,
    });
    const published = new Counter({
      name: 'edgecore_mqtt_messages_published_total',
      help: 'MQTT messages EventBus published, by broker (internal = embedded, external = mosquitto).',
      labelNames: ['broker'],
      registers,
    });
    this.mqttReceived = { internal: received.labels('internal'), external: received.labels('external') };
    this.mqttPublished = { internal: published.labels('internal'), external: published.labels('external') };

    const reports = new Counter({
      name: 'edgecore_device_reports_total',
      help: 'Updates from mappers (twin, state, attributes) DeviceTwin handled, by result: ok, or rejected (bad payload, unknown device or property).',
      labelNames: ['result'],
      registers,
    });
    this.deviceReports = { ok: reports.labels('ok'), rejected: reports.labels('rejected') };
    const twins = new Counter({
      name: 'edgecore_twin_updates_total',
      help: 'Twin properties changed, by source: cloud (a desired value from the Device) or edge (a reported value from a mapper).',
      labelNames: ['source'],
      registers,
    });
    this.twinUpdates = { cloud: twins.labels('cloud'), edge: twins.labels('edge') };
    const kubelet = new Counter({
      name: 'edgecore_kubelet_requests_total',
      help: 'Requests on the kubelet API relayed by cloudcore (kubectl logs/exec/attach/port-forward, node proxy, metrics-server), by endpoint.',
      labelNames: ['endpoint'],
      registers,
    });
    this.kubeletRequests = Object.fromEntries(KUBELET_ENDPOINTS.map((e) => [e, kubelet.labels(e)])) as Record<KubeletEndpoint, Counter.Internal>;
    new Gauge({
      name: 'edgecore_kubelet_streaming_sessions',
      help: 'exec, attach and port-forward sessions open on the kubelet API (modules.edged.maxStreamingSessions at most).',
      registers,
      collect() {
        this.set(sources.streamingSessions?.() ?? 0);
      },
    });
    // Exported at 0 from the start, so rate() and alerts see a series before the first event.
    for (const child of [...Object.values(this.deviceReports), ...Object.values(this.twinUpdates), ...Object.values(this.kubeletRequests)]) child.inc(0);
  }

  /** Gives a scrape-time gauge its source (the owning module calls this when it starts). */
  provide<K extends keyof EdgeMetricSources>(name: K, source: EdgeMetricSources[K]): void {
    this.sources[name] = source;
  }

  /** A session with cloudcore ended; `reason` is one of a fixed set (error codes, GOAWAY code names, closed). */
  linkDisconnected(reason: string): void {
    this.linkDisconnects.labels(reason).inc();
  }

  /** The CRI metrics of one method, bound on first use and kept: CRI methods are a fixed set. */
  criMethod(method: string): CriMethodMetrics {
    let bound = this.criMethods.get(method);
    if (!bound) {
      const errors = new Map<string, Counter.Internal>();
      bound = {
        duration: this.criDuration.labels(method),
        error: (code) => {
          let child = errors.get(code);
          if (!child) errors.set(code, (child = this.criErrors.labels(method, code)));
          child.inc();
        },
      };
      this.criMethods.set(method, bound);
    }
    return bound;
  }
}

/** The name of a gRPC status code (14 → UNAVAILABLE); UNKNOWN for codes outside the spec. */
export function grpcStatusName(code: number): string {
  return GRPC_STATUS_NAMES[code] ?? 'UNKNOWN';
}
