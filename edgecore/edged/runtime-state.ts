import type { Container, ContainerStatus, CriRuntime, PodSandbox } from './cri/cri-types.js';
import { MANAGED_LABEL, POD_UID_LABEL } from './runtime-config.js';

/** What the runtime holds for one pod: its sandboxes (newest first) and every container with its status. */
export interface PodRuntime {
  uid: string;
  sandboxes: PodSandbox[];
  containers: Array<{ container: Container; status: ContainerStatus }>;
}

/**
 * The runtime as edged last listed it (the kubelet's PLEG). A relist is two CRI calls; a container's full
 * status is fetched again only when its listed state changed, so 50 quiet pods cost nothing more per relist.
 */
export class RuntimeState {
  private pods = new Map<string, PodRuntime>();
  private readonly statuses = new Map<string, ContainerStatus>();

  constructor(
    private readonly cri: CriRuntime,
    private readonly nodeName: string,
  ) {}

  /** Lists again; returns the uids whose runtime objects changed since the last relist. */
  async relist(): Promise<Set<string>> {
    const [sandboxes, containers] = await Promise.all([
      this.cri.listPodSandbox({ labels: { [MANAGED_LABEL]: this.nodeName } }),
      this.cri.listContainers({ labels: { [MANAGED_LABEL]: this.nodeName } }),
    ]);
    const next = new Map<string, PodRuntime>();
    const entry = (uid: string): PodRuntime => {
      let p = next.get(uid);
      if (!p) next.set(uid, (p = { uid, sandboxes: [], containers: [] }));
      return p;
    };
    for (const s of sandboxes) entry(s.labels[POD_UID_LABEL] ?? '').sandboxes.push(s);
    const seen = new Set<string>();
    await Promise.all(
      containers.map(async (c) => {
        seen.add(c.id);
        const status = await this.statusOf(c).catch(() => undefined);
        if (status) entry(c.labels[POD_UID_LABEL] ?? '').containers.push({ container: c, status });
      }),
    );
    for (const id of this.statuses.keys()) if (!seen.has(id)) this.statuses.delete(id);
    for (const p of next.values()) p.sandboxes.sort((a, b) => b.metadata.attempt - a.metadata.attempt || Number(BigInt(b.created_at) - BigInt(a.created_at)));
    const changed = new Set<string>();
    for (const uid of new Set([...this.pods.keys(), ...next.keys()])) if (digest(this.pods.get(uid)) !== digest(next.get(uid))) changed.add(uid);
    this.pods = next;
    return changed;
  }

  pod(uid: string): PodRuntime {
    return this.pods.get(uid) ?? { uid, sandboxes: [], containers: [] };
  }

  uids(): string[] {
    return [...this.pods.keys()];
  }

  private async statusOf(c: Container): Promise<ContainerStatus> {
    const cached = this.statuses.get(c.id);
    if (cached && cached.state === c.state) return cached;
    const status = await this.cri.containerStatus(c.id);
    this.statuses.set(c.id, status);
    return status;
  }
}

function digest(p: PodRuntime | undefined): string {
  if (!p) return '';
  return [...p.sandboxes.map((s) => `${s.id}:${s.state}`), ...p.containers.map((c) => `${c.container.id}:${c.status.state}`).sort()].join(',');
}
