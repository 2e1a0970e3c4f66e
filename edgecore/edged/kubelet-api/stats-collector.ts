import type { Logger } from '../../../shared/logger.js';
import type { ContainerStats, CpuUsage, CriStats, MemoryUsage, PodSandboxStats } from '../cri/cri-stats.js';
import type { CriRuntime } from '../cri/cri-types.js';
import { MANAGED_LABEL } from '../runtime-config.js';
import { readNodeCgroupStats, type NodeCgroupPaths, type NodeCgroupSample } from './node-cgroup-stats.js';
import type { ContainerStatsSummary, CpuStats, MemoryStats, PodStatsSummary, Summary } from './stats-summary.js';

export interface StatsCollectorOptions {
  cri: CriStats & Pick<CriRuntime, 'listPodSandbox' | 'listContainers'>;
  nodeName: string;
  /** The sandboxes that are this node's. Default: edged's `{ [MANAGED_LABEL]: nodeName }`. */
  sandboxLabels?: Record<string, string>;
  /** Default /sys/fs/cgroup. */
  cgroupRoot?: string;
  /** Default /proc. */
  procRoot?: string;
  /** Milliseconds since the epoch, for the node's sample time. Default Date.now. */
  now?: () => number;
  /** Node totals; the default reads the cgroup root (node-cgroup-stats.ts). For tests. */
  readNode?: (paths: NodeCgroupPaths) => Promise<NodeCgroupSample>;
  logger?: Logger;
}

const num = (v: { value: string } | null | undefined): number | undefined => (v ? Number(v.value) : undefined);

/**
 * Tracks cumulative CPU counters to give a rate: containerd (and the root cgroup) only count core-nanoseconds,
 * so usageNanoCores comes from the previous sample of the same counter, as the kubelet's CRI stats provider
 * does (`getAndUpdateContainerUsageNanoCores`). Counters not seen in a scrape are forgotten.
 */
class CpuRates {
  private readonly last = new Map<string, { usage: number; timeNs: bigint }>();
  private readonly seen = new Set<string>();

  rate(key: string, usage: number, timeNs: bigint): number | undefined {
    const prev = this.last.get(key);
    this.last.set(key, { usage, timeNs });
    this.seen.add(key);
    if (!prev || timeNs <= prev.timeNs || usage < prev.usage) return undefined;
    return Math.round(((usage - prev.usage) * 1e9) / Number(timeNs - prev.timeNs));
  }

  /** Forgets the counters of containers and pods that are gone. */
  endScrape(): void {
    for (const key of this.last.keys()) if (!this.seen.has(key)) this.last.delete(key);
    this.seen.clear();
  }
}

/** Samples CRI stats and the node's cgroup into a kubelet stats Summary. */
export class StatsCollector {
  private readonly cri: StatsCollectorOptions['cri'];
  private readonly nodeName: string;
  private readonly sandboxLabels: Record<string, string>;
  private readonly paths: NodeCgroupPaths;
  private readonly now: () => number;
  private readonly readNode: (paths: NodeCgroupPaths) => Promise<NodeCgroupSample>;
  private readonly logger: Logger | undefined;
  private readonly rates = new CpuRates();

  constructor(options: StatsCollectorOptions) {
    this.cri = options.cri;
    this.nodeName = options.nodeName;
    this.sandboxLabels = options.sandboxLabels ?? { [MANAGED_LABEL]: options.nodeName };
    this.paths = { cgroupRoot: options.cgroupRoot ?? '/sys/fs/cgroup', procRoot: options.procRoot ?? '/proc' };
    this.now = options.now ?? Date.now;
    this.readNode = options.readNode ?? readNodeCgroupStats;
    this.logger = options.logger;
  }

  /** One sample of the node and its running pods. Rejects when the runtime or the cgroup root cannot be read. */
  async summary(): Promise<Summary> {
    const labels = this.sandboxLabels;
    const [sandboxes, containers, containerStats, sandboxStats, node] = await Promise.all([
      this.cri.listPodSandbox({ labels, state: 'SANDBOX_READY' }),
      this.cri.listContainers({ labels, state: 'CONTAINER_RUNNING' }),
      this.cri.listContainerStats({ labels }),
      this.podSandboxStats(),
      this.readNode(this.paths),
    ]);
    // From here on no await: concurrent scrapes cannot interleave their CPU rate updates.
    const nodeTimeNs = BigInt(this.now()) * 1_000_000n;
    const statsById = new Map(containerStats.map((s) => [s.attributes?.id ?? '', s]));
    const sandboxStatsById = new Map((sandboxStats ?? []).map((s) => [s.attributes?.id ?? '', s]));
    const pods: PodStatsSummary[] = [];
    for (const sandbox of sandboxes) {
      const own = containers.filter((c) => c.pod_sandbox_id === sandbox.id);
      const containerSummaries = own
        .map((c): ContainerStatsSummary => this.container(c.metadata.name, BigInt(c.created_at), statsById.get(c.id)))
        .sort((a, b) => byName(a.name, b.name));
      const pod: PodStatsSummary = {
        podRef: { name: sandbox.metadata.name, namespace: sandbox.metadata.namespace, uid: sandbox.metadata.uid },
        startTime: BigInt(sandbox.created_at),
        containers: containerSummaries,
      };
      this.addPodUsage(pod, sandbox.id, sandboxStatsById.get(sandbox.id));
      pods.push(pod);
    }
    pods.sort((a, b) => byName(`${a.podRef.namespace}/${a.podRef.name}`, `${b.podRef.namespace}/${b.podRef.name}`));
    const usageNanoCores = this.rates.rate('node', node.cpuUsageCoreNanoSeconds, nodeTimeNs);
    this.rates.endScrape();
    return {
      node: {
        nodeName: this.nodeName,
        startTime: node.bootTimeNs,
        cpu: { time: nodeTimeNs, usageNanoCores, usageCoreNanoSeconds: node.cpuUsageCoreNanoSeconds },
        memory: { time: nodeTimeNs, ...node.memory },
      },
      pods,
    };
  }

