import { describe, expect, it } from 'vitest';
import { onTestFinished } from 'vitest';
import type { LocalObjectStore } from '../../cloudcore/edgecontroller/local-object-store.js';
import { Operation, newMessage } from '../../shared/message.js';
import { eventually, tcpProxy, tempDir } from '../support/harness.js';
import { cloudSetup, edgeSetup, desiredFor, readEdgeStore, startCloud, startEdge, startEdgeInProcess, type Daemon } from '../support/daemons.js';

const NODE = 'edge-1';
const KEYS = 500;

/**
 * Writes `count` updates over KEYS objects (every 97th write deletes instead, the next one recreates the
 * object with a new uid), yielding to the event loop so the daemons stream while the test writes.
 * `during(n)` runs after each chunk; the kill happens there.
 */
async function writeUpdates(store: LocalObjectStore, from: number, count: number, during?: (written: number) => Promise<void>): Promise<void> {
  for (let i = from; i < from + count; i++) {
    const key = `default/configmap/cm-${i % KEYS}`;
    if (i % 97 === 0) store.remove(NODE, key);
    else store.put(NODE, key, { data: { value: String(i), pad: 'x'.repeat(200) } });
    if (i % 100 === 99) {
      await new Promise((r) => setTimeout(r, 2));
      await during?.(i + 1);
    }
  }
}

/** Reads the edge store every few ms and records any object that went back to an older version. */
function watchForRegressions(dbPath: string): { violations: string[]; stop(): void } {
  const highest = new Map<string, number>();
  const violations: string[] = [];
  const timer = setInterval(() => {
    let rows: Map<string, { resourceVersion: string }>;
    try {
      rows = readEdgeStore(dbPath);
    } catch {
      return; // not created yet
    }
    for (const [key, { resourceVersion }] of rows) {
      const rv = Number(resourceVersion);
      const seen = highest.get(key) ?? 0;
      if (rv < seen) violations.push(`${key} went back from ${seen} to ${rv}`);
      highest.set(key, Math.max(seen, rv));
    }
  }, 15);
  const stop = (): void => clearInterval(timer);
  onTestFinished(stop);
  return { violations, stop };
}

function expectConverged(store: LocalObjectStore, dbPath: string): void {
  const have = new Map([...readEdgeStore(dbPath)].map(([k, v]) => [k, { uid: v.uid, resourceVersion: v.resourceVersion }]));
  expect(have).toEqual(desiredFor(store, NODE));
}

