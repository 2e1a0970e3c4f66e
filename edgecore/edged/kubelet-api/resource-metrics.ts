import type { ContainerStatsSummary, PodStatsSummary, Summary } from './stats-summary.js';

// The kubelet's /metrics/resource, byte for byte as a v1.33 kubelet writes it:
// - series and help texts: pkg/kubelet/metrics/collectors/resource_metrics.go, with component-base's
//   "[STABLE] "/"[ALPHA] " help prefix (k8s.io/component-base/metrics/desc.go `annotateStabilityLevel`);
// - `scrape_error` is absent: deprecated in 1.29.0, so hidden from 1.30 on (component-base metrics/registry.go
//   `shouldHide`); only `resource_scrape_error` remains;
// - layout: client_golang's Gather (families sorted by name, series by label values, labels by name) and
//   prometheus/common v0.62 expfmt text (`writeFloat` = strconv 'g' -1, timestamps in ms).
// - one deviation, in addContainer: a container with no CPU or memory yet is left out.
// metrics-server v0.8.0 reads only the node_* and container_* series (sigs.k8s.io/metrics-server
// pkg/scraper/client/resource/decode.go).

/** The kubelet's Content-Type for a scrape without an Accept header (prometheus/common expfmt.Negotiate). */
export const RESOURCE_METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8; escaping=underscores';

interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  samples: Sample[];
}

interface Sample {
  labels: ReadonlyArray<readonly [name: string, value: string]>;
  value: number;
  timestampMs?: bigint;
}

const NS_PER_MS = 1_000_000n;

function family(name: string, type: Family['type'], stability: 'STABLE' | 'ALPHA', help: string): Family {
  return { name, type, help: `[${stability}] ${help}`, samples: [] };
}

/**
 * `/metrics/resource` from a summary, or the error form (`resource_scrape_error 1` alone) when the summary
 * could not be made.
 */
export function formatResourceMetrics(summary: Summary | undefined): string {
  const f = {
    nodeCpu: family('node_cpu_usage_seconds_total', 'counter', 'STABLE', 'Cumulative cpu time consumed by the node in core-seconds'),
    nodeMemory: family('node_memory_working_set_bytes', 'gauge', 'STABLE', 'Current working set of the node in bytes'),
    nodeSwap: family('node_swap_usage_bytes', 'gauge', 'ALPHA', 'Current swap usage of the node in bytes. Reported only on non-windows systems'),
    containerStart: family('container_start_time_seconds', 'gauge', 'STABLE', 'Start time of the container since unix epoch in seconds'),
    containerCpu: family('container_cpu_usage_seconds_total', 'counter', 'STABLE', 'Cumulative cpu time consumed by the container in core-seconds'),
    containerMemory: family('container_memory_working_set_bytes', 'gauge', 'STABLE', 'Current working set of the container in bytes'),
    containerSwap: family(
      'container_swap_usage_bytes',
      'gauge',
      'ALPHA',
      'Current amount of the container swap usage in bytes. Reported only on non-windows systems',
    ),
    podCpu: family('pod_cpu_usage_seconds_total', 'counter', 'STABLE', 'Cumulative cpu time consumed by the pod in core-seconds'),
    podMemory: family('pod_memory_working_set_bytes', 'gauge', 'STABLE', 'Current working set of the pod in bytes'),
    podSwap: family('pod_swap_usage_bytes', 'gauge', 'ALPHA', 'Current amount of the pod swap usage in bytes. Reported only on non-windows systems'),
    scrapeError: family('resource_scrape_error', 'gauge', 'STABLE', '1 if there was an error while getting container metrics, 0 otherwise'),
  };
  f.scrapeError.samples.push({ labels: [], value: summary ? 0 : 1 });
  if (summary) {
    const { node } = summary;
    if (node.cpu?.usageCoreNanoSeconds !== undefined) f.nodeCpu.samples.push(at(node.cpu.time, [], node.cpu.usageCoreNanoSeconds / 1e9));
    if (node.memory?.workingSetBytes !== undefined) f.nodeMemory.samples.push(at(node.memory.time, [], node.memory.workingSetBytes));
    // The kubelet stamps node swap with the memory time (collectNodeSwapMetrics).
    if (node.swap?.swapUsageBytes !== undefined && node.memory) f.nodeSwap.samples.push(at(node.memory.time, [], node.swap.swapUsageBytes));
    for (const pod of summary.pods) {
      for (const c of pod.containers) addContainer(f, pod, c);
      const labels = [
        ['namespace', pod.podRef.namespace],
        ['pod', pod.podRef.name],
      ] as const;
      if (pod.cpu?.usageCoreNanoSeconds !== undefined) f.podCpu.samples.push(at(pod.cpu.time, labels, pod.cpu.usageCoreNanoSeconds / 1e9));
      if (pod.memory?.workingSetBytes !== undefined) f.podMemory.samples.push(at(pod.memory.time, labels, pod.memory.workingSetBytes));
      if (pod.swap?.swapUsageBytes !== undefined) f.podSwap.samples.push(at(pod.swap.time, labels, pod.swap.swapUsageBytes));
    }
  }
  return Object.values(f)
    .filter((fam) => fam.samples.length > 0)
    .sort((a, b) => compareBytes(a.name, b.name))
    .map(formatFamily)
    .join('');
}

