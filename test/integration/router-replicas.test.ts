import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { cloudSetup, edgeSetup, startCloud, startEdgeInProcess, type Cloud } from '../support/daemons.js';
import { eventually, freePort, tempDir, useControlPlane } from '../support/harness.js';
import { curl, type Curl } from '../support/curl.js';

// Issue 14 with several replicas: a request reaching a replica that does not hold the node is passed to the
// one that does (its owner record on the Node, its Router address from its replica report). curl calls replica
// b; the edge is connected to a only. Real control plane, two cloudcore processes sharing the CA, one edgecore.

const controlPlane = useControlPlane();

describe('router with several replicas', () => {
  it('passes a request for a node connected to another replica to that replica, and answers 503 at once when the edge is gone', async () => {
    const cp = controlPlane();
    const dir = tempDir('ke-router-replicas-');
    await cp.installCrds();
    const kubeconfig = await cp.cloudcoreKubeconfig();

    // Two replicas sharing the CA; each Router on its own port, reports every second.
    const replica = async (id: string, ca?: object): Promise<{ cloud: Cloud; routerPort: number }> => {
      const routerPort = await freePort();
      const setup = await cloudSetup(join(dir, id), {
        kubeconfig,
        cloudHub: { rebalance: { replicaId: id, reportIntervalMs: 1_000 }, ...ca },
        router: { enable: true, address: '127.0.0.1', port: routerPort, restTimeout: 60, statusIntervalMs: 1_000 },
      });
      return { cloud: await startCloud(setup, `cloudcore-${id}`), routerPort };
    };
    const a = await replica('router-a');
    const ca = { caCertFile: join(a.cloud.setup.dir, 'cloud', 'ca.crt'), caKeyFile: join(a.cloud.setup.dir, 'cloud', 'ca.key') };
    const b = await replica('router-b', ca);

    // The edge app, and the edge on replica a only.
    const calls: string[] = [];
    const app = http.createServer((req, res) => {
      calls.push(`${req.method} ${req.url}`);
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`app answered ${req.url}`);
    });
    const appPort = await freePort();
    await new Promise<void>((resolve) => app.listen(appPort, '127.0.0.1', resolve));
    onTestFinished(() => void app.close());
    const node = 'router-replica-edge';
    const edge = await startEdgeInProcess(
      edgeSetup(dir, node, a.cloud.setup, { edged: { enable: true }, serviceBus: { enable: true } }),
      await a.cloud.token(),
    );
    await eventually(() => expect(edge.edgeHub.status).toMatchObject({ type: 'connected', synced: true }), 30_000);
    onTestFinished(() => cp.kubectl(['delete', 'rules,ruleendpoints', '--all']).then(() => undefined));
    onTestFinished(() => cp.kubectl(['delete', 'node', node, '--ignore-not-found', '--wait=false']).then(() => undefined));

    const apply = (o: object): Promise<string> => cp.kubectlOk(['apply', '-f', '-'], JSON.stringify(o));
    const endpoint = (name: string, ruleEndpointType: string, properties: Record<string, string> = {}) => ({
      apiVersion: 'rules.kubeedge.io/v1',
      kind: 'RuleEndpoint',
      metadata: { name, namespace: 'default' },
      spec: { ruleEndpointType, properties },
    });
    await apply(endpoint('rep-rest', 'rest'));
    await apply(endpoint('rep-sb', 'servicebus', { service_port: String(appPort) }));
    await apply({
      apiVersion: 'rules.kubeedge.io/v1',
      kind: 'Rule',
      metadata: { name: 'rep-rule', namespace: 'default' },
      spec: { source: 'rep-rest', sourceResource: { path: '/rep' }, target: 'rep-sb', targetResource: { path: '/svc' } },
    });

    const secret = JSON.parse(await cp.kubectlOk(['get', 'secret', '-n', 'kubeedge', 'casecret', '-o', 'json']));
    const caFile = join(dir, 'edge-ca.crt');
    writeFileSync(caFile, new X509Certificate(Buffer.from(secret.data.cadata, 'base64')).toString());
    const token = (await cp.kubectlOk(['create', 'token', 'default', '--duration=1h'])).trim();
    const call = (port: number, path: string, extra: string[] = []): Promise<Curl> =>
      curl(['--cacert', caFile, '-H', `Authorization: Bearer ${token}`, ...extra, `https://127.0.0.1:${port}${path}`]);

    // Through b, which does not hold the node: b passes it to a (once b has a's report with its Router address).
    const viaB = await eventually(
      async () => {
        const r = await call(b.routerPort, `/${node}/default/rep/x?q=1`);
        expect(r.status).toBe(200);
        return r;
      },
      30_000,
      250,
    );
    expect(viaB.body).toBe('app answered /svc/x?q=1');
    await a.cloud.waitForLog((l) => l.msg === 'router request from another replica passed to the edge' && l.node === node, 10_000, 'a relayed');
    // Through a, directly.
    expect(await call(a.routerPort, `/${node}/default/rep/y`)).toEqual({ status: 200, body: 'app answered /svc/y' });
    expect(calls).toEqual(['GET /svc/x?q=1', 'GET /svc/y']);

    // The replica path is for replicas only: a user's token is refused there, and it is never a node name.
    const peer = await call(a.routerPort, `/.replicas/v1/nodes/${node}`, ['-X', 'POST', '--data-binary', '{}']);
    expect(peer.status).toBe(403);
    await a.cloud.waitForLog((l) => l.msg === 'router request refused' && l.status === 403, 10_000, 'peer path refused');
    // An edge's own certificate (the same CA, CN=system:node:<name>) is no replica's, and no caller at all.
    const edgeCert = ['--cert', join(dir, node, 'node.crt'), '--key', join(dir, node, 'node.key')];
    const asEdge = await curl([
      '--cacert',
      caFile,
      ...edgeCert,
      '-X',
      'POST',
      '--data-binary',
      '{}',
      `https://127.0.0.1:${a.routerPort}/.replicas/v1/nodes/${node}`,
    ]);
    expect(asEdge.status).toBe(401);
    expect((await curl(['--cacert', caFile, ...edgeCert, `https://127.0.0.1:${b.routerPort}/${node}/default/rep/x`])).status).toBe(401);

    // The edge goes away: b answers 503 at once, naming the node, and a unknown node stays 404.
    // (restTimeout is 60 s and curl gives up after 30 s: a request waiting for the edge would fail here.)
    await edge.stop();
    const gone = await call(b.routerPort, `/${node}/default/rep/z`);
    expect(gone.status).toBe(503);
    expect(gone.body).toContain(node);
    expect((await call(b.routerPort, `/no-such-node/default/rep/z`)).status).toBe(404);
    expect(calls).toHaveLength(2);
  });
});
