/**
 * Which node needs which referenced object, counted per referrer: a ConfigMap leaves a node when the last pod
 * there that uses it goes, a DeviceModel when the last Device that uses it does, not before.
 */
export class ReferenceIndex {
  private readonly counts = new Map<string, Map<string, number>>();
  private readonly nodesByRef = new Map<string, Set<string>>();

  /** Adds refs for `node`; returns those the node did not need before. */
  add(node: string, refs: Iterable<string>): string[] {
    const counts = this.countsFor(node);
    const fresh: string[] = [];
    for (const ref of refs) {
      const n = counts.get(ref) ?? 0;
      counts.set(ref, n + 1);
      if (n === 0) {
        fresh.push(ref);
        let nodes = this.nodesByRef.get(ref);
        if (!nodes) this.nodesByRef.set(ref, (nodes = new Set()));
        nodes.add(node);
      }
    }
    return fresh;
  }

  /** Removes refs for `node`; returns those no pod on the node needs any more. */
  remove(node: string, refs: Iterable<string>): string[] {
    const counts = this.countsFor(node);
    const gone: string[] = [];
    for (const ref of refs) {
      const n = counts.get(ref) ?? 0;
      if (n <= 1) {
        counts.delete(ref);
        gone.push(ref);
        this.nodesByRef.get(ref)?.delete(node);
        if (this.nodesByRef.get(ref)?.size === 0) this.nodesByRef.delete(ref);
      } else counts.set(ref, n - 1);
    }
    if (counts.size === 0) this.counts.delete(node);
    return gone;
  }

  nodesFor(ref: string): ReadonlySet<string> {
    return this.nodesByRef.get(ref) ?? new Set();
  }

  refsOf(node: string): Iterable<string> {
    return this.counts.get(node)?.keys() ?? [];
  }

  has(node: string, ref: string): boolean {
    return this.counts.get(node)?.has(ref) ?? false;
  }

  private countsFor(node: string): Map<string, number> {
    let counts = this.counts.get(node);
    if (!counts) this.counts.set(node, (counts = new Map()));
    return counts;
  }
}
