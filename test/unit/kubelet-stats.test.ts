import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { ContainerStats, PodSandboxStats } from '../../edgecore/edged/cri/cri-stats.js';
import type { Container, PodSandbox } from '../../edgecore/edged/cri/cri-types.js';
import { readNodeCgroupStats, type NodeCgroupSample } from '../../edgecore/edged/kubelet-api/node-cgroup-stats.js';
import { formatResourceMetrics, goFloat, RESOURCE_METRICS_CONTENT_TYPE } from '../../edgecore/edged/kubelet-api/resource-metrics.js';
import { StatsCollector, type StatsCollectorOptions } from '../../edgecore/edged/kubelet-api/stats-collector.js';
import { cpuAndMemoryOnly, summaryJson, type Summary } from '../../edgecore/edged/kubelet-api/stats-summary.js';
import { serveStats } from '../../edgecore/edged/kubelet-api/stats.js';
import { MANAGED_LABEL } from '../../edgecore/edged/runtime-config.js';
import { tempDir } from '../support/harness.js';
import { parsePrometheusText } from '../support/prometheus-text.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/kubelet-stats/', import.meta.url));
const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');

// The summaries test/fixtures/kubelet-stats/generate/main.go.txt feeds the kubelet's own collector.
const T = 1624396278302091597n;
const T2 = 1624396279999999999n;
const FIXTURE_SUMMARY: Summary = {
  node: {
    nodeName: 'edge-1',
    startTime: 0n,
    cpu: { time: T, usageCoreNanoSeconds: 1234567890123456 },
    memory: { time: T, workingSetBytes: 4866015232 },
  },
  pods: [
    {
      podRef: { name: 'web-1', namespace: 'shop', uid: 'u1' },
      startTime: 0n,
      containers: [
        { name: 'nginx', startTime: 1624396248302091597n, cpu: { time: T2, usageCoreNanoSeconds: 10000000000 }, memory: { time: T2, workingSetBytes: 123456 } },
        {
          name: 'app',
          startTime: 1624390000n * 1_000_000_000n,
          cpu: { time: T, usageCoreNanoSeconds: 1 },
          memory: { time: T, workingSetBytes: 1048576 },
          swap: { time: T, swapUsageBytes: 4096 },
        },
      ],
      cpu: { time: T2, usageCoreNanoSeconds: 10000000001 },
      memory: { time: T2, workingSetBytes: 1172032 },
    },
    {
      podRef: { name: 'a"b\\c', namespace: 'default', uid: 'u2' },
      startTime: 0n,
      containers: [
        { name: 'c', startTime: 1000000000500000000n, cpu: { time: T, usageCoreNanoSeconds: 123456789 }, memory: { time: T, workingSetBytes: 999999 } },
      ],
      cpu: { time: T, usageCoreNanoSeconds: 123456789 },
      memory: { time: T, workingSetBytes: 999999 },
    },
  ],
};

