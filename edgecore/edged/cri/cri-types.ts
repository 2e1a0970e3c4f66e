// CRI v1 (proto/cri/api.proto, k8s.io/cri-api v0.36.0) as edged uses it: the message fields keep the proto's
// snake_case names, int64 fields travel as decimal strings, enums as their names. Only the fields edged
// reads or writes are typed; the client passes the rest through.

export type NamespaceMode = 'POD' | 'CONTAINER' | 'NODE' | 'TARGET';
export type PodSandboxState = 'SANDBOX_READY' | 'SANDBOX_NOTREADY';
export type ContainerState = 'CONTAINER_CREATED' | 'CONTAINER_RUNNING' | 'CONTAINER_EXITED' | 'CONTAINER_UNKNOWN';

export interface KeyValue {
  key: string;
  value: string;
}

export interface Mount {
  container_path: string;
  host_path: string;
  readonly?: boolean;
}

export interface PortMapping {
  protocol?: 'TCP' | 'UDP' | 'SCTP';
  container_port: number;
  host_port?: number;
  host_ip?: string;
}

export interface PodSandboxMetadata {
  name: string;
  uid: string;
  namespace: string;
  attempt: number;
}

export interface LinuxContainerResources {
  cpu_period?: string;
  cpu_quota?: string;
  cpu_shares?: string;
  memory_limit_in_bytes?: string;
}

export interface PodSandboxConfig {
  metadata: PodSandboxMetadata;
  hostname?: string;
  log_directory?: string;
  dns_config?: { servers?: string[]; searches?: string[]; options?: string[] };
  port_mappings?: PortMapping[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  linux?: {
    cgroup_parent?: string;
    security_context?: { namespace_options?: { network?: NamespaceMode; pid?: NamespaceMode; ipc?: NamespaceMode }; privileged?: boolean };
    sysctls?: Record<string, string>;
    resources?: LinuxContainerResources;
  };
}

export interface ContainerConfig {
  metadata: { name: string; attempt: number };
  image: { image: string };
  command?: string[];
  args?: string[];
  working_dir?: string;
  envs?: KeyValue[];
  mounts?: Mount[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** Relative to the sandbox's log_directory. */
  log_path?: string;
  tty?: boolean;
  linux?: { resources?: LinuxContainerResources; security_context?: { privileged?: boolean; run_as_user?: { value: string } } };
}

export interface PodSandbox {
  id: string;
  metadata: PodSandboxMetadata;
  state: PodSandboxState;
  /** Nanoseconds since the epoch. */
  created_at: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

export interface PodSandboxStatus extends PodSandbox {
  network?: { ip: string } | null;
}

export interface Container {
  id: string;
  pod_sandbox_id: string;
  metadata: { name: string; attempt: number };
  image: { image: string } | null;
  image_ref: string;
  state: ContainerState;
  created_at: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

export interface ContainerStatus {
  id: string;
  metadata: { name: string; attempt: number };
  state: ContainerState;
  /** Nanoseconds since the epoch, 0 when not yet. */
  created_at: string;
  started_at: string;
  finished_at: string;
  exit_code: number;
  image: { image: string } | null;
  image_ref: string;
  /** `Completed`, `Error`, `OOMKilled`, `StartError` … */
  reason: string;
  message: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  log_path: string;
}

export interface Image {
  id: string;
  repo_tags: string[];
  repo_digests: string[];
  size: string;
}

/** CRI ExecRequest: at least one of stdin, stdout, stderr; never stderr with tty (the runtime merges them). */
export interface ExecRequest {
  container_id: string;
  cmd: string[];
  tty: boolean;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
}

/** CRI AttachRequest: `tty` must be the container's own setting (ContainerConfig.tty). */
export type AttachRequest = Omit<ExecRequest, 'cmd'>;

export interface RuntimeCondition {
  type: string;
  status: boolean;
  reason: string;
  message: string;
}

/**
 * The container runtime as edged needs it (CRI RuntimeService and ImageService on one socket). Errors are
 * `RuntimeError`s carrying the gRPC status code (5 = NOT_FOUND …) and the runtime's message.
 */
export interface CriRuntime {
  version(): Promise<{ runtime_name: string; runtime_version: string; runtime_api_version: string }>;
  status(): Promise<RuntimeCondition[]>;
  runPodSandbox(config: PodSandboxConfig): Promise<string>;
  stopPodSandbox(id: string): Promise<void>;
  removePodSandbox(id: string): Promise<void>;
  podSandboxStatus(id: string): Promise<PodSandboxStatus>;
  listPodSandbox(filter?: { labels?: Record<string, string>; state?: PodSandboxState }): Promise<PodSandbox[]>;
  createContainer(sandboxId: string, config: ContainerConfig, sandboxConfig: PodSandboxConfig): Promise<string>;
  startContainer(id: string): Promise<void>;
  /** Sends the stop signal, then SIGKILL after `timeoutSeconds`. */
  stopContainer(id: string, timeoutSeconds: number): Promise<void>;
  removeContainer(id: string): Promise<void>;
  listContainers(filter?: { podSandboxId?: string; labels?: Record<string, string>; state?: ContainerState }): Promise<Container[]>;
  containerStatus(id: string): Promise<ContainerStatus>;
  execSync(id: string, cmd: string[], timeoutSeconds: number): Promise<{ stdout: Buffer; stderr: Buffer; exit_code: number }>;
  /** The one-time URL of an exec session on the runtime's streaming server. */
  exec(request: ExecRequest): Promise<string>;
  /** The one-time URL of an attach session. */
  attach(request: AttachRequest): Promise<string>;
  /** The one-time URL of a port-forward session; `ports` may be empty (the client names them per stream). */
  portForward(sandboxId: string, ports: readonly number[]): Promise<string>;
  /** null when the image is not present (CRI answers {image: null}, not an error). */
  imageStatus(image: string): Promise<Image | null>;
  pullImage(image: string, auth?: { username?: string; password?: string; auth?: string; server_address?: string }): Promise<string>;
  listImages(): Promise<Image[]>;
  close(): void;
}
