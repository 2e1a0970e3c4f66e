import { describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Operation, newMessage } from '../../shared/message.js';
import { eventually, tempDir } from '../support/harness.js';
import { cloudSetup, desiredFor, edgeSetup, readEdgeStore, startCloud, startEdge, startEdgeInProcess } from '../support/daemons.js';

describe('joining and syncing (real cloudcore and edgecore processes)', () => {
  it('joins with a token, then receives objects and their updates and deletes', async () => {
    const dir = tempDir();
    const cloud = await startCloud(await cloudSetup(dir));
    cloud.store.put('edge-1', 'default/configmap/before-join', { data: { a: '1' } });
    const edge = edgeSetup(dir, 'edge-1', cloud.setup);
    const daemon = startEdge(edge, await cloud.token());
    await daemon.waitForLog((l) => l.msg === 'resynced with cloud', 20_000, 'resync');
    expect(existsSync(join(edge.dir, 'node.crt'))).toBe(true);

    cloud.store.put('edge-1', 'default/pod/web', { spec: { containers: [{ name: 'c', image: 'busybox' }] } });
    cloud.store.put('edge-1', 'default/configmap/before-join', { data: { a: '2' } });
    cloud.store.put('edge-2', 'default/pod/not-mine', { spec: {} });
    await eventually(() => expect(readEdgeStore(edge.dbPath).size).toBe(2));
    cloud.store.remove('edge-1', 'default/pod/web');
    await eventually(() => {
      const have = readEdgeStore(edge.dbPath);
      expect([...have.keys()]).toEqual(['default/configmap/before-join']);
      expect(JSON.parse(have.get('default/configmap/before-join')!.value).data).toEqual({ a: '2' });
      expect(have.get('default/configmap/before-join')!.resourceVersion).toBe(desiredFor(cloud.store, 'edge-1').get('default/configmap/before-join')!.resourceVersion);
    });
    // The second start needs no token: the node keeps its certificate.
    await daemon.kill('SIGTERM');
    const again = startEdge(edge);
    await again.waitForLog((l) => l.msg === 'resynced with cloud', 20_000, 'resync without token');
  });

  it('carries reports up to the cloud and answers queries both ways', async () => {
    const dir = tempDir();
    const cloud = await startCloud(await cloudSetup(dir));
    cloud.store.put('edge-1', 'default/configmap/cfg', { data: { k: 'v' } });
    const edge = await startEdgeInProcess(edgeSetup(dir, 'edge-1', cloud.setup), await cloud.token());
    await eventually(() => expect(edge.edgeHub.status).toMatchObject({ type: 'connected', synced: true }));

    for (let i = 0; i < 20; i++) {
      await edge.bus.send('edgehub', newMessage({ source: 'edged', group: 'resource', operation: Operation.update, resource: 'default/podstatus/web', content: { phase: 'Running', seq: i } }));
    }
    await edge.bus.send('edgehub', newMessage({ source: 'edged', group: 'resource', operation: Operation.insert, resource: 'default/event/e1', content: { reason: 'Started' } }));
    await eventually(() => {
      expect(cloud.store.getStatus('edge-1', 'default/podstatus/web')).toEqual({ phase: 'Running', seq: 19 });
      expect(cloud.store.getStatus('edge-1', 'default/event/e1')).toEqual({ reason: 'Started' });
      expect(edge.edgeHub.pendingUpstream()).toBe(0);
    });

    // A query the edge cannot answer itself goes to the cloud over the request/response stream.
    const reply = await edge.bus.request('edgehub', newMessage({ source: 'test', group: 'resource', operation: Operation.query, resource: 'default/configmap/cfg', content: null }));
    expect(reply.operation).toBe(Operation.response);
    expect((reply.content as { data: unknown }).data).toEqual({ k: 'v' });
    const missing = await edge.bus.request('edgehub', newMessage({ source: 'test', group: 'resource', operation: Operation.query, resource: 'default/configmap/nope', content: null }));
    expect(missing.operation).toBe(Operation.error);
    expect(missing.content).toMatchObject({ code: 'ERR_NOT_FOUND' });
  });

  it('keeps reports on disk while the cloud is down and delivers the newest after it returns', async () => {
    const dir = tempDir();
    const setup = await cloudSetup(dir);
    let cloud = await startCloud(setup);
    const edge = await startEdgeInProcess(edgeSetup(dir, 'edge-1', setup), await cloud.token());
    await eventually(() => expect(edge.edgeHub.status).toMatchObject({ type: 'connected', synced: true }));
    await cloud.kill('SIGKILL');
    await eventually(() => expect(edge.edgeHub.status.type).not.toBe('connected'));
    for (let i = 0; i < 50; i++) {
      await edge.bus.send('edgehub', newMessage({ source: 'edged', group: 'resource', operation: Operation.update, resource: `default/podstatus/p${i % 5}`, content: { n: i } }));
    }
    // Coalesced per pod: only the newest status of each of the 5 pods waits.
    expect(edge.edgeHub.pendingUpstream()).toBe(5);
    cloud = await startCloud(setup, 'cloudcore-restarted');
    await eventually(() => {
      for (let p = 0; p < 5; p++) expect(cloud.store.getStatus('edge-1', `default/podstatus/p${p}`)).toEqual({ n: 45 + p });
      expect(edge.edgeHub.pendingUpstream()).toBe(0);
    }, 30_000);
  });

  it('refuses a forged token, an expired token and a token for another CA, with a clear reason', async () => {
    const dir = tempDir();
    const cloud = await startCloud(await cloudSetup(dir));
    const good = await cloud.token();
    const [hash, h, p] = good.split('.');
    const forged = `${hash}.${h}.${p}.${Buffer.from('not the signature').toString('base64url')}`;
    const cases: Array<[string, string, RegExp]> = [
      ['forged', forged, /signature does not match/],
      ['expired', await cloud.token('1s').then(async (t) => (await new Promise((r) => setTimeout(r, 1500)), t)), /expired/],
      ['other-ca', `${'0'.repeat(64)}.${h}.${p}.x`, /ERR_CA_MISMATCH|token pins/],
      ['malformed', 'abc', /ERR_TOKEN_MALFORMED|four dot-separated/],
    ];
    for (const [name, token, reason] of cases) {
      const edge = startEdge(edgeSetup(dir, `edge-${name}`, cloud.setup), token);
      const { code } = await edge.exited;
      expect(code, name).not.toBe(0);
      expect(edge.stderr.join('\n'), name).toMatch(reason);
    }
    // The cloud logged each refusal and still serves a good join.
    expect(cloud.logs.filter((l) => l.msg === 'certificate request refused').length).toBeGreaterThanOrEqual(2);
    const ok = startEdge(edgeSetup(dir, 'edge-good', cloud.setup), good);
    await ok.waitForLog((l) => l.msg === 'resynced with cloud', 20_000, 'resync');
  });
});
