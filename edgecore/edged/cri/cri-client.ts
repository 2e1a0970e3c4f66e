import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { ConfigError } from '../../../shared/errors.js';
import { grpcStatusName, type EdgeMetrics } from '../../metrics/edge-metrics.js';
import type {
  Container,
  ContainerConfig,
  ContainerState,
  AttachRequest,
  ContainerStatus,
  CriRuntime,
  ExecRequest,
  Image,
  PodSandbox,
  PodSandboxConfig,
  PodSandboxState,
  PodSandboxStatus,
  RuntimeCondition,
} from './cri-types.js';
import type { ContainerStats, CriStats, PodSandboxStats } from './cri-stats.js';
import { GrpcCallError, GrpcUnaryChannel, GrpcStatus } from './grpc-unary.js';
import { RuntimeError } from './runtime-error.js';

export interface CriClientOptions {
  /** `unix:///run/containerd/containerd.sock`, `unix:/path` or a bare absolute socket path. */
  endpoint: string;
  /** Deadline of each call (ExecSync and StopContainer add their own timeout to it). Default 30 s. */
  callTimeoutMs?: number;
  /** Deadline of PullImage, which downloads. Default 5 min. */
  pullTimeoutMs?: number;
  /** Where each call's duration and failure are counted; none when absent. */
  metrics?: EdgeMetrics;
}

// The kubelet's limit too: ListContainers on a busy node and ExecSync output exceed gRPC's 4 MiB default.
const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

// What each CRI method answers, decoded with the proto's field names, longs and enums as strings, defaults on.
// Only the fields read here are named; the mapped objects keep every other field the runtime sent.
interface Responses {
  Version: { runtime_name: string; runtime_version: string; runtime_api_version: string };
  Status: { status: { conditions: RuntimeCondition[] } | null };
  RunPodSandbox: { pod_sandbox_id: string };
  StopPodSandbox: object;
  RemovePodSandbox: object;
  PodSandboxStatus: { status: PodSandboxStatus | null };
  ListPodSandbox: { items: PodSandbox[] };
  CreateContainer: { container_id: string };
  StartContainer: object;
  StopContainer: object;
  RemoveContainer: object;
  ListContainers: { containers: Container[] };
  ContainerStatus: { status: ContainerStatus | null };
  ExecSync: { stdout: Uint8Array | number[]; stderr: Uint8Array | number[]; exit_code: number };
  Exec: { url: string };
  Attach: { url: string };
  PortForward: { url: string };
  ImageStatus: { image: Image | null };
  PullImage: { image_ref: string };
  ListImages: { images: Image[] };
  ListContainerStats: { stats: ContainerStats[] };
  ContainerStats: { stats: ContainerStats | null };
  ListPodSandboxStats: { stats: PodSandboxStats[] };
  PodSandboxStats: { stats: PodSandboxStats | null };
}
type Method = keyof Responses;

interface MethodTypes {
  path: string;
  request: protobuf.Type;
  response: protobuf.Type;
}
// Loaded on first use, once per process (~30 ms), not at import time.
let methods: Map<string, MethodTypes> | undefined;

function methodTypes(method: Method): MethodTypes {
  if (!methods) {
    // ../../../proto resolves to proto/ from the sources and to dist/proto/ once compiled (copy-assets.mjs).
    const file = fileURLToPath(new URL('../../../proto/cri/api.proto', import.meta.url));
    const root = new protobuf.Root().loadSync(file, { keepCase: true });
    methods = new Map();
    for (const name of ['runtime.v1.RuntimeService', 'runtime.v1.ImageService']) {
      const service = root.lookupService(name);
      for (const m of Object.values(service.methods)) {
        methods.set(m.name, { path: `/${name}/${m.name}`, request: root.lookupType(m.requestType), response: root.lookupType(m.responseType) });
      }
    }
  }
  return methods.get(method)!;
}

const TO_OBJECT: protobuf.IConversionOptions = { longs: String, enums: String, defaults: true, oneofs: true };

/** `unix:///x.sock`, `unix:/x.sock` or `/x.sock` → the socket path `/x.sock`. */
export function criSocketPath(endpoint: string): string {
  const path = endpoint.startsWith('unix://') ? endpoint.slice('unix://'.length) : endpoint.startsWith('unix:') ? endpoint.slice('unix:'.length) : endpoint;
  if (!path.startsWith('/')) {
    throw new ConfigError([`CRI endpoint "${endpoint}" is not a unix socket: use unix:///path/to/runtime.sock or an absolute path`]);
  }
  return path;
}

const asBuffer = (value: Uint8Array | number[] | undefined): Buffer =>
  Buffer.isBuffer(value) ? value : value instanceof Uint8Array ? Buffer.from(value.buffer, value.byteOffset, value.byteLength) : Buffer.from(value ?? []);