  // One call for every sandbox of this node (narrowed by label: containerd 1.6.20 fails the whole call when
  // any listed sandbox has no cgroup parent); undefined on failure, and pods then add up their containers.
  private async podSandboxStats(): Promise<PodSandboxStats[] | undefined> {
    try {
      return await this.cri.listPodSandboxStats({ labels: this.sandboxLabels });
    } catch (err) {
      this.logger?.debug({ err }, 'pod sandbox stats unavailable, adding up container stats');
      return undefined;
    }
  }

  private container(name: string, startTime: bigint, stats: ContainerStats | undefined): ContainerStatsSummary {
    const summary: ContainerStatsSummary = { name, startTime };
    if (!stats) return summary;
    const key = `container/${stats.attributes?.id ?? name}`;
    summary.cpu = this.cpu(key, stats.cpu);
    summary.memory = memory(stats.memory);
    const layer = stats.writable_layer;
    // containerd 1.6 leaves the writable layer's timestamp at 0: take the CPU sample's time instead.
    const layerTime = layer && layer.timestamp !== '0' ? BigInt(layer.timestamp) : summary.cpu?.time;
    if (layer && layerTime) summary.rootfs = { time: layerTime, usedBytes: num(layer.used_bytes), inodesUsed: num(layer.inodes_used) };
    const swap = stats.swap;
    if (swap) summary.swap = { time: BigInt(swap.timestamp), swapAvailableBytes: num(swap.swap_available_bytes), swapUsageBytes: num(swap.swap_usage_bytes) };
    return summary;
  }

  private cpu(key: string, usage: CpuUsage | null): CpuStats | undefined {
    if (!usage) return undefined;
    const time = BigInt(usage.timestamp);
    const usageCoreNanoSeconds = num(usage.usage_core_nano_seconds);
    const own = usageCoreNanoSeconds === undefined ? undefined : this.rates.rate(key, usageCoreNanoSeconds, time);
    // containerd's own rate is 0 on its first sample of a container: then it says nothing.
    const usageNanoCores = own ?? (num(usage.usage_nano_cores) || undefined);
    return { time, usageNanoCores, usageCoreNanoSeconds };
  }

  private addPodUsage(pod: PodStatsSummary, sandboxId: string, stats: PodSandboxStats | undefined): void {
    const linux = stats?.linux;
    if (linux?.cpu || linux?.memory) {
      pod.cpu = this.cpu(`pod/${sandboxId}`, linux.cpu);
      pod.memory = memory(linux.memory);
      const processes = num(linux.process?.process_count);
      if (processes !== undefined) pod.process_stats = { process_count: processes };
      return;
    }
    // The kubelet's fallback when it has no pod cgroup (cri_stats_provider.go `addPodCPUMemoryStats`).
    let cpu: CpuStats | undefined;
    let mem: MemoryStats | undefined;
    for (const c of pod.containers) {
      if (c.cpu) {
        cpu = {
          time: c.cpu.time > (cpu?.time ?? 0n) ? c.cpu.time : cpu!.time,
          usageCoreNanoSeconds: sum(cpu?.usageCoreNanoSeconds, c.cpu.usageCoreNanoSeconds),
        };
      }
      if (c.memory) {
        mem = {
          time: c.memory.time > (mem?.time ?? 0n) ? c.memory.time : mem!.time,
          workingSetBytes: sum(mem?.workingSetBytes, c.memory.workingSetBytes),
          usageBytes: sum(mem?.usageBytes, c.memory.usageBytes),
          rssBytes: sum(mem?.rssBytes, c.memory.rssBytes),
        };
      }
    }
    if (cpu?.usageCoreNanoSeconds !== undefined) cpu.usageNanoCores = this.rates.rate(`pod/${sandboxId}`, cpu.usageCoreNanoSeconds, cpu.time);
    pod.cpu = cpu;
    pod.memory = mem;
  }
}

const byName = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const sum = (a: number | undefined, b: number | undefined): number | undefined => (a === undefined && b === undefined ? undefined : (a ?? 0) + (b ?? 0));

function memory(usage: MemoryUsage | null): MemoryStats | undefined {
  if (!usage) return undefined;
  return {
    time: BigInt(usage.timestamp),
    // containerd reports 0 for a container without a memory limit, where the kubelet omits the field.
    availableBytes: num(usage.available_bytes) || undefined,
    usageBytes: num(usage.usage_bytes),
    workingSetBytes: num(usage.working_set_bytes),
    rssBytes: num(usage.rss_bytes),
    pageFaults: num(usage.page_faults),
    majorPageFaults: num(usage.major_page_faults),
  };
}
