import { describe, expect, it } from 'vitest';
import type { EdgeCore } from '../../edgecore/edgecore.js';
import { Operation, newMessage } from '../../shared/message.js';
import { eventually, tempDir } from '../support/harness.js';
import { cloudSetup, desiredFor, edgeSetup, readEdgeStore, startCloud, startEdgeInProcess, type EdgeSetup } from '../support/daemons.js';

const EDGES = 100;

describe('many edges on one cloudcore', () => {
  it('serves 100 edge nodes: each joins, gets exactly its own objects and updates, and reports up', async () => {
    const dir = tempDir();
    const cloud = await startCloud(await cloudSetup(dir, { cloudHub: { nodeLimit: 1_000 } }));
    const token = await cloud.token();
    const names = Array.from({ length: EDGES }, (_, i) => `edge-${String(i).padStart(3, '0')}`);
    for (const name of names) for (let k = 0; k < 5; k++) cloud.store.put(name, `default/configmap/${name}-c${k}`, { data: { k: String(k) } });

    const setups: EdgeSetup[] = names.map((name) => edgeSetup(dir, name, cloud.setup));
    const edges: EdgeCore[] = [];
    // Join in waves of 20, as a fleet coming up would; each edge bootstraps its own certificate.
    for (let i = 0; i < EDGES; i += 20) edges.push(...(await Promise.all(setups.slice(i, i + 20).map((s) => startEdgeInProcess(s, token)))));
    await eventually(() => expect(edges.filter((e) => e.edgeHub.status.type === 'connected' && e.edgeHub.status.synced).length).toBe(EDGES), 60_000);

    for (const name of names) cloud.store.put(name, `default/configmap/${name}-c0`, { data: { k: 'updated' } });
    cloud.store.remove(names[0]!, `default/configmap/${names[0]}-c4`);
    await Promise.all(
      edges.map((e, i) =>
        e.bus.send(
          'edgehub',
          newMessage({ source: 'edged', group: 'resource', operation: Operation.update, resource: `null/nodestatus/${names[i]}`, content: { ready: true, i } }),
        ),
      ),
    );

    await eventually(() => {
      setups.forEach((s, i) => {
        const have = readEdgeStore(s.dbPath);
        expect(new Map([...have].map(([k, v]) => [k, { uid: v.uid, resourceVersion: v.resourceVersion }]))).toEqual(desiredFor(cloud.store, names[i]!));
        expect(JSON.parse(have.get(`default/configmap/${names[i]}-c0`)!.value).data.k).toBe('updated');
        expect(cloud.store.getStatus(names[i]!, `null/nodestatus/${names[i]}`)).toEqual({ ready: true, i });
      });
    }, 60_000);
    expect(cloud.logs.filter((l) => l.msg === 'edge session open').length).toBe(EDGES);
    expect(cloud.logs.filter((l) => l.level >= 50)).toEqual([]);
  });
});