/**
 * The CRI v1 client edged runs pods with: RuntimeService and ImageService over one channel to the runtime's
 * unix socket. Every call has a deadline; every failure is a RuntimeError. After the runtime restarts, the
 * channel reconnects by itself (calls fail with ERR_UNAVAILABLE meanwhile).
 */
export class CriClient implements CriRuntime, CriStats {
  /** The runtime's socket. */
  readonly socketPath: string;
  private readonly channel: GrpcUnaryChannel;
  private readonly callTimeoutMs: number;
  private readonly pullTimeoutMs: number;
  private readonly metrics: EdgeMetrics | undefined;

  constructor(options: CriClientOptions) {
    this.socketPath = criSocketPath(options.endpoint);
    this.callTimeoutMs = options.callTimeoutMs ?? 30_000;
    this.pullTimeoutMs = options.pullTimeoutMs ?? 300_000;
    this.metrics = options.metrics;
    this.channel = new GrpcUnaryChannel(this.socketPath, MAX_MESSAGE_BYTES);
  }

  async version(): Promise<Responses['Version']> {
    const { runtime_name, runtime_version, runtime_api_version } = await this.call('Version', { version: 'v1' });
    return { runtime_name, runtime_version, runtime_api_version };
  }

  async status(): Promise<RuntimeCondition[]> {
    const res = await this.call('Status', { verbose: false });
    return res.status?.conditions ?? [];
  }

  async runPodSandbox(config: PodSandboxConfig): Promise<string> {
    const res = await this.call('RunPodSandbox', { config, runtime_handler: '' }, { subject: config.metadata.name });
    return res.pod_sandbox_id;
  }

  async stopPodSandbox(id: string): Promise<void> {
    await this.call('StopPodSandbox', { pod_sandbox_id: id }, { subject: id });
  }

  async removePodSandbox(id: string): Promise<void> {
    await this.call('RemovePodSandbox', { pod_sandbox_id: id }, { subject: id });
  }

  async podSandboxStatus(id: string): Promise<PodSandboxStatus> {
    const res = await this.call('PodSandboxStatus', { pod_sandbox_id: id, verbose: false }, { subject: id });
    if (!res.status) throw new RuntimeError('PodSandboxStatus', GrpcStatus.UNKNOWN, 'runtime answered without a status', { subject: id });
    return res.status;
  }

  async listPodSandbox(filter: { labels?: Record<string, string>; state?: PodSandboxState } = {}): Promise<PodSandbox[]> {
    // An absent `state` must stay absent: a present one with the default enum would filter on SANDBOX_READY.
    const res = await this.call('ListPodSandbox', {
      filter: { label_selector: filter.labels ?? {}, ...(filter.state ? { state: { state: filter.state } } : {}) },
    });
    return res.items;
  }

  async createContainer(sandboxId: string, config: ContainerConfig, sandboxConfig: PodSandboxConfig): Promise<string> {
    const request = { pod_sandbox_id: sandboxId, config, sandbox_config: sandboxConfig };
    const res = await this.call('CreateContainer', request, { subject: `${config.metadata.name} (image ${config.image.image})` });
    return res.container_id;
  }

  async startContainer(id: string): Promise<void> {
    await this.call('StartContainer', { container_id: id }, { subject: id });
  }

  async stopContainer(id: string, timeoutSeconds: number): Promise<void> {
    const timeoutMs = timeoutSeconds * 1000 + this.callTimeoutMs;
    await this.call('StopContainer', { container_id: id, timeout: timeoutSeconds }, { subject: id, timeoutMs });
  }

  async removeContainer(id: string): Promise<void> {
    await this.call('RemoveContainer', { container_id: id }, { subject: id });
  }

  async listContainers(filter: { podSandboxId?: string; labels?: Record<string, string>; state?: ContainerState } = {}): Promise<Container[]> {
    const res = await this.call('ListContainers', {
      filter: {
        pod_sandbox_id: filter.podSandboxId ?? '',
        label_selector: filter.labels ?? {},
        ...(filter.state ? { state: { state: filter.state } } : {}),
      },
    });
    return res.containers;
  }

  async containerStatus(id: string): Promise<ContainerStatus> {
    const res = await this.call('ContainerStatus', { container_id: id, verbose: false }, { subject: id });
    if (!res.status) throw new RuntimeError('ContainerStatus', GrpcStatus.UNKNOWN, 'runtime answered without a status', { subject: id });
    return res.status;
  }