describe('crash recovery (real processes)', () => {
  it('after kill -9 of cloudcore amid 10,000 updates the edge holds exactly the newest version of every object', async () => {
    const dir = tempDir();
    const setup = await cloudSetup(dir);
    let cloud = await startCloud(setup);
    const edge = edgeSetup(dir, NODE, setup);
    const daemon = startEdge(edge, await cloud.token());
    await daemon.waitForLog((l) => l.msg === 'resynced with cloud', 20_000, 'first resync');
    const watch = watchForRegressions(edge.dbPath);
    const store = cloud.store;

    let killedAt = 0;
    await writeUpdates(store, 0, 10_000, async (written) => {
      if (killedAt === 0 && written >= 5_000) {
        // Only kill once the edge is visibly receiving: mid-stream, not before it starts.
        await eventually(() => expect(readEdgeStore(edge.dbPath).size).toBeGreaterThan(100));
        await cloud.kill('SIGKILL');
        killedAt = written;
      }
    });
    expect(killedAt).toBeGreaterThan(0);
    cloud = await startCloud(setup, 'cloudcore-restarted');
    await eventually(() => expectConverged(cloud.store, edge.dbPath), 60_000);
    watch.stop();
    expect(watch.violations).toEqual([]);
    expect(readEdgeStore(edge.dbPath).size).toBe(desiredFor(cloud.store, NODE).size);
  });

  it('after kill -9 of edgecore amid 10,000 updates the restarted edge converges without applying anything older', async () => {
    const dir = tempDir();
    const setup = await cloudSetup(dir);
    const cloud = await startCloud(setup);
    const edge = edgeSetup(dir, NODE, setup);
    let daemon: Daemon = startEdge(edge, await cloud.token());
    await daemon.waitForLog((l) => l.msg === 'resynced with cloud', 20_000, 'first resync');
    const watch = watchForRegressions(edge.dbPath);

    let killed = false;
    await writeUpdates(cloud.store, 0, 10_000, async (written) => {
      if (!killed && written >= 4_000) {
        await eventually(() => expect(readEdgeStore(edge.dbPath).size).toBeGreaterThan(100));
        await daemon.kill('SIGKILL');
        killed = true;
      }
      if (killed && written === 7_000) daemon = startEdge(edge);
    });
    await eventually(() => expectConverged(cloud.store, edge.dbPath), 60_000);
    watch.stop();
    expect(watch.violations).toEqual([]);
    // The cloud saw the first session die and a new one resync.
    expect(cloud.logs.filter((l) => l.msg === 'resync queued').length).toBeGreaterThanOrEqual(2);
  });

  it('reconverges both ways after the TCP link is cut abruptly, repeatedly', async () => {
    const dir = tempDir();
    const setup = await cloudSetup(dir);
    const cloud = await startCloud(setup);
    const proxy = await tcpProxy(setup.hubPort);
    const setupEdge = edgeSetup(dir, NODE, setup, { hubPort: proxy.port, edgeHub: { heartbeatIntervalMs: 500, sessionTimeoutMs: 1_500 } });
    const edge = await startEdgeInProcess(setupEdge, await cloud.token());
    await eventually(() => expect(edge.edgeHub.status).toMatchObject({ type: 'connected', synced: true }));

    let reports = 0;
    const report = async (n: number): Promise<void> => {
      for (let i = 0; i < n; i++, reports++) {
        await edge.bus.send(
          'edgehub',
          newMessage({
            source: 'edged',
            group: 'resource',
            operation: Operation.update,
            resource: `default/podstatus/p${reports % 20}`,
            content: { n: reports },
          }),
        );
        await edge.bus.send(
          'edgehub',
          newMessage({ source: 'edged', group: 'resource', operation: Operation.insert, resource: `default/event/e${reports}`, content: { n: reports } }),
        );
      }
    };
    let lastCutAt = 0;
    for (let round = 0; round < 4; round++) {
      // Every cut hits a live session: wait for a session newer than the last cut before cutting again.
      await eventually(() => expect(edge.edgeHub.status).toMatchObject({ type: 'connected', since: expect.toSatisfy((t: number) => t > lastCutAt) }));
      await writeUpdates(cloud.store, round * 1_000, 1_000);
      await report(50);
      proxy.cut();
      lastCutAt = Date.now();
      if (round === 2) {
        // A longer outage: the link stays down while both sides keep producing.
        proxy.block();
        await writeUpdates(cloud.store, 10_000, 500);
        await report(50);
        await new Promise((r) => setTimeout(r, 2_000));
        proxy.unblock();
      }
    }
    await eventually(() => {
      expectConverged(cloud.store, setupEdge.dbPath);
      for (let p = 0; p < 20; p++) {
        const last = [...Array(reports).keys()].filter((i) => i % 20 === p).pop()!;
        expect(cloud.store.getStatus(NODE, `default/podstatus/p${p}`)).toEqual({ n: last });
      }
      for (let i = 0; i < reports; i++) expect(cloud.store.getStatus(NODE, `default/event/e${i}`)).toEqual({ n: i });
      expect(edge.edgeHub.pendingUpstream()).toBe(0);
    }, 60_000);
    expect(cloud.logs.filter((l) => l.msg === 'resync queued').length).toBeGreaterThanOrEqual(5);
  });
});
