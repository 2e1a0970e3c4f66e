import { normalizeHost } from './connect-head.js';

/** The parts of a Node the index reads (a client-node V1Node fits). */
export interface KubeletNode {
  metadata?: { name?: string };
  status?: {
    addresses?: ReadonlyArray<{ type: string; address: string }>;
    daemonEndpoints?: { kubeletEndpoint?: { Port?: number } };
  };
}

/** kube-apiserver's --kubelet-port default, used for a node that reports no daemon port (§1.3). */
export const DEFAULT_KUBELET_PORT = 10250;

/**
 * Which edge node a CONNECT target is the kubelet of. kube-apiserver dials the first of a Node's
 * `status.addresses` of the type it prefers (--kubelet-preferred-address-types) at
 * `status.daemonEndpoints.kubeletEndpoint.Port` (docs/kubeedge-stream-facts.md §1.3); any address type may be
 * the one, so every address is indexed. Fed with edge Nodes only (the informer's label selector): a target
 * found nowhere is no edge kubelet.
 */
export class KubeletTargets {
  private readonly byTarget = new Map<string, Set<string>>();
  private readonly byNode = new Map<string, readonly string[]>();

  constructor(private readonly defaultPort = DEFAULT_KUBELET_PORT) {}

  /** Adds or replaces a node's addresses. */
  upsert(node: KubeletNode): void {
    const name = node.metadata?.name;
    if (!name) return;
    this.remove(name);
    const reported = node.status?.daemonEndpoints?.kubeletEndpoint?.Port;
    const port = reported && reported > 0 ? reported : this.defaultPort;
    const keys = [...new Set((node.status?.addresses ?? []).filter((a) => a.address).map((a) => key(a.address, port)))];
    for (const k of keys) {
      const nodes = this.byTarget.get(k) ?? new Set<string>();
      nodes.add(name);
      this.byTarget.set(k, nodes);
    }
    this.byNode.set(name, keys);
  }

  remove(name: string): void {
    for (const k of this.byNode.get(name) ?? []) {
      const nodes = this.byTarget.get(k);
      nodes?.delete(name);
      if (nodes?.size === 0) this.byTarget.delete(k);
    }
    this.byNode.delete(name);
  }

  /**
   * Every edge node whose kubelet is at host:port: none for any other target, more than one when nodes report the
   * same address and port (edges sharing a host with the same Hostname, §1.3), which the caller must not guess.
   */
  nodesForTarget(host: string, port: number): readonly string[] {
    return [...(this.byTarget.get(key(host, port)) ?? [])].sort();
  }

  /** The one edge node at host:port, or undefined (none, or several). */
  nodeForTarget(host: string, port: number): string | undefined {
    const nodes = this.byTarget.get(key(host, port));
    return nodes?.size === 1 ? nodes.values().next().value : undefined;
  }

  get size(): number {
    return this.byNode.size;
  }
}

function key(host: string, port: number): string {
  return `${normalizeHost(host)}|${port}`;
}
