import { describe, expect, it } from 'vitest';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Operation, newMessage } from '../../shared/message.js';
import { eventually, tempDir } from '../support/harness.js';
import { CLOUDCORE_BIN, cloudSetup, desiredFor, edgeSetup, readEdgeStore, runCli, startCloud, startEdge, startEdgeInProcess } from '../support/daemons.js';

describe('joining and syncing (real cloudcore and edgecore processes)', () => {
  it('joins with a token, then receives objects and their updates and deletes', async () => {
    const dir = tempDir();
    const cloud = await startCloud(await cloudSetup(dir));
    cloud.store.put('edge-1', 'default/configmap/before-join', { data: { a: '1' } });
    const edge = edgeSetup(dir, 'edge-1', cloud.setup);
    const daemon = startEdge(edge, await cloud.token());
    await daemon.waitForLog((l) => l.msg === 'resynced with cloud', 20_000, 'resync');
    expect(existsSync(join(edge.dir, 'node.crt'))).toBe(true);
    // The store holds Secrets in clear: owner-only, like the node's key.
    const mode = (path: string): number => statSync(path).mode & 0o777;
    expect(mode(edge.dir)).toBe(0o700);
    for (const file of [edge.dbPath, `${edge.dbPath}-wal`, join(edge.dir, 'node.key')]) expect(mode(file), file).toBe(0o600);

    cloud.store.put('edge-1', 'default/pod/web', { spec: { containers: [{ name: 'c', image: 'busybox' }] } });
    cloud.store.put('edge-1', 'default/configmap/before-join', { data: { a: '2' } });
    cloud.store.put('edge-2', 'default/pod/not-mine', { spec: {} });
    await eventually(() => expect(readEdgeStore(edge.dbPath).size).toBe(2));
    cloud.store.remove('edge-1', 'default/pod/web');
    await eventually(() => {
      const have = readEdgeStore(edge.dbPath);
      expect([...have.keys()]).toEqual(['default/configmap/before-join']);
      expect(JSON.parse(have.get('default/configmap/before-join')!.value).data).toEqual({ a: '2' });
      expect(have.get('default/configmap/before-join')!.resourceVersion).toBe(
        desiredFor(cloud.store, 'edge-1').get('default/configmap/before-join')!.resourceVersion,
      );
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
      await edge.bus.send(
        'edgehub',
        newMessage({
          source: 'edged',
          group: 'resource',
          operation: Operation.update,
          resource: 'default/podstatus/web',
          content: { phase: 'Running', seq: i },
        }),
      );
    }
    await edge.bus.send(
      'edgehub',
      newMessage({ source: 'edged', group: 'resource', operation: Operation.insert, resource: 'default/event/e1', content: { reason: 'Started' } }),
    );
    await eventually(() => {
      expect(cloud.store.getStatus('edge-1', 'default/podstatus/web')).toEqual({ phase: 'Running', seq: 19 });
      expect(cloud.store.getStatus('edge-1', 'default/event/e1')).toEqual({ reason: 'Started' });
      expect(edge.edgeHub.pendingUpstream()).toBe(0);
    });

    // A query the edge cannot answer itself goes to the cloud over the request/response stream.
    const reply = await edge.bus.request(
      'edgehub',
      newMessage({ source: 'test', group: 'resource', operation: Operation.query, resource: 'default/configmap/cfg', content: null }),
    );
    expect(reply.operation).toBe(Operation.response);
    expect((reply.content as { data: unknown }).data).toEqual({ k: 'v' });
    const missing = await edge.bus.request(
      'edgehub',
      newMessage({ source: 'test', group: 'resource', operation: Operation.query, resource: 'default/configmap/nope', content: null }),
    );
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
    // EdgeHub answers a report's request once the report is committed to the outbox.
    for (let i = 0; i < 50; i++) {
      await edge.bus.request(
        'edgehub',
        newMessage({ source: 'edged', group: 'resource', operation: Operation.update, resource: `default/podstatus/p${i % 5}`, content: { n: i } }),
      );
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

  it('enrols only the named node with a bound token, and only once with a single-use token', async () => {
    const dir = tempDir();
    const cloud = await startCloud(await cloudSetup(dir));
    const token = async (...args: string[]): Promise<string> => {
      const r = await runCli(CLOUDCORE_BIN, ['--config', cloud.setup.configPath, 'token', 'create', '--ttl', '1h', ...args]);
      expect(r.code, r.stderr).toBe(0);
      return r.stdout.trim();
    };
    const refused = async (nodeName: string, joinToken: string, reason: RegExp, code: string): Promise<void> => {
      const edge = startEdge(edgeSetup(dir, nodeName, cloud.setup), joinToken);
      expect((await edge.exited).code, nodeName).not.toBe(0);
      expect(edge.stderr.join('\n'), nodeName).toMatch(reason);
      await cloud.waitForLog(
        (l) => l.msg === 'certificate request refused' && l.nodeId === nodeName && (l.err as { code?: string })?.code === code,
        10_000,
        `refusal of ${nodeName}`,
      );
    };

    const bound = await token('--node', 'edge-a');
    await refused('edge-b', bound, /bound to node "edge-a", not "edge-b"/, 'ERR_TOKEN_WRONG_NODE');
    const a = startEdge(edgeSetup(dir, 'edge-a', cloud.setup), bound);
    await a.waitForLog((l) => l.msg === 'resynced with cloud', 20_000, 'edge-a resync');

    const once = await token('--uses', '1');
    const c = startEdge(edgeSetup(dir, 'edge-c', cloud.setup), once);
    await c.waitForLog((l) => l.msg === 'resynced with cloud', 20_000, 'edge-c resync');
    await refused('edge-d', once, /used 1 time, its limit/, 'ERR_TOKEN_USED_UP');
    expect(cloud.logs.find((l) => l.msg === 'signed node certificate' && l.nodeId === 'edge-c')).toMatchObject({ how: 'token', use: '1/1' });

    // The unscoped form still enrols anyone, and bad flags exit 2 before touching the CA.
    const e = startEdge(edgeSetup(dir, 'edge-e', cloud.setup), await cloud.token());
    await e.waitForLog((l) => l.msg === 'resynced with cloud', 20_000, 'edge-e resync');
    const bad = await runCli(CLOUDCORE_BIN, ['--config', cloud.setup.configPath, 'token', 'create', '--node', 'Bad_Name', '--uses', '0']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--node "Bad_Name" is not a valid node name/);
    expect(bad.stderr).toMatch(/--uses "0" is not a positive integer/);
  });
});
