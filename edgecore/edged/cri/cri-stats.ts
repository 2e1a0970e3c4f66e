// CRI v1 stats messages (proto/cri/api.proto `ContainerStats`, `PodSandboxStats`) as the client decodes them:
// snake_case fields, int64/uint64 as decimal strings, absent messages as null. `UInt64Value` wraps a counter so
// that "not measured" (null) differs from 0.

export interface UInt64Value {
  value: string;
}

export interface CpuUsage {
  /** Nanoseconds since the epoch. */
  timestamp: string;
  usage_core_nano_seconds: UInt64Value | null;
  /** containerd answers 0 on its first sample of a container, a rate from the second on. */
  usage_nano_cores: UInt64Value | null;
}

export interface MemoryUsage {
  timestamp: string;
  working_set_bytes: UInt64Value | null;
  available_bytes: UInt64Value | null;
  usage_bytes: UInt64Value | null;
  rss_bytes: UInt64Value | null;
  page_faults: UInt64Value | null;
  major_page_faults: UInt64Value | null;
}

export interface SwapUsage {
  timestamp: string;
  swap_available_bytes: UInt64Value | null;
  swap_usage_bytes: UInt64Value | null;
}

export interface ContainerStats {
  attributes: {
    id: string;
    metadata: { name: string; attempt: number } | null;
    labels: Record<string, string>;
    annotations: Record<string, string>;
  } | null;
  cpu: CpuUsage | null;
  memory: MemoryUsage | null;
  writable_layer: { timestamp: string; used_bytes: UInt64Value | null; inodes_used: UInt64Value | null } | null;
  swap: SwapUsage | null;
}

export interface PodSandboxStats {
  attributes: {
    id: string;
    metadata: { name: string; uid: string; namespace: string; attempt: number } | null;
    labels: Record<string, string>;
    annotations: Record<string, string>;
  } | null;
  linux: {
    cpu: CpuUsage | null;
    memory: MemoryUsage | null;
    process: { timestamp: string; process_count: UInt64Value | null } | null;
    containers: ContainerStats[];
  } | null;
}

/**
 * The runtime's resource statistics (CRI RuntimeService). Errors are `RuntimeError`s. containerd 1.6 fails
 * ListPodSandboxStats as a whole when any listed sandbox has no cgroup parent: narrow it with a filter.
 */
export interface CriStats {
  /** Stats of the running containers matching every given field. */
  listContainerStats(filter?: { id?: string; podSandboxId?: string; labels?: Record<string, string> }): Promise<ContainerStats[]>;
  containerStats(id: string): Promise<ContainerStats>;
  listPodSandboxStats(filter?: { id?: string; labels?: Record<string, string> }): Promise<PodSandboxStats[]>;
  podSandboxStats(id: string): Promise<PodSandboxStats>;
}
