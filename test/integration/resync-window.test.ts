import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { CloudCore } from '../../cloudcore/cloudcore.js';
import { loadCloudCoreConfig } from '../../cloudcore/config.js';
import { LocalObjectStore } from '../../cloudcore/edgecontroller/local-object-store.js';
import type { CloudBus, SyncMessage } from '../../cloudcore/contracts/node-messages.js';
import type { SyncRequest, SyncResponse } from '../../cloudcore/contracts/object-sync.js';
import { silentLogger } from '../../shared/logger.js';
import { Operation, newMessage, responseTo, type Message } from '../../shared/message.js';
import { eventually, tcpProxy, tempDir } from '../support/harness.js';
import { CLOUDCORE_BIN, cloudSetup, desiredFor, edgeSetup, readEdgeStore, runCli, startEdgeInProcess } from '../support/daemons.js';

const NODE = 'window-edge';

/**
 * A second sync provider in DeviceController's place (the local source runs without it) whose answer the
 * test holds back: while it waits, EdgeController has answered and the session is between snapshots.
 */
function slowProvider(bus: CloudBus): { held: Promise<Message<SyncRequest>>; holdNext(): void; release(): void } {
  let gate: { open: () => void; opened: Promise<void> } | undefined;
  let heldResolve: ((m: Message<SyncRequest>) => void) | undefined;
  const state = { held: new Promise<Message<SyncRequest>>(() => undefined) };
  bus.register('devicecontroller', async (request) => {
    if (request.operation !== Operation.sync) return;
    if (gate) {
      heldResolve?.(request);
      await gate.opened;
    }
    const response: SyncResponse = { ownedTypes: ['gadget'], messages: [] };
    bus.respond(request, responseTo(request, 'devicecontroller', response));
  });
  return {
    get held() {
      return state.held;
    },
    holdNext() {
      let open!: () => void;
      gate = { opened: new Promise<void>((r) => (open = r)), open: () => open() };
      state.held = new Promise((r) => (heldResolve = r));
    },
    release() {
      gate?.open();
      gate = undefined;
    },
  };
}

/** Asks EdgeController for a node's diff through the bus; its mailbox is FIFO, so earlier requests are done. */
async function edgeControllerDiff(bus: CloudBus, inventory: SyncRequest['inventory'] = []): Promise<SyncResponse> {
  const request: SyncMessage = {
    ...newMessage({ source: 'test', group: 'resource', operation: Operation.sync, resource: '', content: { nodeName: NODE, inventory } }),
    node: NODE,
  };
  const reply = await bus.request('edgecontroller', request, 10_000);
  if (reply.operation === Operation.error) throw new Error(reply.content.message);
  return reply.content;
}

function edgeHolds(dbPath: string): Map<string, { uid: string; resourceVersion: string }> {
  return new Map([...readEdgeStore(dbPath)].map(([k, v]) => [k, { uid: v.uid, resourceVersion: v.resourceVersion }]));
}

describe('resync window (in-process cloudcore, real edge store over a real link)', () => {
  it('delivers changes made between one provider answering and the last one, without another reconnect', async () => {
    const dir = tempDir();
    const setup = await cloudSetup(dir);
    const cloud = new CloudCore({ config: loadCloudCoreConfig({ file: setup.configPath, overrides: { logLevel: 'silent' } }), logger: silentLogger() });
    await cloud.start();
    onTestFinished(() => cloud.stop());
    const slow = slowProvider(cloud.bus);
    const store = new LocalObjectStore(setup.storePath);
    onTestFinished(() => store.close());
    const proxy = await tcpProxy(setup.hubPort);
    const es = edgeSetup(dir, NODE, setup, { hubPort: proxy.port });
    const token = (await runCli(CLOUDCORE_BIN, ['--config', setup.configPath, 'token', 'create', '--ttl', '1h'])).stdout.trim();

    for (const name of ['updated', 'deleted', 'kept']) store.put(NODE, `default/configmap/${name}`, { data: { v: '1' } });
    const edge = await startEdgeInProcess(es, token);
    await eventually(() => expect(edgeHolds(es.dbPath)).toEqual(desiredFor(store, NODE)), 30_000);

    // The link drops; while the edge is away an object is created (the resync's diff will insert it).
    slow.holdNext();
    proxy.cut();
    store.put(NODE, 'default/configmap/born-offline', { data: { v: '1' } });
    const request = await slow.held;
    // EdgeController has taken its snapshot (its mailbox is FIFO and our own request comes after the session's).
    const snapshot = await edgeControllerDiff(cloud.bus, request.content.inventory);
    expect(snapshot.messages.map((m) => m.resource)).toContain(`default/configmap/born-offline`);
    const session = cloud.cloudHub.session(NODE)!;
    expect(session.state).toBe('syncing');
    const offered = vi.spyOn(session, 'offerObject');
    const since = (edge.edgeHub.status as { since: number }).since;

    // Changes inside the window: an update, a create, a delete of a held object, a delete of the object the
    // earlier snapshot inserts.
    store.put(NODE, 'default/configmap/updated', { data: { v: '2' } });
    store.put(NODE, 'default/configmap/born-in-window', { data: { v: '1' } });
    store.remove(NODE, 'default/configmap/deleted');
    store.remove(NODE, 'default/configmap/born-offline');
    const windowKeys = ['updated', 'born-in-window', 'deleted', 'born-offline'].map((n) => `default/configmap/${n}`);
    // Every change reached the session while it was still syncing.
    await eventually(() => expect(offered.mock.calls.map(([m]) => m.resource)).toEqual(expect.arrayContaining(windowKeys)), 20_000);
    expect(session.state).toBe('syncing');

    slow.release();
    await eventually(() => expect(edgeHolds(es.dbPath)).toEqual(desiredFor(store, NODE)), 30_000);
    expect(edgeHolds(es.dbPath).has('default/configmap/born-offline')).toBe(false);
    // The same session did it: no reconnect healed it.
    expect(cloud.cloudHub.session(NODE)).toBe(session);
    expect(edge.edgeHub.status).toMatchObject({ type: 'connected', since, synced: true });
  });
});
