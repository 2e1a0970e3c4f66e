import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { Bus } from '../shared/bus.js';
import { CoreError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { ModuleRuntime, type Module } from '../shared/module-runtime.js';
import { MonitorServer } from '../shared/monitor/monitor-server.js';
import type { CaSource } from '../shared/pki/ca-source.js';
import type { PemPair } from '../shared/pki/certificate-authority.js';
import { REPLICA_CERT_MS } from '../shared/pki/replica-peers.js';
import { softwareVersion } from '../shared/version.js';
import type { CloudCoreConfig } from './config.js';
import type { CloudBus, CloudInboxes } from './contracts/node-messages.js';
import { CloudHub, type CloudHubObserver } from './cloudhub/cloudhub.js';
import { FileCa, loadOrCreateCa } from './cloudhub/ca-files.js';
import { FileReplicaReports } from './cloudhub/replica-reports-file.js';
import { DeviceController } from './devicecontroller/devicecontroller.js';
import { Router } from './router/router.js';
import { Streams } from './streams/streams.js';
import { ReplicaRelay } from './streams/replica-relay.js';
import { KubeletTargets } from './streams/kubelet-targets.js';
import { EdgeController, type EdgeControllerDeps } from './edgecontroller/edgecontroller.js';
import { KubeReports } from './edgecontroller/kube-reports.js';
import { KubeSource } from './edgecontroller/kube-source.js';
import { OWNER_ANNOTATION, parseOwner } from './edgecontroller/node-owner.js';
import { LocalReports, LocalSource } from './edgecontroller/local-source.js';
import { createKubeClients, type KubeClients } from './kube/kube-client.js';
import { CloudMetrics } from './metrics/cloud-metrics.js';
import { ConfigMapReplicaReports } from './kube/replica-reports-configmap.js';
import { TokenBucket } from './kube/rate-limiter.js';
import { SecretCa } from './kube/secret-ca.js';

export interface CloudCoreOptions {
  config: CloudCoreConfig;
  logger: Logger;
  observer?: CloudHubObserver;
}

/**
 * Wires cloudcore's modules. With the `kubernetes` source the CA lives in a Secret shared by replicas;
 * controllers (EdgeController, DeviceController) start before CloudHub so the first edge's resync finds them.
 */
export class CloudCore {
  readonly bus: CloudBus;
  readonly cloudHub: CloudHub;
  /** When modules.router is enabled (kubernetes source). */
  readonly router: Router | undefined;
  /** When modules.streams and rebalance are enabled: kubelet streams between replicas. */
  readonly relay: ReplicaRelay | undefined;
  readonly edgeController: EdgeController | undefined;
  readonly kube: KubeClients | undefined;
  readonly metrics: CloudMetrics;
  /** /metrics, /healthz, /readyz: started first and stopped last. */
  readonly monitor: MonitorServer;
  private readonly runtime: ModuleRuntime;
  private started = false;
  private readonly shutdownDelayMs: number;

  /** Throws a ConfigError when the cluster credentials cannot be loaded. */
  constructor(options: CloudCoreOptions) {
    const { config, logger } = options;
    const ec = config.modules.edgeController;
    this.bus = new Bus<CloudInboxes>({ logger: logger.child({ module: 'bus' }) });
    this.metrics = new CloudMetrics();
    this.kube = ec.enable && ec.source === 'kubernetes' ? createKubeClients({ kubeconfig: config.kubeAPI.kubeconfig, metrics: this.metrics }) : undefined;
    this.monitor = new MonitorServer({ config: config.monitorServer, registry: this.metrics.registry, logger: logger.child({ module: 'monitor' }) });
    this.shutdownDelayMs = config.monitorServer.shutdownDelaySeconds * 1000;
    // Modules start in order and the controllers' start waits for their informers' first lists.
    this.monitor.addReadiness('informers', () => (this.started ? undefined : 'informers not synced yet (modules starting)'));
    const modules: Module[] = [this.monitor];
    // One QPS budget for every controller writing to the API server (client-go's per-client limit).
    const limiter = new TokenBucket(config.kubeAPI.qps, config.kubeAPI.burst);
    const hubLogger = logger.child({ module: 'cloudhub' });
    const ca = caSource(config, this.kube, hubLogger);
    const replicaId = replicaIdOf(config);
    // One client certificate per process for the other replicas (Router and kubelet relay), made once CloudHub has the CA.
    let replicaCert: Promise<PemPair> | undefined;
    const ownReplicaCert = (): Promise<PemPair> => (replicaCert ??= this.cloudHub.certificateAuthority.issueReplicaCert(replicaId, REPLICA_CERT_MS));
    // Controllers hand CloudHub their messages for a node directly; CloudHub reaches them over the bus.
    this.cloudHub = new CloudHub({
      config: config.modules.cloudHub,
      caSource: ca,
      bus: this.bus,
      logger: hubLogger,
      softwareVersion: softwareVersion(),
      observer: options.observer,
      metrics: this.metrics,
      replicaId,
      // Replicas of one cluster report in its namespace kubeedge; replicas of the local source beside their shared CA key.
      routerAddress: () => (this.router && this.router.port > 0 ? peerAddress(config, config.modules.router.peerAddress, this.router.port) : undefined),
      streamsAddress: () => (this.relay && this.relay.port > 0 ? peerAddress(config, config.modules.streams.replica.peerAddress, this.relay.port) : undefined),
      replicaReports: this.kube
        ? new ConfigMapReplicaReports(this.kube.core)
        : new FileReplicaReports(join(dirname(config.modules.cloudHub.caKeyFile), 'replicas.db')),
    });
    this.monitor.addReadiness('rebalance', () => this.cloudHub.notReady());
    let kubeReports: KubeReports | undefined;
    let kubeSource: KubeSource | undefined;
    /** The replica whose session holds the node, from the owner record in the Node informer (kubernetes source only). */
    let ownerOf: ((node: string) => string | undefined) | undefined;
    // Edge nodes by kubelet address, for the kubelet front (fed by KubeSource's Node informer).
    const kubeletTargets = new KubeletTargets();
    if (ec.enable) {
      const controllerLogger = logger.child({ module: 'edgecontroller' });
      const hub = config.modules.cloudHub;
      let sides: Pick<EdgeControllerDeps, 'source' | 'reports' | 'autonomy'>;
      if (this.kube) {
        const source = (kubeSource = new KubeSource({
          clients: this.kube,
          logger: controllerLogger,
          onNode: (node, deleted) => (deleted ? kubeletTargets.remove(node.metadata?.name ?? '') : kubeletTargets.upsert(node)),
        }));
        const reports = (kubeReports = new KubeReports({
          clients: this.kube,
          limiter,
          logger: controllerLogger,
          cache: source,
          leaseDurationSeconds: ec.leaseDurationSeconds,
          leaseRenewIntervalMs: ec.leaseRenewIntervalMs,
          nodeStatusRefreshMs: ec.nodeStatusRefreshMs,
          replicaId,
          onNodeLost: (node) => this.cloudHub.replaced(node),
        }));
        const autonomy = ec.podAutonomy
          ? {
              caSource: ca,
              host: ec.webhookHost || hub.advertiseAddresses[0] || '127.0.0.1',
              address: ec.webhookAddress,
              port: ec.webhookPort,
              admission: this.kube.admission,
              isEdgeNode: (n: string) => source.isEdgeNode(n),
            }
          : undefined;
        sides = { source, reports, autonomy };
        ownerOf = (node) => parseOwner(source.node(node)?.metadata?.annotations?.[OWNER_ANNOTATION])?.replica;
      } else {
        const source = new LocalSource({ path: ec.localStorePath, pollIntervalMs: ec.pollIntervalMs, logger: controllerLogger });
        sides = { source, reports: new LocalReports(source) };
      }
      this.edgeController = new EdgeController({ ...sides, bus: this.bus, nodes: this.cloudHub, logger: controllerLogger });
      modules.push(this.edgeController);
    }
    if (this.kube && config.modules.deviceController.enable) {
      modules.push(
        new DeviceController({
          clients: this.kube,
          limiter,
          bus: this.bus,
          nodes: this.cloudHub,
          logger: logger.child({ module: 'devicecontroller' }),
          mayWrite: kubeReports && ((node) => kubeReports.mayWriteDevice(node)),
        }),
      );
    }
    // The Router provides the rule objects of resyncs too; its REST listener opens after CloudHub issued the
    // serving certificate it uses (start()).
    if (this.kube && config.modules.router.enable) {
      const hub = config.modules.cloudHub;
      this.router = new Router({
        config: config.modules.router,
        clients: this.kube,
        limiter,
        bus: this.bus,
        nodes: this.cloudHub,
        hub: this.cloudHub,
        ca: () => this.cloudHub.certificateAuthority,
        replicaCert: ownReplicaCert,
        tls: { certFile: hub.serverCertFile, keyFile: hub.serverKeyFile },
        ...(kubeSource && {
          knownNode: (node: string) => kubeSource.isEdgeNode(node),
          replicas:
            hub.rebalance.enable && ownerOf
              ? {
                  self: replicaId,
                  ownerOf,
                  routerOf: (replica: string) => this.cloudHub.replica(replica)?.router,
                }
              : undefined,
        }),
        logger: logger.child({ module: 'router' }),
      });
      modules.push(this.router);
    }
    // Controllers start first, so the first edge's resync finds them.
    modules.push(this.cloudHub);
    // The kubelet API of edge nodes for kube-apiserver (issue 13): after CloudHub, whose CA and certificate it uses.
    const streams = config.modules.streams;
    // Several replicas: a stream for a node held by another live replica goes through that replica's relay.
    const relay = (this.relay =
      streams.enable && config.modules.cloudHub.rebalance.enable && ownerOf
        ? new ReplicaRelay({
            config: streams,
            hubCa: () => this.cloudHub.certificateAuthority,
            replicaCert: ownReplicaCert,
            tls: { certFile: config.modules.cloudHub.serverCertFile, keyFile: config.modules.cloudHub.serverKeyFile },
            hub: this.cloudHub,
            metrics: this.metrics,
            logger: logger.child({ module: 'streams', component: 'replica-relay' }),
          })
        : undefined);
    /** The other live replica holding the node's session (its owner record), with its relay's address if it reports one. */
    const heldElsewhere = (node: string): { replica: string; address?: string } | undefined => {
      const owner = relay && !this.cloudHub.holds(node) ? ownerOf?.(node) : undefined;
      const report = owner ? this.cloudHub.replica(owner) : undefined;
      return report && { replica: report.id, address: report.streams };
    };
    if (streams.enable) {
      const hub = config.modules.cloudHub;
      modules.push(
        new Streams({
          config: streams,
          hubCa: () => this.cloudHub.certificateAuthority,
          tls: { certFile: hub.serverCertFile, keyFile: hub.serverKeyFile },
          targets: kubeletTargets,
          isNodeConnected: (node) => this.cloudHub.holds(node) || heldElsewhere(node) !== undefined,
          openStream: (node, header) => {
            const owner = heldElsewhere(node);
            // Held here, or by no live replica: CloudHub's stream, or its ERR_UNAVAILABLE.
            if (!relay || !owner) return this.cloudHub.openStream(node, header);
            if (!owner.address) {
              const why = `node ${node} is held by replica ${owner.replica}, which reports no kubelet relay address`;
              throw Object.assign(new CoreError('ERR_UNAVAILABLE', why), { owner: owner.replica });
            }
            return relay.open(node, header, { replica: owner.replica, address: owner.address });
          },
          metrics: this.metrics,
          logger: logger.child({ module: 'streams' }),
        }),
      );
      // After CloudHub (its CA and serving certificate) and the front.
      if (relay) modules.push(relay);
    }
    this.runtime = new ModuleRuntime({ modules, logger });
  }

  async start(): Promise<void> {
    await this.runtime.start();
    await this.router?.listen();
    // The report now carries the Router's and the relay's addresses, so the other replicas can forward requests
    // and kubelet streams for our nodes.
    if (this.router || this.relay) this.cloudHub.reportChanged();
    this.started = true;
  }

  /** Readiness fails first (draining), then, after monitorServer.shutdownDelaySeconds, every module stops. */
  async stop(): Promise<void> {
    this.monitor.drain();
    if (this.shutdownDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.shutdownDelayMs));
    await this.runtime.stop();
    this.bus.close();
  }
}

