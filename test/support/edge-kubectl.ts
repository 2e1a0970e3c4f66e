import { expect } from 'vitest';
import type { ControlPlane } from './control-plane.js';
import type { Daemon } from './daemons.js';
import { eventually } from './harness.js';

// Steps the kubectl-for-edge-pods tests share (kubectl-edge.test.ts: egress selector; kubelet-direct.test.ts:
// per-node DNS). Their setup (CA, API server flags, pods) is in kubelet-setup.ts, which the bench rig uses too.

/** kubectl until it succeeds (a pod starting, metrics not scraped yet); its stdout. */
export function kubectlEventually(cp: ControlPlane, args: string[], timeoutMs = 90_000, intervalMs = 500): Promise<string> {
  return eventually(
    async () => {
      const r = await cp.kubectl(args);
      expect(r.code, r.stderr).toBe(0);
      return r.stdout;
    },
    timeoutMs,
    intervalMs,
  );
}

/**
 * Stops the edge; then kubectl logs fails (once the hub has seen it go, at once) with a message naming the node, through
 * a CONNECT reason phrase or a 502's body alike.
 */
export async function expectLogsNamingOfflineNode(cp: ControlPlane, edge: Daemon, pod: string, node: string): Promise<void> {
  edge.child.kill('SIGTERM');
  await edge.exited;
  await eventually(async () => expect((await cp.kubectl(['logs', pod])).stderr).toContain(`node ${node} is not connected`), 30_000, 500);
  const r = await cp.kubectl(['logs', pod]);
  expect(r.code).not.toBe(0);
  expect(r.stderr).toContain(`node ${node} is not connected`);
}