describe('/metrics/resource text', () => {
  it('is byte for byte what the v1.33 kubelet collector writes for the same summary', () => {
    expect(formatResourceMetrics(FIXTURE_SUMMARY)).toBe(fixture('resource-metrics.txt'));
    expect(RESOURCE_METRICS_CONTENT_TYPE).toBe('text/plain; version=0.0.4; charset=utf-8; escaping=underscores');
  });

  it('is resource_scrape_error 1 alone when the summary failed, and 0 alone for an empty one', () => {
    expect(formatResourceMetrics(undefined)).toBe(fixture('resource-metrics-error.txt'));
    const empty = formatResourceMetrics({ node: { nodeName: 'n', startTime: 0n }, pods: [] });
    expect(empty).toBe(fixture('resource-metrics-error.txt').replace('resource_scrape_error 1', 'resource_scrape_error 0'));
  });

  it('leaves out a container with no CPU time yet, so metrics-server keeps the rest of its pod', () => {
    const pod = structuredClone(FIXTURE_SUMMARY.pods[0]!);
    pod.containers[0]!.cpu!.usageCoreNanoSeconds = 0;
    delete pod.containers[1]!.memory;
    const text = formatResourceMetrics({ node: FIXTURE_SUMMARY.node, pods: [pod, FIXTURE_SUMMARY.pods[1]!] });
    expect(text).not.toMatch(/^container_\w+\{container="(nginx|app)"/m);
    expect(text).toMatch(/^container_cpu_usage_seconds_total\{container="c",namespace="default",pod="a\\"b\\\\c"\} 0.123456789 1624396278302$/m);
    expect(text).toMatch(/^pod_cpu_usage_seconds_total\{namespace="shop",pod="web-1"\} 10.000000001 1624396279999$/m);
  });

  it("formats numbers as Go's strconv.FormatFloat(f, 'g', -1, 64)", () => {
    const cases: Array<[number, string]> = [
      [1, '1'],
      [0, '0'],
      [1e-9, '1e-09'],
      [0.0001, '0.0001'],
      [0.00001, '1e-05'],
      [123456, '123456'],
      [1e6, '1e+06'],
      [1048576, '1.048576e+06'],
      [10.000000001, '10.000000001'],
      [1.5, '1.5'],
      [-2.25, '-2.25'],
      [1e21, '1e+21'],
      [1.7976931348623157e308, '1.7976931348623157e+308'],
      [NaN, 'NaN'],
      [Infinity, '+Inf'],
    ];
    for (const [value, text] of cases) expect(goFloat(value), String(value)).toBe(text);
  });
});

describe('/stats/summary JSON', () => {
  it('has the kubelet field names, whole-second RFC 3339 times, no absent fields and one-space indent', () => {
    const json = summaryJson({
      node: { nodeName: 'edge-1', startTime: 1700000000_123456789n, cpu: { time: T, usageNanoCores: 5, usageCoreNanoSeconds: 7 } },
      pods: [],
    });
    expect(json).toBe(
      '{\n "node": {\n  "nodeName": "edge-1",\n  "startTime": "2023-11-14T22:13:20Z",\n  "cpu": {\n   "time": "2021-06-22T21:11:18Z",\n' +
        '   "usageNanoCores": 5,\n   "usageCoreNanoSeconds": 7\n  }\n },\n "pods": []\n}',
    );
  });

  it('keeps only cpu and memory for only_cpu_and_memory', () => {
    const full: Summary = structuredClone(FIXTURE_SUMMARY);
    full.node.swap = { time: T, swapUsageBytes: 1 };
    full.pods[0]!.process_stats = { process_count: 3 };
    const trimmed = JSON.parse(summaryJson(cpuAndMemoryOnly(full)));
    expect(trimmed.node.swap).toBeUndefined();
    expect(trimmed.pods[0].process_stats).toBeUndefined();
    expect(trimmed.pods[0].containers[1]).toEqual({
      name: 'app',
      startTime: '2021-06-22T19:26:40Z',
      cpu: { time: '2021-06-22T21:11:18Z', usageCoreNanoSeconds: 1 },
      memory: { time: '2021-06-22T21:11:18Z', workingSetBytes: 1048576 },
    });
  });
});

const NODE: NodeCgroupSample = {
  cpuUsageCoreNanoSeconds: 5e12,
  memory: { usageBytes: 3e9, workingSetBytes: 2e9, availableBytes: 6e9 },
  bootTimeNs: 1_700_000_000n * 1_000_000_000n,
};
const u64 = (v: number): { value: string } => ({ value: String(v) });
const sandbox = (id: string, name: string): PodSandbox => ({
  id,
  metadata: { name, uid: `uid-${name}`, namespace: 'ns', attempt: 0 },
  state: 'SANDBOX_READY',
  created_at: '1700000100000000000',
  labels: {},
  annotations: {},
});
const container = (id: string, sandboxId: string, name: string): Container => ({
  id,
  pod_sandbox_id: sandboxId,
  metadata: { name, attempt: 0 },
  image: null,
  image_ref: '',
  state: 'CONTAINER_RUNNING',
  created_at: '1700000200000000000',
  labels: {},
  annotations: {},
});
const cStats = (id: string, cpuNs: number, timeNs: bigint, workingSet: number): ContainerStats => ({
  attributes: { id, metadata: null, labels: {}, annotations: {} },
  cpu: { timestamp: String(timeNs), usage_core_nano_seconds: u64(cpuNs), usage_nano_cores: u64(0) },
  memory: {
    timestamp: String(timeNs),
    working_set_bytes: u64(workingSet),
    available_bytes: u64(0),
    usage_bytes: u64(workingSet + 10),
    rss_bytes: u64(workingSet - 10),
    page_faults: u64(1),
    major_page_faults: u64(0),
  },
  writable_layer: null,
  swap: null,
});

function fakeCri(samples: { containers: ContainerStats[][]; sandboxStats?: () => Promise<PodSandboxStats[]> }) {
  const calls: Array<{ method: string; filter: unknown }> = [];
  let n = 0;
  const cri: StatsCollectorOptions['cri'] = {
    listPodSandbox: async (filter) => (calls.push({ method: 'listPodSandbox', filter }), [sandbox('s1', 'web'), sandbox('s2', 'db')]),
    listContainers: async (filter) => (
      calls.push({ method: 'listContainers', filter }),
      [container('c1', 's1', 'nginx'), container('c2', 's1', 'app'), container('c3', 's2', 'pg')]
    ),
    listContainerStats: async (filter) => (
      calls.push({ method: 'listContainerStats', filter }),
      samples.containers[Math.min(n++, samples.containers.length - 1)]!
    ),
    listPodSandboxStats: async () => (samples.sandboxStats ? samples.sandboxStats() : Promise.reject(new Error('cgroupPath is empty'))),
    containerStats: async () => Promise.reject(new Error('unused')),
    podSandboxStats: async () => Promise.reject(new Error('unused')),
  };
  return { cri, calls };
}

describe('StatsCollector', () => {
  it("asks the runtime for this node's running pods only and derives usageNanoCores from the previous sample", async () => {
    const s = 1_000_000_000n;
    const { cri, calls } = fakeCri({
      containers: [
        [cStats('c1', 1e9, 1_700_000_300n * s, 5000), cStats('c2', 2e9, 1_700_000_300n * s, 7000), cStats('c3', 1e6, 1_700_000_300n * s, 9000)],
        [cStats('c1', 1.5e9, 1_700_000_310n * s, 5000), cStats('c2', 2e9, 1_700_000_310n * s, 7000), cStats('c3', 1e6, 1_700_000_310n * s, 9000)],
      ],
    });
    let nowMs = 1_700_000_300_000;
    let nodeCpu = NODE.cpuUsageCoreNanoSeconds;
    const collector = new StatsCollector({ cri, nodeName: 'edge-1', now: () => nowMs, readNode: async () => ({ ...NODE, cpuUsageCoreNanoSeconds: nodeCpu }) });
    const first = await collector.summary();
    expect(calls.map((c) => c.filter)).toEqual([
      { labels: { [MANAGED_LABEL]: 'edge-1' }, state: 'SANDBOX_READY' },
      { labels: { [MANAGED_LABEL]: 'edge-1' }, state: 'CONTAINER_RUNNING' },
      { labels: { [MANAGED_LABEL]: 'edge-1' } },
    ]);
    expect(first.node.cpu).toEqual({ time: 1_700_000_300n * s, usageNanoCores: undefined, usageCoreNanoSeconds: 5e12 });
    expect(first.pods.map((p) => [p.podRef.name, p.containers.map((c) => c.name)])).toEqual([
      ['db', ['pg']],
      ['web', ['app', 'nginx']],
    ]);
    nowMs += 10_000;
    nodeCpu += 15e9;
    const second = await collector.summary();
    expect(second.node.cpu?.usageNanoCores).toBe(1.5e9);
    const web = second.pods.find((p) => p.podRef.name === 'web')!;
    expect(web.podRef).toEqual({ name: 'web', namespace: 'ns', uid: 'uid-web' });
    expect(web.startTime).toBe(1700000100000000000n);
    expect(web.containers[1]).toMatchObject({ name: 'nginx', startTime: 1700000200000000000n, cpu: { usageNanoCores: 5e7, usageCoreNanoSeconds: 1.5e9 } });
    expect(web.containers[1]!.memory).toEqual({
      time: 1_700_000_310n * s,
      availableBytes: undefined,
      usageBytes: 5010,
      workingSetBytes: 5000,
      rssBytes: 4990,
      pageFaults: 1,
      majorPageFaults: 0,
    });
    // ListPodSandboxStats failed (as containerd 1.6.20's does): the pod adds up its containers.
    expect(web.cpu).toEqual({ time: 1_700_000_310n * s, usageCoreNanoSeconds: 3.5e9, usageNanoCores: 5e7 });
    expect(web.memory).toMatchObject({ workingSetBytes: 12000 });
  });

  it('takes pod usage from ListPodSandboxStats when the runtime answers it', async () => {
    const sandboxStats: PodSandboxStats = {
      attributes: { id: 's1', metadata: null, labels: {}, annotations: {} },
      linux: {
        cpu: { timestamp: '1700000300000000000', usage_core_nano_seconds: u64(4e9), usage_nano_cores: null },
        memory: { ...cStats('x', 0, 1700000300000000000n, 20000).memory! },
        process: { timestamp: '1700000300000000000', process_count: u64(4) },
        containers: [],
      },
    };
    const { cri } = fakeCri({ containers: [[cStats('c1', 1e9, 1_700_000_300_000_000_000n, 5000)]], sandboxStats: async () => [sandboxStats] });
    const summary = await new StatsCollector({ cri, nodeName: 'edge-1', readNode: async () => NODE }).summary();
    const web = summary.pods.find((p) => p.podRef.name === 'web')!;
    expect(web.cpu?.usageCoreNanoSeconds).toBe(4e9);
    expect(web.memory?.workingSetBytes).toBe(20000);
    expect(web.process_stats).toEqual({ process_count: 4 });
    // app has no stats (not yet sampled): listed, without usage.
    expect(web.containers[0]).toEqual({ name: 'app', startTime: 1700000200000000000n });
  });
});

describe('node totals from the cgroup root', () => {
  function procRoot(dir: string): string {
    const proc = join(dir, 'proc');
    mkdirSync(proc, { recursive: true });
    writeFileSync(join(proc, 'meminfo'), 'MemTotal:       8000000 kB\nMemFree:         1000000 kB\nInactive(file):   500000 kB\n');
    writeFileSync(join(proc, 'stat'), 'cpu  1 2 3 4\nbtime 1700000000\nprocesses 5\n');
    return proc;
  }

  it('reads cgroup v1 cpuacct and memory (total_ counters of the whole tree)', async () => {
    const dir = tempDir('ke-cg1-');
    mkdirSync(join(dir, 'cg', 'cpuacct'), { recursive: true });
    mkdirSync(join(dir, 'cg', 'memory'), { recursive: true });
    writeFileSync(join(dir, 'cg', 'cpuacct', 'cpuacct.usage'), '2602297674868\n');
    writeFileSync(join(dir, 'cg', 'memory', 'memory.usage_in_bytes'), '4751962112\n');
    writeFileSync(
      join(dir, 'cg', 'memory', 'memory.stat'),
      'inactive_file 36864\ntotal_rss 1303285760\ntotal_inactive_file 1624240128\ntotal_pgfault 9\ntotal_pgmajfault 2\n',
    );
    const sample = await readNodeCgroupStats({ cgroupRoot: join(dir, 'cg'), procRoot: procRoot(dir) });
    expect(sample).toEqual({
      cpuUsageCoreNanoSeconds: 2602297674868,
      memory: {
        usageBytes: 4751962112,
        workingSetBytes: 3127721984,
        availableBytes: 8000000 * 1024 - 3127721984,
        rssBytes: 1303285760,
        pageFaults: 9,
        majorPageFaults: 2,
      },
      bootTimeNs: 1700000000n * 1_000_000_000n,
    });
  });

  it('reads cgroup v2 cpu.stat, and /proc/meminfo where the root has no memory.current', async () => {
    const dir = tempDir('ke-cg2-');
    mkdirSync(join(dir, 'cg'), { recursive: true });
    writeFileSync(join(dir, 'cg', 'cgroup.controllers'), 'cpu memory\n');
    writeFileSync(join(dir, 'cg', 'cpu.stat'), 'usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\n');
    writeFileSync(join(dir, 'cg', 'memory.stat'), 'anon 4096\ninactive_file 1024000\npgfault 7\npgmajfault 1\n');
    const sample = await readNodeCgroupStats({ cgroupRoot: join(dir, 'cg'), procRoot: procRoot(dir) });
    expect(sample.cpuUsageCoreNanoSeconds).toBe(123456000);
    expect(sample.memory).toEqual({
      usageBytes: 7000000 * 1024,
      workingSetBytes: 7000000 * 1024 - 1024000,
      availableBytes: 1024000 + 1000000 * 1024,
      rssBytes: 4096,
      pageFaults: 7,
      majorPageFaults: 1,
    });
  });
});

describe('serveStats', () => {
  async function serve(collector: Pick<StatsCollector, 'summary'>): Promise<string> {
    const server: Server = createServer((req, res) => {
      void serveStats(req, res, { collector: collector as StatsCollector }).then((handled) => {
        if (!handled) res.writeHead(404).end('not stats');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it('routes only the two kubelet paths, with their methods and content types', async () => {
    const base = await serve({ summary: async () => FIXTURE_SUMMARY });
    const metrics = await fetch(`${base}/metrics/resource`);
    expect(metrics.headers.get('content-type')).toBe(RESOURCE_METRICS_CONTENT_TYPE);
    expect(await metrics.text()).toBe(fixture('resource-metrics.txt'));
    const summary = await fetch(`${base}/stats/summary?only_cpu_and_memory=true`, { method: 'POST' });
    expect(summary.headers.get('content-type')).toBe('application/json');
    expect((await summary.json()).pods[0].podRef).toEqual({ name: 'web-1', namespace: 'shop', uid: 'u1' });
    expect((await fetch(`${base}/metrics/resource`, { method: 'POST' })).status).toBe(405);
    expect((await fetch(`${base}/metrics/resource/v1alpha1`)).status).toBe(404);
    expect((await fetch(`${base}/stats/`)).status).toBe(404);
  });

  it('answers a failed sample with resource_scrape_error 1 and a 500 summary', async () => {
    const base = await serve({ summary: async () => Promise.reject(new Error('runtime down')) });
    const metrics = await fetch(`${base}/metrics/resource`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toBe(fixture('resource-metrics-error.txt'));
    const summary = await fetch(`${base}/stats/summary`);
    expect(summary.status).toBe(500);
    expect(await summary.text()).toBe('Internal Error: runtime down');
  });
});

describe('the strict Prometheus text reader of the integration tests', () => {
  it('reads the kubelet fixture and rejects what a scraper would', () => {
    const families = parsePrometheusText(fixture('resource-metrics.txt'));
    expect(families.get('container_cpu_usage_seconds_total')?.samples[1]).toEqual({
      labels: { container: 'c', namespace: 'default', pod: 'a"b\\c' },
      value: 0.123456789,
      timestampMs: 1624396278302,
    });
    const bad = [
      'x 1',
      'x 1\n\n',
      'x{a="1",a="2"} 1\n',
      'x{a="\\t"} 1\n',
      'x one\n',
      'x 1\ny 1\nx 2\n',
      'x 1\n# TYPE x gauge\n',
      'x{a="1"} 1\nx{a="1"} 2\n',
      '1x 1\n',
    ];
    for (const text of bad) expect(() => parsePrometheusText(text), JSON.stringify(text)).toThrow();
  });
});