function addContainer(
  f: Record<'containerStart' | 'containerCpu' | 'containerMemory' | 'containerSwap', Family>,
  pod: PodStatsSummary,
  c: ContainerStatsSummary,
): void {
  const labels = [
    ['container', c.name],
    ['namespace', pod.podRef.namespace],
    ['pod', pod.podRef.name],
  ] as const;
  // Our one deviation: metrics-server drops a whole pod when one of its containers shows 0 (or no) CPU or
  // memory (decode.go `checkContainerMetrics`), as a container does in its first moments. Leaving such a
  // container out keeps the pod's other containers in `kubectl top`.
  if (!c.cpu?.usageCoreNanoSeconds || !c.memory?.workingSetBytes) return;
  // collectContainerStartTime: `StartTime.Unix() <= 0` is skipped; the value is float64(UnixNano())/1e9, untimed.
  if (c.startTime >= 1_000_000_000n) f.containerStart.samples.push({ labels, value: Number(c.startTime) / 1e9 });
  if (c.cpu?.usageCoreNanoSeconds !== undefined) f.containerCpu.samples.push(at(c.cpu.time, labels, c.cpu.usageCoreNanoSeconds / 1e9));
  if (c.memory?.workingSetBytes !== undefined) f.containerMemory.samples.push(at(c.memory.time, labels, c.memory.workingSetBytes));
  if (c.swap?.swapUsageBytes !== undefined) f.containerSwap.samples.push(at(c.swap.time, labels, c.swap.swapUsageBytes));
}

// metav1.Time → prometheus.NewMetricWithTimestamp: t.Unix()*1000 + t.Nanosecond()/1e6, i.e. truncated ms.
const at = (timeNs: bigint, labels: Sample['labels'], value: number): Sample => ({ labels, value, timestampMs: timeNs / NS_PER_MS });

function formatFamily(fam: Family): string {
  const lines = [`# HELP ${fam.name} ${fam.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}\n`, `# TYPE ${fam.name} ${fam.type}\n`];
  for (const s of [...fam.samples].sort(compareSamples)) {
    const labels = s.labels.length === 0 ? '' : `{${s.labels.map(([n, v]) => `${n}="${escapeLabelValue(v)}"`).join(',')}}`;
    lines.push(`${fam.name}${labels} ${goFloat(s.value)}${s.timestampMs === undefined ? '' : ` ${s.timestampMs}`}\n`);
  }
  return lines.join('');
}

const escapeLabelValue = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

// client_golang's MetricSorter: label values pairwise (as Go strings, i.e. bytes), then the timestamp.
function compareSamples(a: Sample, b: Sample): number {
  for (let i = 0; i < a.labels.length; i++) {
    const c = compareBytes(a.labels[i]![1], b.labels[i]![1]);
    if (c !== 0) return c;
  }
  const ta = a.timestampMs ?? 0n;
  const tb = b.timestampMs ?? 0n;
  return ta < tb ? -1 : ta > tb ? 1 : 0;
}

const compareBytes = (a: string, b: string): number => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

/** Go's strconv.FormatFloat(f, 'g', -1, 64), with expfmt's special cases. */
export function goFloat(f: number): string {
  if (Number.isNaN(f)) return 'NaN';
  if (f === Infinity) return '+Inf';
  if (f === -Infinity) return '-Inf';
  if (f === 0) return Object.is(f, -0) ? '-0' : '0';
  // toExponential() gives the shortest digits that round-trip, as Go's shortest formatting does.
  const [mantissa, expText] = Math.abs(f).toExponential().split('e') as [string, string];
  const digits = mantissa.replace('.', '');
  const exp = Number(expText);
  const sign = f < 0 ? '-' : '';
  // %e when the exponent is < -4 or >= 6 (Go uses precision 6 for this decision when formatting shortest).
  if (exp < -4 || exp >= 6) {
    const frac = digits.length > 1 ? `.${digits.slice(1)}` : '';
    return `${sign}${digits[0]}${frac}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  if (exp < 0) return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
  const int = digits.slice(0, exp + 1).padEnd(exp + 1, '0');
  const frac = digits.slice(exp + 1);
  return `${sign}${int}${frac ? `.${frac}` : ''}`;
}