  async execSync(id: string, cmd: string[], timeoutSeconds: number): Promise<{ stdout: Buffer; stderr: Buffer; exit_code: number }> {
    const timeoutMs = timeoutSeconds * 1000 + this.callTimeoutMs;
    const res = await this.call('ExecSync', { container_id: id, cmd, timeout: timeoutSeconds }, { subject: id, timeoutMs });
    return { stdout: asBuffer(res.stdout), stderr: asBuffer(res.stderr), exit_code: res.exit_code };
  }

  // Exec, Attach and PortForward only prepare a session: each answers a one-time URL on the runtime's streaming
  // server (containerd: http://127.0.0.1:<random port>/exec/<token>, valid for one use within a minute).
  async exec(request: ExecRequest): Promise<string> {
    const res = await this.call('Exec', request, { subject: request.container_id });
    return res.url;
  }

  async attach(request: AttachRequest): Promise<string> {
    const res = await this.call('Attach', request, { subject: request.container_id });
    return res.url;
  }

  async portForward(sandboxId: string, ports: readonly number[]): Promise<string> {
    const res = await this.call('PortForward', { pod_sandbox_id: sandboxId, port: [...ports] }, { subject: sandboxId });
    return res.url;
  }

  async imageStatus(image: string): Promise<Image | null> {
    const res = await this.call('ImageStatus', { image: { image }, verbose: false }, { subject: image });
    return res.image;
  }

  async pullImage(image: string, auth?: { username?: string; password?: string; auth?: string; server_address?: string }): Promise<string> {
    const request = { image: { image }, ...(auth ? { auth } : {}) };
    const res = await this.call('PullImage', request, { subject: image, timeoutMs: this.pullTimeoutMs });
    return res.image_ref;
  }

  async listImages(): Promise<Image[]> {
    const res = await this.call('ListImages', {});
    return res.images;
  }

  async listContainerStats(filter: { id?: string; podSandboxId?: string; labels?: Record<string, string> } = {}): Promise<ContainerStats[]> {
    const res = await this.call('ListContainerStats', {
      filter: { id: filter.id ?? '', pod_sandbox_id: filter.podSandboxId ?? '', label_selector: filter.labels ?? {} },
    });
    return res.stats;
  }

  async containerStats(id: string): Promise<ContainerStats> {
    const res = await this.call('ContainerStats', { container_id: id }, { subject: id });
    if (!res.stats) throw new RuntimeError('ContainerStats', GrpcStatus.UNKNOWN, 'runtime answered without stats', { subject: id });
    return res.stats;
  }

  // containerd 1.6.20 fails the whole call when any sandbox it lists has no cgroup parent ("cgroupPath is
  // empty"): callers narrow it to their own sandboxes with `labels` and fall back to container stats.
  async listPodSandboxStats(filter: { id?: string; labels?: Record<string, string> } = {}): Promise<PodSandboxStats[]> {
    const res = await this.call('ListPodSandboxStats', { filter: { id: filter.id ?? '', label_selector: filter.labels ?? {} } });
    return res.stats;
  }

  async podSandboxStats(id: string): Promise<PodSandboxStats> {
    const res = await this.call('PodSandboxStats', { pod_sandbox_id: id }, { subject: id });
    if (!res.stats) throw new RuntimeError('PodSandboxStats', GrpcStatus.UNKNOWN, 'runtime answered without stats', { subject: id });
    return res.stats;
  }

  /** Closes the channel; calls in flight fail with ERR_UNAVAILABLE. Idempotent. */
  close(): void {
    this.channel.close();
  }

  private async call<M extends Method>(method: M, request: object, options: { subject?: string; timeoutMs?: number } = {}): Promise<Responses[M]> {
    const metrics = this.metrics?.criMethod(method);
    const startedAt = performance.now();
    try {
      return await this.callOnce(method, request, options);
    } catch (err) {
      metrics?.error(grpcStatusName((err as RuntimeError).grpcCode));
      throw err;
    } finally {
      metrics?.duration.observe((performance.now() - startedAt) / 1000);
    }
  }

  private async callOnce<M extends Method>(method: M, request: object, options: { subject?: string; timeoutMs?: number }): Promise<Responses[M]> {
    const types = methodTypes(method);
    let body: Uint8Array;
    try {
      body = types.request.encode(types.request.fromObject(request)).finish();
    } catch (err) {
      throw new RuntimeError(method, GrpcStatus.INTERNAL, `request cannot be encoded: ${(err as Error).message}`, { cause: err, subject: options.subject });
    }
    try {
      const reply = await this.channel.call(types.path, body, options.timeoutMs ?? this.callTimeoutMs);
      return types.response.toObject(types.response.decode(reply), TO_OBJECT) as Responses[M];
    } catch (err) {
      const e = err as GrpcCallError;
      throw new RuntimeError(method, e.grpcCode ?? GrpcStatus.INTERNAL, e.details ?? e.message, { cause: err, subject: options.subject });
    }
  }
}
