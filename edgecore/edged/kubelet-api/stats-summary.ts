// The kubelet's stats Summary (k8s.io/kubelet pkg/apis/stats/v1alpha1/types.go), the part edged measures.
// Field names and order are the Go struct's JSON ones; a field left undefined is one the kubelet omits
// (`omitempty` pointers). Every `time` is a bigint of nanoseconds since the epoch, exact as CRI gives it: the
// JSON shows it in whole seconds (metav1.Time), /metrics/resource in milliseconds.

export interface CpuStats {
  time: bigint;
  usageNanoCores?: number;
  usageCoreNanoSeconds?: number;
}

export interface MemoryStats {
  time: bigint;
  availableBytes?: number;
  usageBytes?: number;
  workingSetBytes?: number;
  rssBytes?: number;
  pageFaults?: number;
  majorPageFaults?: number;
}

export interface SwapStats {
  time: bigint;
  swapAvailableBytes?: number;
  swapUsageBytes?: number;
}

export interface FsStats {
  time: bigint;
  usedBytes?: number;
  inodesUsed?: number;
}

export interface ContainerStatsSummary {
  name: string;
  startTime: bigint;
  cpu?: CpuStats;
  memory?: MemoryStats;
  rootfs?: FsStats;
  swap?: SwapStats;
}

export interface PodStatsSummary {
  podRef: { name: string; namespace: string; uid: string };
  startTime: bigint;
  containers: ContainerStatsSummary[];
  cpu?: CpuStats;
  memory?: MemoryStats;
  process_stats?: { process_count?: number };
  swap?: SwapStats;
}

export interface NodeStatsSummary {
  nodeName: string;
  startTime: bigint;
  cpu?: CpuStats;
  memory?: MemoryStats;
  swap?: SwapStats;
}

export interface Summary {
  node: NodeStatsSummary;
  pods: PodStatsSummary[];
}

/** metav1.Time's JSON: RFC 3339 in UTC, whole seconds (`2021-06-22T21:11:18Z`); the zero time is null. */
export function metaTime(ns: bigint): string | null {
  if (ns <= 0n) return null;
  return new Date(Number(ns / 1_000_000_000n) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The summary as the kubelet's /stats/summary writes it: go-restful's json.MarshalIndent(v, "", " "). */
export function summaryJson(summary: Summary): string {
  return JSON.stringify(summary, (_key, value: unknown) => (typeof value === 'bigint' ? metaTime(value) : value), 1);
}

/** Only CPU and memory, as `?only_cpu_and_memory=true` (the kubelet's GetCPUAndMemoryStats). */
export function cpuAndMemoryOnly(summary: Summary): Summary {
  const { nodeName, startTime, cpu, memory } = summary.node;
  return {
    node: { nodeName, startTime, cpu, memory },
    pods: summary.pods.map((p) => ({
      podRef: p.podRef,
      startTime: p.startTime,
      containers: p.containers.map((c) => ({ name: c.name, startTime: c.startTime, cpu: c.cpu, memory: c.memory })),
      cpu: p.cpu,
      memory: p.memory,
    })),
  };
}
