import type { CoreV1Api, V1Node } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { NodeOwnership, OWNER_ANNOTATION, parseOwner, type Owner } from '../../cloudcore/edgecontroller/node-owner.js';
import { TokenBucket } from '../../cloudcore/kube/rate-limiter.js';
import { createLogger } from '../../shared/logger.js';

// The owner record's rules (issue 12, item 3) over an in-memory Node; the API server's part (resourceVersion
// preconditions, the informer) is tested against a real one in test/integration/rebalance.test.ts.

function cluster() {
  const node: V1Node = { metadata: { name: 'n1', resourceVersion: '1', annotations: {} } };
  let patches = 0;
  const core = {
    readNode: async () => structuredClone(node),
    patchNode: async ({ body }: { body: { metadata: { resourceVersion: string; annotations: Record<string, string> } } }) => {
      if (body.metadata.resourceVersion !== node.metadata!.resourceVersion) throw Object.assign(new Error('conflict'), { code: 409 });
      Object.assign(node.metadata!.annotations!, body.metadata.annotations);
      node.metadata!.resourceVersion = String(Number(node.metadata!.resourceVersion) + 1);
      patches++;
      return node;
    },
  } as unknown as CoreV1Api;
  return { node, core, patches: () => patches, owner: () => parseOwner(node.metadata!.annotations![OWNER_ANNOTATION]) };
}

function replica(c: ReturnType<typeof cluster>, replicaId: string, lost: Owner[] = []): NodeOwnership {
  return new NodeOwnership({
    replicaId,
    core: c.core,
    limiter: new TokenBucket(1_000, 1_000),
    logger: createLogger({ name: replicaId, level: 'silent' }),
    cachedNode: () => structuredClone(c.node),
    onLost: (_node, owner) => lost.push(owner),
  });
}

describe('NodeOwnership', () => {
  it('claims a node with the next epoch, and writes nothing when it already holds the record', async () => {
    const c = cluster();
    const a = replica(c, 'a');
    a.opened('n1');
    await a.mayWrite('n1');
    expect(c.owner()).toEqual({ replica: 'a', epoch: 1 });
    a.release('n1');
    a.opened('n1');
    await a.mayWrite('n1');
    expect(c.patches()).toBe(1);
  });

  it('gives the node up to a higher epoch, and a late write never claims it back', async () => {
    const c = cluster();
    const lost: Owner[] = [];
    const a = replica(c, 'a', lost);
    const b = replica(c, 'b');
    a.opened('n1');
    await a.claim('n1');
    b.opened('n1');
    await b.claim('n1');
    expect(c.owner()).toEqual({ replica: 'b', epoch: 2 });
    a.check();
    expect(lost).toEqual([{ replica: 'b', epoch: 2 }]);
    // A report still queued from a's stale session: refused, and b keeps the node.
    await expect(a.mayWrite('n1')).rejects.toMatchObject({ code: 'ERR_UNAVAILABLE', message: expect.stringContaining('owned by another') });
    expect(c.owner()).toEqual({ replica: 'b', epoch: 2 });
    // The session closes; a report processed after that is refused too.
    a.release('n1');
    await expect(a.mayWrite('n1')).rejects.toMatchObject({ code: 'ERR_UNAVAILABLE' });
    expect(c.owner()).toEqual({ replica: 'b', epoch: 2 });
    // The edge comes back to a with a new session: a takes the node at the next epoch.
    a.opened('n1');
    await a.mayWrite('n1');
    expect(c.owner()).toEqual({ replica: 'a', epoch: 3 });
  });

  it('refuses a write for a node whose session here has closed, without claiming it', async () => {
    const c = cluster();
    const a = replica(c, 'a');
    await expect(a.mayWrite('n1')).rejects.toMatchObject({ code: 'ERR_UNAVAILABLE', message: expect.stringContaining('no session') });
    a.opened('n1');
    a.release('n1');
    await expect(a.mayWrite('n1')).rejects.toMatchObject({ code: 'ERR_UNAVAILABLE', message: expect.stringContaining('no session') });
    expect(c.patches()).toBe(0);
  });

  it('lets an edge without a Node object write device status on its session alone', async () => {
    const c = cluster();
    const a = new NodeOwnership({
      replicaId: 'a',
      core: c.core,
      limiter: new TokenBucket(1_000, 1_000),
      logger: createLogger({ name: 'a', level: 'silent' }),
      cachedNode: () => undefined,
      onLost: () => undefined,
    });
    await expect(a.mayWriteUnregistered('n1')).rejects.toMatchObject({ code: 'ERR_UNAVAILABLE' });
    a.opened('n1');
    await a.mayWriteUnregistered('n1');
    expect(c.patches()).toBe(0);
  });

  it('holds nothing when the session closed while its claim was in flight', async () => {
    const c = cluster();
    const a = replica(c, 'a');
    a.opened('n1');
    const claim = a.claim('n1');
    a.release('n1');
    await claim;
    expect(a.owns('n1')).toBe(false);
  });
});
