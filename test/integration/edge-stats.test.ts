import { mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { PodSandboxConfig } from '../../edgecore/edged/cri/cri-types.js';
import { StatsCollector } from '../../edgecore/edged/kubelet-api/stats-collector.js';
import { RESOURCE_METRICS_CONTENT_TYPE } from '../../edgecore/edged/kubelet-api/resource-metrics.js';
import { serveStats } from '../../edgecore/edged/kubelet-api/stats.js';
import { CONTAINER_NAME_LABEL, MANAGED_LABEL, POD_NAME_LABEL, POD_NAMESPACE_LABEL, POD_UID_LABEL } from '../../edgecore/edged/runtime-config.js';
import { useContainerd } from '../support/containerd.js';
import { eventually } from '../support/harness.js';
import { parsePrometheusText, type PromFamily } from '../support/prometheus-text.js';

const BUSYBOX = 'localhost/lite/busybox:latest';
const NODE = 'edge-stats';
const containerd = useContainerd();

// What the JSON carries, as far as these tests read it.
interface Usage {
  time: string;
  usageNanoCores?: number;
  usageCoreNanoSeconds?: number;
  workingSetBytes?: number;
  availableBytes?: number;
}
interface SummaryJson {
  node: { nodeName: string; startTime: string; cpu: Usage; memory: Usage };
  pods: Array<{
    podRef: { name: string; namespace: string; uid: string };
    startTime: string;
    containers: Array<{ name: string; startTime: string; cpu?: Usage; memory?: Usage }>;
    cpu?: Usage;
    memory?: Usage;
    process_stats?: { process_count: number };
  }>;
}

/** A host-network pod labelled as edged labels this node's pods, removed when the test ends. */
async function runPod(name: string, containers: Record<string, string>, options: { cgroupParent?: string; node?: string } = {}) {
  const { client, workdir, cgroupParent } = containerd();
  const uid = `uid-${name}-${Date.now()}`;
  const labels = { [POD_NAME_LABEL]: name, [POD_NAMESPACE_LABEL]: 'stats', [POD_UID_LABEL]: uid, [MANAGED_LABEL]: options.node ?? NODE };
  const logDirectory = join(workdir, 'pods', uid);
  mkdirSync(logDirectory, { recursive: true });
  const sandbox: PodSandboxConfig = {
    metadata: { name, uid, namespace: 'stats', attempt: 0 },
    log_directory: logDirectory,
    labels,
    linux: {
      cgroup_parent: options.cgroupParent ?? `${cgroupParent}/pod${uid}`,
      security_context: { namespace_options: { network: 'NODE', pid: 'POD', ipc: 'POD' } },
    },
  };
  const sandboxId = await client.runPodSandbox(sandbox);
  onTestFinished(async () => {
    await client.stopPodSandbox(sandboxId).catch(() => undefined);
    await client.removePodSandbox(sandboxId).catch(() => undefined);
  });
  for (const [container, script] of Object.entries(containers)) {
    const id = await client.createContainer(
      sandboxId,
      {
        metadata: { name: container, attempt: 0 },
        image: { image: BUSYBOX },
        command: ['sh', '-c', script],
        labels: { ...labels, [CONTAINER_NAME_LABEL]: container },
        log_path: `${container}/0.log`,
      },
      sandbox,
    );
    await client.startContainer(id);
  }
  return { uid, sandboxId };
}

async function statsServer(): Promise<string> {
  const collector = new StatsCollector({ cri: containerd().client, nodeName: NODE });
  const server = createServer((req, res) => {
    void serveStats(req, res, { collector }).then((handled) => {
      if (!handled) res.writeHead(404).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function summary(base: string): Promise<SummaryJson> {
  const res = await fetch(`${base}/stats/summary`);
  expect(res.status).toBe(200);
  return (await res.json()) as SummaryJson;
}

// Burns CPU for a few seconds, then holds ~8 MB of its own memory (a shell variable) and sleeps.
const BURNER = 'timeout 4 sh -c "while :; do :; done"; x=$(head -c 8000000 /dev/zero | tr "\\0" a); echo ready; exec sleep 3600 & wait';
const SLEEPER = 'exec sleep 3600';

const series = (fam: PromFamily | undefined, labels: Record<string, string>) =>
  fam?.samples.filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v)) ?? [];

describe('kubelet stats from a real containerd', () => {
  it('serves plausible node, pod and container usage in /stats/summary and valid /metrics/resource', async () => {
    const { uid } = await runPod('burner', { burn: BURNER, idle: SLEEPER });
    await runPod('other-node', { idle: SLEEPER }, { node: 'edge-elsewhere' });
    const base = await statsServer();
    const startedMs = Date.now();

    // Two scrapes at least (a rate needs a previous sample); the burner has used CPU and memory by then.
    const s = await eventually(
      async () => {
        const s = await summary(base);
        const pod = s.pods.find((p) => p.podRef.name === 'burner');
        const burn = pod?.containers.find((c) => c.name === 'burn');
        expect(burn?.cpu?.usageCoreNanoSeconds ?? 0).toBeGreaterThan(3e8);
        expect(burn?.memory?.workingSetBytes ?? 0).toBeGreaterThan(6e6);
        expect(s.node.cpu.usageNanoCores ?? 0).toBeGreaterThan(0);
        expect(pod?.cpu?.usageNanoCores).toBeDefined();
        return s;
      },
      60_000,
      500,
    );
    expect(s.node.nodeName).toBe(NODE);
    expect(Date.parse(s.node.startTime)).toBeLessThan(startedMs);
    expect(s.node.cpu.usageCoreNanoSeconds).toBeGreaterThan(0);
    expect(s.node.memory.workingSetBytes).toBeGreaterThan(8e6);
    expect(s.node.memory.availableBytes).toBeGreaterThan(0);
    expect(s.pods.map((p) => p.podRef.name)).toEqual(['burner']);
    const pod = s.pods[0]!;
    expect(pod.podRef).toEqual({ name: 'burner', namespace: 'stats', uid });
    expect(pod.containers.map((c) => c.name)).toEqual(['burn', 'idle']);
    // ListPodSandboxStats worked (every sandbox has a cgroup parent): pod usage is the pod cgroup's.
    expect(pod.process_stats?.process_count).toBeGreaterThanOrEqual(3);
    expect(pod.cpu!.usageCoreNanoSeconds!).toBeGreaterThanOrEqual(pod.containers[0]!.cpu!.usageCoreNanoSeconds!);
    expect(pod.memory!.workingSetBytes!).toBeGreaterThan(6e6);
    expect(Math.abs(Date.parse(pod.containers[0]!.startTime) - startedMs)).toBeLessThan(120_000);

    const res = await fetch(`${base}/metrics/resource`);
    expect(res.headers.get('content-type')).toBe(RESOURCE_METRICS_CONTENT_TYPE);
    const families = parsePrometheusText(await res.text());
    const burn = { container: 'burn', namespace: 'stats', pod: 'burner' };
    expect(series(families.get('container_cpu_usage_seconds_total'), burn)[0]!.value).toBeGreaterThan(0.3);
    expect(series(families.get('container_memory_working_set_bytes'), burn)[0]!.value).toBeGreaterThan(6e6);
    const start = series(families.get('container_start_time_seconds'), burn)[0]!;
    expect(Math.abs(start.value * 1000 - startedMs)).toBeLessThan(120_000);
    expect(series(families.get('pod_cpu_usage_seconds_total'), { namespace: 'stats', pod: 'burner' })).toHaveLength(1);
    expect(families.get('node_cpu_usage_seconds_total')!.samples[0]!.value).toBeGreaterThan(0);
    const nodeMemory = families.get('node_memory_working_set_bytes')!.samples[0]!;
    expect(nodeMemory.value).toBeGreaterThan(8e6);
    expect(Math.abs(nodeMemory.timestampMs! - Date.now())).toBeLessThan(120_000);
    expect(families.get('resource_scrape_error')!.samples).toEqual([{ labels: {}, value: 0 }]);
    expect(families.get('container_cpu_usage_seconds_total')!.type).toBe('counter');
    expect(families.get('container_cpu_usage_seconds_total')!.help).toMatch(/^\[STABLE\] /);
    expect([...families.values()].flatMap((f) => f.samples).some((x) => x.labels.pod === 'other-node')).toBe(false);
  });

  it('still gives pod usage when a sandbox without a cgroup parent makes ListPodSandboxStats fail', async () => {
    await runPod('no-parent', { idle: SLEEPER }, { cgroupParent: '' });
    const err = await containerd()
      .client.listPodSandboxStats({ labels: { [MANAGED_LABEL]: NODE } })
      .then(
        () => undefined,
        (e: unknown) => e as Error,
      );
    // containerd 1.6.20 fails the whole call (docs/kubeedge-stream-facts.md §5.3); a newer one may not.
    const base = await statsServer();
    const s = await eventually(
      async () => {
        const s = await summary(base);
        const pod = s.pods.find((p) => p.podRef.name === 'no-parent');
        expect(pod?.cpu?.usageCoreNanoSeconds ?? 0).toBeGreaterThan(0);
        expect(pod?.memory?.workingSetBytes ?? 0).toBeGreaterThan(0);
        return s;
      },
      30_000,
      250,
    );
    const pod = s.pods.find((p) => p.podRef.name === 'no-parent')!;
    if (err) expect(pod.process_stats).toBeUndefined();
    expect(pod.containers[0]!.memory!.workingSetBytes).toBe(pod.memory!.workingSetBytes);
  });
});
