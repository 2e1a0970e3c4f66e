import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../shared/logger.js';
import type { Module } from '../../shared/module-runtime.js';
import { Group, NULL_NAMESPACE, Operation, newMessage, parseEdgeResource } from '../../shared/message.js';
import { EdgeModule } from '../contracts/addresses.js';
import { parseStored, type EdgeBus, type EdgeInboxes, type ReportMessage } from '../contracts/messages.js';
import { listStoredObjects } from '../contracts/store-query.js';
import { EdgeMetrics } from '../metrics/edge-metrics.js';
import type { EdgedConfig } from './edged-config.js';
import { CrashBackoff } from './crash-backoff.js';
import { CriClient } from './cri/cri-client.js';
import type { CriRuntime } from './cri/cri-types.js';
import { EventRecorder, type KubeEvent } from './event-recorder.js';
import { ImageManager } from './image-manager.js';
import { serveContainerLogs } from './kubelet-api/container-logs.js';
import { KubeletServer } from './kubelet-api/kubelet-server.js';
import { serveStats } from './kubelet-api/stats.js';
import { StatsCollector } from './kubelet-api/stats-collector.js';
import type { CriStats } from './cri/cri-stats.js';
import { logPathResolver } from './kubelet-api/log-path-resolver.js';
import { StreamSessions } from './kubelet-api/stream-sessions.js';
import { StreamTargets } from './kubelet-api/stream-targets.js';
import { serveStreaming, serveStreamingRequest, type StreamingDeps } from './kubelet-api/streaming.js';
import { nodeFacts, type NodeFacts, type NodeFactsOptions } from './node-facts.js';
import { ObjectCache } from './object-cache.js';
import { PodManager } from './pod-manager.js';
import { PodSync } from './pod-sync.js';
import type { Pod, PodStatus } from './pod-types.js';
import { ProbeManager } from './probe-manager.js';
import { RuntimeReadiness } from './runtime-readiness.js';
import { RuntimeState } from './runtime-state.js';
import { CONFIG_SOURCE_ANNOTATION, StaticPods } from './static-pods.js';

/** How often the static pod folder is read (the kubelet's fileCheckFrequency). */
const STATIC_POD_SCAN_MS = 20_000;

export interface EdgedDeps {
  nodeName: string;
  facts: NodeFactsOptions;
  config: EdgedConfig;
  bus: EdgeBus;
  logger: Logger;
  /** Injected by tests; otherwise a CRI client on `config.runtimeEndpoint`. */
  runtime?: CriRuntime;
  metrics?: EdgeMetrics;
}

const POD_TYPES = new Set(['pod', 'configmap', 'secret']);

/**
 * The edge's pod manager (a lite kubelet): runs the pods bound to this node on a CRI runtime from the edge
 * store, so restarts, reboots and cloud outages leave them running; reports pod and node status and events
 * through EdgeHub's durable outbox.
 */
export class Edged implements Module {
  readonly name = EdgeModule.edged;
  private timer: NodeJS.Timeout | undefined;
  private lastReported = '';
  private cri: CriRuntime | undefined;
  private cache: ObjectCache | undefined;
  private pods: PodManager | undefined;
  private probes: ProbeManager | undefined;
  private runtimeVersion = '';
  private staticPods: StaticPods | undefined;
  private staticTimer: NodeJS.Timeout | undefined;
  private readonly metrics: EdgeMetrics;
  private readiness: RuntimeReadiness | undefined;
  /** The kubelet API (issue 13), reached only through streams the cloud opens on the channel. */
  private readonly kubelet: KubeletServer;
  private stats: StatsCollector | undefined;
  /** exec, attach and port-forward sessions open on this edge (each holds a runtime streaming connection). */
  private readonly sessions: StreamSessions;

  constructor(private readonly deps: EdgedDeps) {
    this.metrics = deps.metrics ?? new EdgeMetrics();
    this.sessions = new StreamSessions({ maxSessions: deps.config.maxStreamingSessions });
    this.metrics.provide('streamingSessions', () => this.sessions.active);
    const requests = this.metrics.kubeletRequests;
    this.kubelet = new KubeletServer({
      logger: deps.logger.child({ component: 'kubelet-api' }),
      onRequest: (endpoint) => requests[endpoint].inc(),
      routes: {
        containerLogs: (req, res) => this.serveContainerLogs(req, res),
        stats: (req, res) => this.serveStats(req, res),
        streaming: (req, socket, head) => this.serveStreaming(req, socket, head),
        streamingPlain: (req, res) => this.serveStreamingPlain(req, res),
      },
    });
  }

  /** A kubelet connection the cloud opened on the channel (EdgeHub's onStream); throws to refuse it. */
  acceptStream(stream: Duplex, header: Uint8Array): void {
    this.kubelet.accept(stream, header);
  }

  /** The `cri` readiness condition: undefined while the runtime answers (a verdict cached a few seconds). */
  runtimeNotReady(): Promise<string | undefined> {
    if (!this.readiness) return Promise.resolve('edged has not connected to the container runtime yet');
    return this.readiness.check();
  }

