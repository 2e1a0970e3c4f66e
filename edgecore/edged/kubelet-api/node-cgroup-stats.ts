import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';

// Node totals as the kubelet takes them from cAdvisor's root container: the root cgroup's CPU time and
// memory, working set = usage − inactive file pages (cAdvisor container/libcontainer handler, floored at 0),
// available = machine memory − working set (kubelet pkg/kubelet/stats/helper.go, the root's limit being the
// machine's capacity). Both cgroup layouts: v1 (and hybrid, as on this project's VMs) per controller
// directory, v2 unified. On v2 the root has no memory.current: usage is MemTotal − MemFree from /proc/meminfo,
// as runc's fs2 `rootStatsFromMeminfo` does.

export interface NodeCgroupSample {
  cpuUsageCoreNanoSeconds: number;
  memory: { usageBytes: number; workingSetBytes: number; availableBytes: number; rssBytes?: number; pageFaults?: number; majorPageFaults?: number };
  /** Boot time (/proc/stat btime), in ns since the epoch: the node's startTime. */
  bootTimeNs: bigint;
}

export interface NodeCgroupPaths {
  /** Where the cgroup hierarchy is mounted. Default /sys/fs/cgroup. */
  cgroupRoot: string;
  /** Default /proc. */
  procRoot: string;
}

/** `key value` lines (memory.stat, cpu.stat) or `Key: value kB` lines (/proc/meminfo) → numbers. */
export function parseKeyValues(text: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([\w()]+):?\s+(\d+)(\s+kB)?\s*$/.exec(line);
    if (m) values.set(m[1]!, Number(m[2]) * (m[3] ? 1024 : 1));
  }
  return values;
}

const exists = (path: string): Promise<boolean> =>
  access(path).then(
    () => true,
    () => false,
  );

async function readNumber(path: string): Promise<number> {
  const n = Number((await readFile(path, 'utf8')).trim());
  if (!Number.isFinite(n)) throw new Error(`${path} does not hold a number`);
  return n;
}

async function readValues(path: string): Promise<Map<string, number>> {
  return parseKeyValues(await readFile(path, 'utf8'));
}

function need(values: Map<string, number>, key: string, path: string): number {
  const v = values.get(key);
  if (v === undefined) throw new Error(`${path} has no ${key}`);
  return v;
}

/** Reads the node's CPU time and memory now. Throws when the files are missing or unreadable. */
export async function readNodeCgroupStats({ cgroupRoot, procRoot }: NodeCgroupPaths): Promise<NodeCgroupSample> {
  const meminfoPath = join(procRoot, 'meminfo');
  const [meminfo, stat] = await Promise.all([readValues(meminfoPath), readValues(join(procRoot, 'stat'))]);
  const memTotal = need(meminfo, 'MemTotal', meminfoPath);
  const bootTimeNs = BigInt(need(stat, 'btime', join(procRoot, 'stat'))) * 1_000_000_000n;

  let cpu: number;
  let usage: number;
  let memStat: Map<string, number>;
  let inactiveKey: string;
  let prefix: string;
  if (await exists(join(cgroupRoot, 'cgroup.controllers'))) {
    const cpuStatPath = join(cgroupRoot, 'cpu.stat');
    cpu = need(await readValues(cpuStatPath), 'usage_usec', cpuStatPath) * 1000;
    const current = join(cgroupRoot, 'memory.current');
    usage = (await exists(current)) ? await readNumber(current) : memTotal - need(meminfo, 'MemFree', meminfoPath);
    const statPath = join(cgroupRoot, 'memory.stat');
    memStat = (await exists(statPath)) ? await readValues(statPath) : new Map([['inactive_file', meminfo.get('Inactive(file)') ?? 0]]);
    inactiveKey = 'inactive_file';
    prefix = '';
  } else {
    cpu = await readNumber(join(cgroupRoot, 'cpuacct', 'cpuacct.usage'));
    usage = await readNumber(join(cgroupRoot, 'memory', 'memory.usage_in_bytes'));
    memStat = await readValues(join(cgroupRoot, 'memory', 'memory.stat'));
    // v1's root memory.stat: the plain keys count the root's own pages, `total_` ones the whole tree.
    inactiveKey = 'total_inactive_file';
    prefix = 'total_';
  }
  const inactive = memStat.get(inactiveKey) ?? 0;
  const workingSetBytes = Math.max(0, usage - inactive);
  return {
    cpuUsageCoreNanoSeconds: cpu,
    memory: {
      usageBytes: usage,
      workingSetBytes,
      availableBytes: Math.max(0, memTotal - workingSetBytes),
      rssBytes: memStat.get(prefix ? 'total_rss' : 'anon'),
      pageFaults: memStat.get(`${prefix}pgfault`),
      majorPageFaults: memStat.get(`${prefix}pgmajfault`),
    },
    bootTimeNs,
  };
}