/** The CA in its files, or (on a cluster) in Secret kubeedge/casecret unless files were put in place. */
export function caSource(config: CloudCoreConfig, kube: KubeClients | undefined, logger: Logger): CaSource {
  const hub = config.modules.cloudHub;
  const files = { caCertFile: hub.caCertFile, caKeyFile: hub.caKeyFile, serverCertFile: hub.serverCertFile, serverKeyFile: hub.serverKeyFile };
  if (!kube) return new FileCa(files, logger);
  return new SecretCa({ core: kube.core, logger, files: { certFile: hub.caCertFile, keyFile: hub.caKeyFile, load: () => loadOrCreateCa(files, logger) } });
}

/**
 * host:port where the other replicas reach one of this one's listeners (the Router's, the kubelet relay's): the
 * `configured` peerAddress, else the pod IP (`POD_IP`, build/kubernetes/cloudcore.yaml sets it: there every replica
 * advertises the Service), else the host of the hub address in the replica report, with the listener's port.
 */
export function peerAddress(config: CloudCoreConfig, configured: string, port: number): string {
  const { cloudHub } = config.modules;
  if (configured) return configured;
  const reported = cloudHub.rebalance.address ? cloudHub.rebalance.address.replace(/:\d+$/, '').replace(/^\[|\]$/g, '') : '';
  const host = process.env.POD_IP || reported || cloudHub.advertiseAddresses[0] || '127.0.0.1';
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * This replica's id in replica reports and node owner records: `modules.cloudHub.rebalance.replicaId`, else the
 * host name as a DNS label with the hub port (the process id when the port is chosen at start).
 */
export function replicaIdOf(config: CloudCoreConfig): string {
  const hub = config.modules.cloudHub;
  if (hub.rebalance.replicaId) return hub.rebalance.replicaId;
  const host = hostname()
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 50);
  return `${host || 'cloudcore'}-${hub.port || process.pid}`;
}