  /** `/stats/summary` and `/metrics/resource` of the kubelet API (issue 13), from CRI stats and the node's cgroups. */
  private async serveStats(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const cri = this.cri as (CriRuntime & Partial<CriStats>) | undefined;
    if (!cri?.listContainerStats || !cri.listPodSandboxStats) {
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' }).end('edged runs no container runtime with stats\n');
      return;
    }
    // One collector for the process: CPU rates need the previous sample of each counter.
    this.stats ??= new StatsCollector({ cri: cri as CriRuntime & CriStats, nodeName: this.deps.nodeName, logger: this.deps.logger });
    if (!(await serveStats(req, res, { collector: this.stats, logger: this.deps.logger })))
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('404 page not found\n');
  }

  /** `GET /containerLogs/{ns}/{pod}/{container}` of the kubelet API (issue 13), read from the CRI log files. */
  serveContainerLogs(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const resolve = logPathResolver({
      pod: (namespace, name) =>
        this.cache
          ?.podUids()
          .map((uid) => this.cache!.pod(uid)!)
          .find((p) => (p.metadata.namespace ?? 'default') === namespace && p.metadata.name === name),
      status: (uid) => this.pods?.lastStatus(uid),
      cri: { containerStatus: (id) => (this.cri ? this.cri.containerStatus(id) : Promise.reject(new Error('edged runs no container runtime'))) },
    });
    return serveContainerLogs(req, res, { resolve, logger: this.deps.logger });
  }

  /**
   * What the kubelet API's exec, attach and portForward endpoints need from edged (`serveStreaming`): its pods
   * and its runtime. Undefined until edged runs pods on a runtime.
   */
  streaming(): Pick<StreamingDeps, 'targets' | 'cri'> | undefined {
    const { cri, cache } = this;
    if (!cri || !cache) return undefined;
    return { cri, targets: new StreamTargets({ cri, pods: () => cache.podUids().map((uid) => cache.pod(uid)!) }) };
  }

  /** The node's session slots and their idle timeout (modules.edged). */
  private sessionLimits(): Pick<StreamingDeps, 'sessions' | 'idleTimeoutMs'> {
    return { sessions: this.sessions, idleTimeoutMs: this.deps.config.streamingConnectionIdleTimeoutMs };
  }

  /** The exec, attach and portForward upgrades (SPDY), relayed to the runtime's streaming server. */
  private serveStreaming(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const streaming = this.streaming();
    if (!streaming) return void socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\nedged runs no container runtime\n');
    void serveStreaming(req, socket, head, { ...streaming, ...this.sessionLimits(), logger: this.deps.logger });
  }

  /** A plain request to a streaming path: the kubelet's answer. */
  private serveStreamingPlain(req: IncomingMessage, res: ServerResponse): void {
    const streaming = this.streaming();
    if (!streaming) return void res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' }).end('edged runs no container runtime\n');
    void serveStreamingRequest(req, res, { ...streaming, ...this.sessionLimits(), logger: this.deps.logger });
  }

  async start(): Promise<void> {
    this.deps.bus.register(this.name, (m) => this.handle(m));
    if (this.deps.config.runtimeEndpoint || this.deps.runtime) await this.startPods();
    await this.reportNodeStatus(true);
    this.timer = setInterval(() => void this.reportNodeStatus(false), this.deps.config.nodeStatusCheckMs).unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    clearInterval(this.staticTimer);
    this.kubelet.close();
    this.sessions.destroyAll();
    this.pods?.stop();
    this.probes?.stopAll();
    if (this.deps.bus.has(this.name)) this.deps.bus.unregister(this.name);
    // Containers keep running: edged coming back adopts them (edge autonomy), it does not restart them.
    if (!this.deps.runtime) this.cri?.close();
  }

