import { existsSync, readFileSync } from 'node:fs';
import { arch, cpus, hostname, networkInterfaces, platform, release, totalmem } from 'node:os';

/** The host as a Kubernetes node sees it: what edged reports as node status. */
export interface NodeFacts {
  addresses: Array<{ type: string; address: string }>;
  /** Where the apiserver addresses the node's kubelet API (Node status field, same shape). */
  daemonEndpoints: { kubeletEndpoint: { Port: number } };
  capacity: Record<string, string>;
  allocatable: Record<string, string>;
  nodeInfo: Record<string, string>;
  labels: Record<string, string>;
}

export interface NodeFactsOptions {
  /** Empty: the first non-loopback IPv4 address. */
  nodeIP: string;
  /** Empty: this machine's host name. Lower-cased and trimmed either way, as the kubelet does. */
  hostnameOverride: string;
  kubeletPort: number;
  maxPods: number;
  kubeletVersion: string;
  labels: Record<string, string>;
}

const GOARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x' };

const readTrimmed = (path: string): string => (existsSync(path) ? readFileSync(path, 'utf8').trim() : '');

export function nodeFacts(options: NodeFactsOptions): NodeFacts {
  const ip = options.nodeIP || firstIPv4() || '127.0.0.1';
  const cpu = String(cpus().length);
  const memory = `${Math.floor(totalmem() / 1024)}Ki`;
  const capacity = { cpu, memory, pods: String(options.maxPods) };
  const osRelease = readTrimmed('/etc/os-release');
  return {
    addresses: [
      { type: 'InternalIP', address: ip },
      { type: 'Hostname', address: nodeHostname(options.hostnameOverride) },
    ],
    daemonEndpoints: { kubeletEndpoint: { Port: options.kubeletPort } },
    capacity,
    allocatable: { ...capacity },
    nodeInfo: {
      machineID: readTrimmed('/etc/machine-id'),
      systemUUID: readTrimmed('/sys/class/dmi/id/product_uuid'),
      bootID: readTrimmed('/proc/sys/kernel/random/boot_id'),
      kernelVersion: release(),
      osImage: /^PRETTY_NAME="?([^"\n]*)"?/m.exec(osRelease)?.[1] ?? platform(),
      containerRuntimeVersion: '',
      kubeletVersion: options.kubeletVersion,
      kubeProxyVersion: '',
      operatingSystem: platform(),
      architecture: GOARCH[arch()] ?? arch(),
    },
    labels: options.labels,
  };
}

/** The kubelet's GetHostname: the override or the machine's name, trimmed and lower-cased. */
export function nodeHostname(override: string): string {
  return (override || hostname()).trim().toLowerCase();
}

function firstIPv4(): string | undefined {
  return Object.values(networkInterfaces())
    .flatMap((list) => list ?? [])
    .find((a) => a.family === 'IPv4' && !a.internal)?.address;
}
