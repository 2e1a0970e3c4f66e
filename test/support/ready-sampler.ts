import type { CoreV1Api, V1Node } from '@kubernetes/client-node';

// (No vitest here: the replicas benchmark counts notready_transitions with it too.)

/** Every edge node's Ready condition, sampled every second: each change away from True is a transition. */
export class ReadySampler {
  readonly transitions: Array<{ node: string; status: string; reason: string | undefined; atMs: number }> = [];
  samples = 0;
  private readonly last = new Map<string, string>();
  private stopped = false;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly core: CoreV1Api,
    private readonly isEdge: (name: string) => boolean,
  ) {}

  async sample(): Promise<Map<string, string>> {
    const nodes = (await this.core.listNode()).items.filter((n: V1Node) => this.isEdge(n.metadata!.name!));
    const now = new Map<string, string>();
    for (const n of nodes) {
      const ready = n.status?.conditions?.find((c) => c.type === 'Ready');
      const status = ready?.status ?? 'Missing';
      const name = n.metadata!.name!;
      if (this.last.get(name) === 'True' && status !== 'True') this.transitions.push({ node: name, status, reason: ready?.reason, atMs: Date.now() });
      this.last.set(name, status);
      now.set(name, status);
    }
    this.samples++;
    return now;
  }

  start(): void {
    this.loop = (async () => {
      while (!this.stopped) {
        // A failed list is a missed sample, not a transition; the count of samples shows the coverage.
        await this.sample().catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, 1_000));
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}