  private async startPods(): Promise<void> {
    const { config, nodeName, logger } = this.deps;
    const cri = (this.cri = this.deps.runtime ?? new CriClient({ endpoint: config.runtimeEndpoint, metrics: this.metrics }));
    this.readiness = new RuntimeReadiness({ cri, endpoint: config.runtimeEndpoint, runtimeName: () => this.runtimeVersion.split(':')[0]! });
    const cache = (this.cache = new ObjectCache(nodeName));
    for (const type of POD_TYPES)
      for (const object of await listStoredObjects<unknown>(this.deps.bus, this.name, type)) cache.apply(type as 'pod', keyOf(type, object), object);
    const hostIP = nodeFacts(this.deps.facts).addresses[0]!.address;
    const events = new EventRecorder(nodeName, (e) => this.sendEvent(e));
    const probes = (this.probes = new ProbeManager({
      cri,
      onChange: (uid) => this.pods?.trigger(uid),
      onFailure: (pod, container, kind, message) =>
        events.pod(pod, container, 'Warning', 'Unhealthy', `${kind[0]!.toUpperCase()}${kind.slice(1)} probe failed: ${message}`),
      logger,
    }));
    const runtime = new RuntimeState(cri, nodeName);
    const sync = new PodSync({
      cri,
      runtime,
      source: cache,
      images: new ImageManager(cri, logger),
      probes,
      events,
      backoff: new CrashBackoff(config.crashLoopBackOffMs, config.crashLoopBackOffMaxMs),
      paths: { podsRoot: config.rootDirectory, logRoot: config.podLogsDirectory, cgroupParent: config.cgroupParent },
      hostIP,
      logger,
      metrics: this.metrics,
    });
    this.pods = new PodManager({
      runtime,
      sync,
      probes,
      hostIP,
      logger,
      pod: (uid) => cache.pod(uid),
      podUids: () => cache.podUids(),
      report: (pod, status) => this.reportPodStatus(pod, status),
      confirmDeletion: (pod) => this.send(Operation.delete, `${pod.metadata.namespace ?? 'default'}/pod/${pod.metadata.name}`, { uid: pod.metadata.uid }),
      relistIntervalMs: config.relistIntervalMs,
      resyncIntervalMs: 60_000,
      onRuntimeChange: () => void this.reportNodeStatus(false),
    });
    const pods = this.pods;
    this.metrics.provide('pods', () => pods.phaseCounts());
    this.staticPods = new StaticPods({ path: config.staticPodPath, nodeName, logger });
    this.scanStaticPods(true);
    this.staticTimer = setInterval(() => this.scanStaticPods(false), STATIC_POD_SCAN_MS).unref();
    await this.pods.start();
    this.runtimeVersion = await cri.version().then(
      (v) => `${v.runtime_name}://${v.runtime_version}`,
      () => '',
    );
    logger.info({ runtime: config.runtimeEndpoint, runtimeVersion: this.runtimeVersion, pods: cache.podUids().length }, 'edged running pods');
  }

  private async handle(message: EdgeInboxes['edged']): Promise<void> {
    // After a (re)connection the cloud may have marked the node Unknown: report in full.
    if (message.operation === Operation.connect) {
      if (message.content === 'cloud_connected') await this.reportNodeStatus(true);
      return;
    }
    if (!this.cache) return;
    let type: string;
    try {
      type = parseEdgeResource(message.resource).type;
    } catch {
      return;
    }
    if (!POD_TYPES.has(type)) return;
    const uids = this.cache.apply(type as 'pod', message.resource, message.content === null ? null : parseStored(message.content));
    for (const uid of uids) this.pods?.trigger(uid);
  }

  /** Runs what the manifest folder defines and keeps a mirror of each in the API (sent again at every start). */
  private scanStaticPods(initial: boolean): void {
    const before = new Map(this.staticPods!.current());
    const now = this.staticPods!.scan();
    const changed = this.cache!.setStatic(now);
    for (const uid of changed) {
      const pod = now.get(uid) ?? before.get(uid)!;
      const resource = `${pod.metadata.namespace ?? 'default'}/pod/${pod.metadata.name}`;
      if (now.has(uid)) this.send(Operation.insert, resource, StaticPods.mirrorOf(pod));
      else if (![...now.values()].some((p) => p.metadata.name === pod.metadata.name)) this.send(Operation.delete, resource, { mirror: true });
      if (!initial) this.pods?.trigger(uid);
    }
  }

  /** A static pod's status goes to its mirror pod, whose uid the API server chose: no uid check then. */
  private reportPodStatus(pod: Pod, status: PodStatus): void {
    const isStatic = pod.metadata.annotations?.[CONFIG_SOURCE_ANNOTATION] === 'file';
    this.send(
      Operation.update,
      `${pod.metadata.namespace ?? 'default'}/podstatus/${pod.metadata.name}`,
      isStatic ? { status } : { uid: pod.metadata.uid, status },
    );
  }

  private sendEvent(event: KubeEvent): void {
    this.send(Operation.insert, `${event.metadata.namespace}/event/${event.metadata.name}`, event);
  }

  private send(operation: ReportMessage['operation'], resource: string, content: unknown): void {
    const report: ReportMessage = newMessage({ source: this.name, group: Group.resource, operation, resource, content });
    void this.deps.bus.send(EdgeModule.edgeHub, report).catch((err: unknown) => this.deps.logger.warn({ err, resource }, 'report not queued for the cloud'));
  }

  private async reportNodeStatus(force: boolean): Promise<void> {
    const facts: NodeFacts & { images?: unknown[]; runtime?: { ready: boolean; message?: string } } = nodeFacts(this.deps.facts);
    if (this.cri && this.pods) {
      facts.runtime = this.pods.runtimeUp ? { ready: true } : { ready: false, message: this.pods.runtimeMessage.slice(0, 300) };
      facts.nodeInfo.containerRuntimeVersion = this.runtimeVersion;
      const images = await this.cri.listImages().catch(() => []);
      facts.images = images.map((i) => ({ names: [...i.repo_digests, ...i.repo_tags], sizeBytes: Number(i.size) }));
    }
    const digest = JSON.stringify(facts);
    if (!force && digest === this.lastReported) return;
    this.lastReported = digest;
    this.send(Operation.update, `${NULL_NAMESPACE}/nodestatus/${this.deps.nodeName}`, facts);
  }
}

function keyOf(type: string, object: unknown): string {
  const m = (object as { metadata: { namespace?: string; name: string } }).metadata;
  return `${m.namespace ?? 'default'}/${type}/${m.name}`;
}
