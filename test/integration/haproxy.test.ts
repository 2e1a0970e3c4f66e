import { describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { eventually, freePort, tempDir } from '../support/harness.js';
import { cloudSetup, edgeSetup, readEdgeStore, startCloud, startEdgeInProcess, type Cloud, type CloudSetup } from '../support/daemons.js';
import { startHaproxy } from '../support/haproxy.js';

const NODE = 'edge-1';

/** A replica on the local source; `shared` gives it the first replica's CA files and object store. */
async function replica(dir: string, name: string, shared?: CloudSetup): Promise<{ name: string; cloud: Cloud; monitorPort: number }> {
  const monitorPort = await freePort();
  const setup = await cloudSetup(join(dir, name), { monitorServer: { port: monitorPort, shutdownDelaySeconds: 2 } });
  if (shared) {
    const config = parse(readFileSync(setup.configPath, 'utf8'));
    const first = parse(readFileSync(shared.configPath, 'utf8')) as { modules: { cloudHub: Record<string, string> } };
    Object.assign(config.modules.cloudHub, { caCertFile: first.modules.cloudHub.caCertFile, caKeyFile: first.modules.cloudHub.caKeyFile });
    config.modules.edgeController.localStorePath = shared.storePath;
    writeFileSync(setup.configPath, stringify(config));
  }
  const cloud = await startCloud(shared ? { ...setup, storePath: shared.storePath } : setup, name);
  return { name, cloud, monitorPort };
}

const sessionsOpened = (cloud: Cloud): number => cloud.logs.filter((l) => l.msg === 'edge session open').length;

describe('cloudcore replicas behind HAProxy (real processes)', () => {
  it('takes a draining replica out of the balancer before it exits, and the edge moves to the other one', async () => {
    const dir = tempDir();
    const a = await replica(dir, 'cloudcore-a');
    const b = await replica(dir, 'cloudcore-b', a.cloud.setup);
    const replicas = [a, b];
    const lb = await startHaproxy(
      dir,
      replicas.map((r) => ({ name: r.name, hubPort: r.cloud.setup.hubPort, certPort: r.cloud.setup.certPort, monitorPort: r.monitorPort })),
    );

    // Join and sync through the balancer only: the token's CA comes from whichever replica the cert frontend picks.
    const es = edgeSetup(dir, NODE, a.cloud.setup, { hubPort: lb.hubPort, edgeHub: { certServer: `https://127.0.0.1:${lb.certPort}` } });
    const store = a.cloud.store;
    store.put(NODE, 'default/configmap/before', { data: { n: '1' } });
    const edge = await startEdgeInProcess(es, await b.cloud.token());
    await eventually(() => expect(edge.edgeHub.status).toMatchObject({ type: 'connected', server: `127.0.0.1:${lb.hubPort}`, synced: true }), 30_000);
    await eventually(() => expect(readEdgeStore(es.dbPath).has('default/configmap/before')).toBe(true), 30_000);

    const holderIndex = await eventually(async () => {
      const hub = (await lb.stats()).filter((s) => s.backend === 'hub');
      const index = hub.findIndex((s) => s.sessions === 1);
      expect(index, JSON.stringify(hub)).toBeGreaterThanOrEqual(0);
      return index;
    });
    const holder = replicas[holderIndex]!.cloud;
    const other = replicas[1 - holderIndex]!.cloud;
    expect(sessionsOpened(holder)).toBe(1);
    const opened = sessionsOpened(other);

    // SIGTERM: /readyz answers 503 for shutdownDelaySeconds (2 s); HAProxy's checks (every 500 ms, two
    // failures) mark the replica DOWN within that window, before the process sends its edges away and exits.
    holder.child.kill('SIGTERM');
    await eventually(
      async () => {
        const down = (await lb.stats()).filter((s) => s.server === `r${holderIndex}`);
        expect(down.map((s) => [s.status, s.checkCode])).toEqual([
          ['DOWN', 503],
          ['DOWN', 503],
        ]);
      },
      10_000,
      50,
    );
    expect(holder.child.exitCode).toBeNull();
    expect((await holder.exited).code).toBe(0);

    // The GOAWAY names no replica, so the edge redials its configured server: HAProxy, which now has one UP.
    await eventually(() => expect(sessionsOpened(other)).toBe(opened + 1), 30_000);
    store.put(NODE, 'default/configmap/after', { data: { n: '2' } });
    await eventually(() => expect(edge.edgeHub.status).toMatchObject({ type: 'connected', server: `127.0.0.1:${lb.hubPort}`, synced: true }), 30_000);
    await eventually(() => {
      const have = readEdgeStore(es.dbPath);
      expect([...have.keys()].sort()).toEqual(['default/configmap/after', 'default/configmap/before']);
    }, 30_000);
    const hub = (await lb.stats()).filter((s) => s.backend === 'hub');
    expect(hub.map((s) => [s.server, s.status, s.sessions])).toEqual([0, 1].map((i) => (i === holderIndex ? [`r${i}`, 'DOWN', 0] : [`r${i}`, 'UP', 1])));
  });
});
