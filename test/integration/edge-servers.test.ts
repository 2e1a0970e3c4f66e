import { describe, expect, it, onTestFinished } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { CloudCore } from '../../cloudcore/cloudcore.js';
import { loadCloudCoreConfig } from '../../cloudcore/config.js';
import { LocalObjectStore } from '../../cloudcore/edgecontroller/local-object-store.js';
import type { EdgeCore } from '../../edgecore/edgecore.js';
import { GoAwayCode } from '../../shared/channel/frame.js';
import { silentLogger } from '../../shared/logger.js';
import { eventually, freePort, tempDir } from '../support/harness.js';
import {
  CLOUDCORE_BIN,
  cloudSetup,
  desiredFor,
  edgeSetup,
  readEdgeStore,
  runCli,
  startCloud,
  startEdgeInProcess,
  type CloudSetup,
} from '../support/daemons.js';

/**
 * Replica setups under `dir`: the first one's CA files and object store are every replica's, as replicas share
 * a Secret and an API server. Start the first before the others, so it is the one that creates the CA.
 */
async function replicaSetups(dir: string, count: number): Promise<CloudSetup[]> {
  const first = await cloudSetup(join(dir, 'r0'));
  const hub = (parse(readFileSync(first.configPath, 'utf8')) as { modules: { cloudHub: Record<string, string> } }).modules.cloudHub;
  const setups = [first];
  for (let i = 1; i < count; i++) {
    const s = await cloudSetup(join(dir, `r${i}`));
    const config = parse(readFileSync(s.configPath, 'utf8'));
    Object.assign(config.modules.cloudHub, { caCertFile: hub.caCertFile, caKeyFile: hub.caKeyFile });
    config.modules.edgeController.localStorePath = first.storePath;
    writeFileSync(s.configPath, stringify(config));
    setups.push({ ...s, storePath: first.storePath });
  }
  return setups;
}

async function startInProcess(setup: CloudSetup): Promise<CloudCore> {
  const cloud = new CloudCore({ config: loadCloudCoreConfig({ file: setup.configPath, overrides: { logLevel: 'silent' } }), logger: silentLogger() });
  await cloud.start();
  onTestFinished(() => cloud.stop());
  return cloud;
}

/** A join token from the replicas' shared CA, made by the cloudcore CLI (replicas in this process have no `token()`). */
async function joinToken(setup: CloudSetup): Promise<string> {
  return (await runCli(CLOUDCORE_BIN, ['--config', setup.configPath, 'token', 'create', '--ttl', '1h'])).stdout.trim();
}

const hubOf = (s: CloudSetup): string => `127.0.0.1:${s.hubPort}`;

async function connectedTo(edge: EdgeCore, servers: readonly string[], timeoutMs = 20_000): Promise<string> {
  return eventually(() => {
    const status = edge.edgeHub.status;
    expect(status).toMatchObject({ type: 'connected', synced: true });
    const server = (status as { server: string }).server;
    expect(servers).toContain(server);
    return server;
  }, timeoutMs);
}

function expectConverged(store: LocalObjectStore, node: string, dbPath: string): void {
  const have = new Map([...readEdgeStore(dbPath)].map(([k, v]) => [k, { uid: v.uid, resourceVersion: v.resourceVersion }]));
  expect(have).toEqual(desiredFor(store, node));
}

describe('an edge with several cloudcore replicas', () => {
  it('connects to one of the listed replicas and, when that one is killed, to the other, losing nothing', async () => {
    const [setupA, setupB] = await replicaSetups(tempDir(), 2);
    const a = await startCloud(setupA!, 'cloudcore-a');
    const b = await startCloud(setupB!, 'cloudcore-b');
    const byServer = new Map([
      [hubOf(setupA!), a],
      [hubOf(setupB!), b],
    ]);
    const es = edgeSetup(tempDir(), 'edge-1', setupA!, { edgeHub: { server: [...byServer.keys()] } });
    const edge = await startEdgeInProcess(es, await a.token());
    for (let n = 0; n < 50; n++) a.store.put('edge-1', `default/configmap/c${n % 10}`, { data: { n: String(n) } });
    const first = await connectedTo(edge, [...byServer.keys()]);

    await byServer.get(first)!.kill('SIGKILL');
    for (let n = 50; n < 100; n++) a.store.put('edge-1', `default/configmap/c${n % 10}`, { data: { n: String(n) } });
    const second = await connectedTo(
      edge,
      [...byServer.keys()].filter((s) => s !== first),
    );
    expect(edge.edgeHub.status).toMatchObject({ address: second });
    await eventually(() => expectConverged(a.store, 'edge-1', es.dbPath));
  });

  it('follows a GOAWAY naming a replica, and keeps away from a replica that shed it while another has room', async () => {
    const setups = await replicaSetups(tempDir(), 2);
    const clouds = new Map<string, CloudCore>();
    for (const s of setups) clouds.set(hubOf(s), await startInProcess(s));
    const servers = [...clouds.keys()];
    const other = (server: string): string => servers.find((s) => s !== server)!;
    const store = new LocalObjectStore(setups[0]!.storePath);
    onTestFinished(() => store.close());
    const token = await joinToken(setups[0]!);

    // Four edges: a rebalance without an address lands each on the other replica only if the shedder is excluded
    // (a coin flip per edge otherwise).
    const edges = await Promise.all(
      ['edge-1', 'edge-2', 'edge-3', 'edge-4'].map(async (node) => {
        const es = edgeSetup(tempDir(), node, setups[0]!, { edgeHub: { server: servers } });
        return { node, es, edge: await startEdgeInProcess(es, token) };
      }),
    );
    for (const { node } of edges) for (let n = 0; n < 20; n++) store.put(node, `default/configmap/c${n % 5}`, { data: { n: String(n) } });

    for (const { node, edge } of edges) {
      const holder = await connectedTo(edge, servers);
      clouds.get(holder)!.cloudHub.session(node)!.goAway(GoAwayCode.REBALANCE, 'rebalance');
      await connectedTo(edge, [other(holder)]);
    }
    // A GOAWAY that names a hub is followed even to the replica that shed the edge a moment ago.
    for (const { node, edge } of edges) {
      const holder = await connectedTo(edge, servers);
      clouds.get(holder)!.cloudHub.session(node)!.goAway(GoAwayCode.REBALANCE, 'rebalance', other(holder));
      await connectedTo(edge, [other(holder)]);
    }
    for (const { node } of edges) for (let n = 20; n < 40; n++) store.put(node, `default/configmap/c${n % 5}`, { data: { n: String(n) } });
    await eventually(() => {
      for (const { node, es } of edges) expectConverged(store, node, es.dbPath);
    });
  });

  it('resolves a DNS name at dial time, verifies the certificate against the name, and goes on past a dead candidate', async () => {
    const [setup] = await replicaSetups(tempDir(), 1);
    const cloud = await startInProcess(setup!);
    const dead = await freePort();
    const es = edgeSetup(tempDir(), 'edge-1', setup!, { edgeHub: { server: [`127.0.0.1:${dead}`, `localhost:${setup!.hubPort}`] } });
    const edge = await startEdgeInProcess(es, await joinToken(setup!));
    await eventually(() =>
      expect(edge.edgeHub.status).toMatchObject({ type: 'connected', server: `localhost:${setup!.hubPort}`, address: `127.0.0.1:${setup!.hubPort}` }),
    );
    expect(cloud.cloudHub.session('edge-1')).toBeDefined();
  });
});
