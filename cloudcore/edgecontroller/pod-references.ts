import type { V1Container, V1Pod } from '@kubernetes/client-node';

/** `configmap/<namespace>/<name>` or `secret/<namespace>/<name>`. */
export type RefKey = string;

/**
 * The ConfigMaps and Secrets a pod needs on its node: volumes (plain and projected), env and envFrom of every
 * container (init and ephemeral included, unlike KubeEdge), and imagePullSecrets.
 */
export function podReferences(pod: V1Pod): Set<RefKey> {
  const ns = pod.metadata?.namespace ?? 'default';
  const refs = new Set<RefKey>();
  const cm = (name: string | undefined): void => void (name && refs.add(`configmap/${ns}/${name}`));
  const secret = (name: string | undefined): void => void (name && refs.add(`secret/${ns}/${name}`));
  const spec = pod.spec;
  for (const v of spec?.volumes ?? []) {
    cm(v.configMap?.name);
    secret(v.secret?.secretName);
    for (const source of v.projected?.sources ?? []) {
      cm(source.configMap?.name);
      secret(source.secret?.name);
    }
  }
  const containers: V1Container[] = [...(spec?.initContainers ?? []), ...(spec?.containers ?? []), ...((spec?.ephemeralContainers ?? []) as V1Container[])];
  for (const c of containers) {
    for (const e of c.env ?? []) {
      cm(e.valueFrom?.configMapKeyRef?.name);
      secret(e.valueFrom?.secretKeyRef?.name);
    }
    for (const e of c.envFrom ?? []) {
      cm(e.configMapRef?.name);
      secret(e.secretRef?.name);
    }
  }
  for (const s of spec?.imagePullSecrets ?? []) secret(s.name);
  return refs;
}

/**
 * Which node needs which referenced object, counted per pod: a ConfigMap leaves a node when the last pod
 * there that uses it goes, not before.
 */
export class ReferenceIndex {
  private readonly counts = new Map<string, Map<RefKey, number>>();
  private readonly nodesByRef = new Map<RefKey, Set<string>>();

  /** Adds refs for `node`; returns those the node did not need before. */
  add(node: string, refs: Iterable<RefKey>): RefKey[] {
    const counts = this.countsFor(node);
    const fresh: RefKey[] = [];
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
  remove(node: string, refs: Iterable<RefKey>): RefKey[] {
    const counts = this.countsFor(node);
    const gone: RefKey[] = [];
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

  nodesFor(ref: RefKey): ReadonlySet<string> {
    return this.nodesByRef.get(ref) ?? new Set();
  }

  refsOf(node: string): Iterable<RefKey> {
    return this.counts.get(node)?.keys() ?? [];
  }

  has(node: string, ref: RefKey): boolean {
    return this.counts.get(node)?.has(ref) ?? false;
  }

  private countsFor(node: string): Map<RefKey, number> {
    let counts = this.counts.get(node);
    if (!counts) this.counts.set(node, (counts = new Map()));
    return counts;
  }
}
