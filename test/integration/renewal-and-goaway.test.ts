import { describe, expect, it, onTestFinished } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { CloudCore } from '../../cloudcore/cloudcore.js';
import { loadCloudCoreConfig } from '../../cloudcore/config.js';
import { GoAwayCode } from '../../shared/channel/frame.js';
import { Operation, newMessage } from '../../shared/message.js';
import { silentLogger } from '../../shared/logger.js';
import { eventually, tempDir } from '../support/harness.js';
import { cloudSetup, desiredFor, edgeSetup, readEdgeStore, startCloud, startEdgeInProcess } from '../support/daemons.js';

const NODE = 'edge-1';

function expectConverged(desired: ReturnType<typeof desiredFor>, dbPath: string): void {
  const have = new Map([...readEdgeStore(dbPath)].map(([k, v]) => [k, { uid: v.uid, resourceVersion: v.resourceVersion }]));
  expect(have).toEqual(desired);
}

describe('certificate renewal and GOAWAY (real processes)', () => {
  it('renews the node certificate before it expires and reconnects with it without losing anything', async () => {
    const dir = tempDir();
    const setup = await cloudSetup(dir, { cloudHub: { edgeCertValiditySeconds: 20 } });
    const cloud = await startCloud(setup);
    const es = edgeSetup(dir, NODE, setup);
    const edge = await startEdgeInProcess(es, await cloud.token());
    await eventually(() => expect(edge.edgeHub.status).toMatchObject({ type: 'connected', synced: true }));
    const firstCert = new X509Certificate(readFileSync(join(es.dir, 'node.crt')));

    let i = 0;
    const traffic = setInterval(() => {
      cloud.store.put(NODE, `default/configmap/c${i % 10}`, { data: { i: String(i) } });
      void edge.bus.send(
        'edgehub',
        newMessage({ source: 'edged', group: 'resource', operation: Operation.insert, resource: `default/event/e${i}`, content: { i } }),
      );
      i++;
    }, 100);
    onTestFinished(() => clearInterval(traffic));

    await cloud.waitForLog((l) => l.msg === 'signed node certificate' && l.how === 'certificate', 30_000, 'renewal by certificate');
    await eventually(() => expect(new X509Certificate(readFileSync(join(es.dir, 'node.crt'))).serialNumber).not.toBe(firstCert.serialNumber));
    const renewed = new X509Certificate(readFileSync(join(es.dir, 'node.crt')));
    expect(new Date(renewed.validTo).getTime()).toBeGreaterThan(new Date(firstCert.validTo).getTime());
    expect(new Date(firstCert.validTo).getTime()).toBeGreaterThan(Date.now()); // renewed before expiry
    // A new session with the renewed certificate, then let traffic run on it a little.
    await eventually(() => expect(cloud.logs.filter((l) => l.msg === 'edge session open').length).toBeGreaterThanOrEqual(2), 10_000);
    await new Promise((r) => setTimeout(r, 1_000));
    clearInterval(traffic);

    await eventually(() => {
      expectConverged(desiredFor(cloud.store, NODE), es.dbPath);
      for (let n = 0; n < i; n++) expect(cloud.store.getStatus(NODE, `default/event/e${n}`)).toEqual({ i: n });
    }, 30_000);
  });

  it('moves to the cloudcore named in a GOAWAY and back after that one shuts down, losing nothing', async () => {
    const dir = tempDir();
    // Replica A runs in this process so the test can tell it to send the GOAWAY; B is a real process that
    // shares A's CA files and object store, as replicas share a Secret and an API server.
    const setupA = await cloudSetup(join(dir, 'a'));
    const a = new CloudCore({ config: loadCloudCoreConfig({ file: setupA.configPath, overrides: { logLevel: 'silent' } }), logger: silentLogger() });
    await a.start();
    onTestFinished(() => a.stop());
    const setupB = await cloudSetup(join(dir, 'b'));
    const configB = parse(readFileSync(setupB.configPath, 'utf8'));
    const hubA = (parse(readFileSync(setupA.configPath, 'utf8')) as { modules: { cloudHub: Record<string, string> } }).modules.cloudHub;
    Object.assign(configB.modules.cloudHub, { caCertFile: hubA.caCertFile, caKeyFile: hubA.caKeyFile });
    configB.modules.edgeController.localStorePath = setupA.storePath;
    writeFileSync(setupB.configPath, stringify(configB));
    const b = await startCloud({ ...setupB, storePath: setupA.storePath }, 'cloudcore-b');

    const store = b.store;
    const es = edgeSetup(dir, NODE, setupA);
    const token = await b.token();
    const edge = await startEdgeInProcess(es, token);
    await eventually(() => expect(edge.edgeHub.status).toMatchObject({ type: 'connected', server: `127.0.0.1:${setupA.hubPort}`, synced: true }));

    for (let n = 0; n < 300; n++) store.put(NODE, `default/configmap/c${n % 30}`, { data: { n: String(n) } });
    for (let n = 0; n < 30; n++)
      await edge.bus.send(
        'edgehub',
        newMessage({ source: 'edged', group: 'resource', operation: Operation.update, resource: `default/podstatus/p${n % 3}`, content: { n } }),
      );
    a.cloudHub.session(NODE)!.goAway(GoAwayCode.REBALANCE, 'rebalance', `127.0.0.1:${setupB.hubPort}`);
    for (let n = 300; n < 600; n++) store.put(NODE, `default/configmap/c${n % 30}`, { data: { n: String(n) } });

    await eventually(() => expect(edge.edgeHub.status).toMatchObject({ type: 'connected', server: `127.0.0.1:${setupB.hubPort}`, synced: true }));
    await eventually(() => {
      expectConverged(desiredFor(store, NODE), es.dbPath);
      for (let p = 0; p < 3; p++) expect(store.getStatus(NODE, `default/podstatus/p${p}`)).toEqual({ n: 27 + p });
    });

    // B shuts down gracefully: it sends GOAWAY(shutdown) and the edge returns to its configured cloudcore (A).
    await b.kill('SIGTERM');
    expect((await b.exited).code).toBe(0);
    for (let n = 600; n < 700; n++) store.put(NODE, `default/configmap/c${n % 30}`, { data: { n: String(n) } });
    await eventually(() => expect(edge.edgeHub.status).toMatchObject({ type: 'connected', server: `127.0.0.1:${setupA.hubPort}`, synced: true }), 20_000);
    await eventually(() => expectConverged(desiredFor(store, NODE), es.dbPath));
  });
});
