import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createLogger } from '../../shared/logger.js';
import { cloudSetup, edgeSetup, startCloud, startEdgeInProcess } from '../support/daemons.js';
import { eventually, freePort, tcpProxy, tempDir, useControlPlane } from '../support/harness.js';
import { curl, type Curl } from '../support/curl.js';
import { mosquittoPub, mosquittoSub, startMosquitto } from '../support/mosquitto.js';

// Issue 14: KubeEdge's Router, rest → servicebus. curl (a client nobody here wrote) calls cloudcore's REST
// listener with a service account token; the call crosses the edge's channel to its ServiceBus, which calls an
// HTTP app on the edge host; the app's answer comes back. Real control plane, cloudcore process, edgecore.

const controlPlane = useControlPlane();

/** An app on the edge host: answers with what it was asked, so the test sees the call as the app did. */
async function echoApp(): Promise<{
  port: number;
  calls: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders; body: string }>;
  close(): void;
}> {
  const calls: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders; body: string }> = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      calls.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      res.writeHead(req.url?.startsWith('/app/missing') ? 404 : 200, { 'content-type': 'application/json', 'x-app': 'echo' });
      res.end(JSON.stringify({ method: req.method, url: req.url, body }));
    });
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  onTestFinished(() => void server.close());
  return { port, calls, close: () => void server.close() };
}

/** A cloud app a rule POSTs to: records each body with its NodeName header. */
async function cloudApp(): Promise<{ url: string; received: Array<{ nodeName: string | undefined; body: string }> }> {
  const received: Array<{ nodeName: string | undefined; body: string }> = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      received.push({ nodeName: req.headers.nodename as string | undefined, body });
      res.writeHead(200).end();
    });
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  onTestFinished(() => void server.close());
  return { url: `http://127.0.0.1:${port}/hello`, received };
}

/** The CRDs, a cloudcore with the Router on, one edge, a token for the caller, and curl against the listener. */
async function routerEnv(
  node: string,
  edgeModules: { serviceBus?: Record<string, unknown>; eventBus?: Record<string, unknown> },
  router: Record<string, unknown> = { maxBodyBytes: 64 * 1024 },
) {
  const cp = controlPlane();
  const dir = tempDir('ke-router-');
  // KubeEdge's Rule and RuleEndpoint CRDs (and the device CRDs), as `npm run up` installs them.
  await cp.installCrds();
  const routerPort = await freePort();
  const setup = await cloudSetup(dir, {
    kubeconfig: await cp.cloudcoreKubeconfig(),
    router: { enable: true, address: '127.0.0.1', port: routerPort, restTimeout: 5, statusIntervalMs: 1_000, ...router },
  });
  const cloud = await startCloud(setup);
  // The edge reaches the cloud through a relay the test can cut. edged without a runtime registers the Node.
  const link = await tcpProxy(setup.hubPort);
  // The edge's info lines, for a test that waits on one.
  const edgeLogs: Array<{ msg?: string }> = [];
  const logger = createLogger({ name: node, level: 'info', destination: { write: (line: string) => void edgeLogs.push(JSON.parse(line)) } });
  const edge = await startEdgeInProcess(
    edgeSetup(dir, node, setup, { ...edgeModules, edged: { enable: true }, hubPort: link.port }),
    await cloud.token(),
    logger,
  );
  await eventually(() => expect(edge.edgeHub.status).toMatchObject({ type: 'connected', synced: true }), 30_000);
  onTestFinished(() => cp.kubectl(['delete', 'rules,ruleendpoints', '--all']).then(() => undefined));
  // The listener's certificate comes from the edge CA (Secret kubeedge/casecret, KubeEdge's DER keys).
  const secret = JSON.parse(await cp.kubectlOk(['get', 'secret', '-n', 'kubeedge', 'casecret', '-o', 'json']));
  const caFile = join(dir, 'edge-ca.crt');
  writeFileSync(caFile, new X509Certificate(Buffer.from(secret.data.cadata, 'base64')).toString());
  const token = (await cp.kubectlOk(['create', 'token', 'default', '--duration=1h'])).trim();
  const base = `https://127.0.0.1:${routerPort}`;
  return {
    cp,
    cloud,
    edge,
    edgeLogs,
    dir,
    link,
    apply: (o: object): Promise<string> => cp.kubectlOk(['apply', '-f', '-'], JSON.stringify(o)),
    call: (path: string, extra: string[] = [], bearer = token): Promise<Curl> =>
      curl(['--cacert', caFile, ...(bearer ? ['-H', `Authorization: Bearer ${bearer}`] : []), ...extra, `${base}${path}`]),
  };
}

const rule404 = (r: Curl): boolean => r.status === 404 && r.body.includes('no rule');

const endpoint = (name: string, ruleEndpointType: string, properties: Record<string, string> = {}) => ({
  apiVersion: 'rules.kubeedge.io/v1',
  kind: 'RuleEndpoint',
  metadata: { name, namespace: 'default' },
  spec: { ruleEndpointType, properties },
});

describe('router: rest → servicebus and rest → eventbus through the edge channel', () => {
  it('serves a rule from curl to an app on the edge and back, and answers bad input with the right status', async () => {
    const app = await echoApp();
    const node = 'router-edge';
    const { cp, cloud, edge, apply, call } = await routerEnv(node, { serviceBus: { enable: true } });
    // KubeEdge's rest → servicebus objects.
    await apply(endpoint('my-rest', 'rest'));
    await apply(endpoint('my-servicebus', 'servicebus', { service_port: String(app.port) }));
    await apply({
      apiVersion: 'rules.kubeedge.io/v1',
      kind: 'Rule',
      metadata: { name: 'rest-to-app', namespace: 'default' },
      spec: { source: 'my-rest', sourceResource: { path: '/hello' }, target: 'my-servicebus', targetResource: { path: '/app' } },
    });

    // A POST with a body and a query: the app sees the target path with the extra suffix, the query and the body.
    const ok = await eventually(
      async () => {
        const r = await call(`/${node}/default/hello/world?x=1`, ['-X', 'POST', '-H', 'content-type: text/plain', '--data-binary', 'ping']);
        expect(r.status).toBe(200);
        return r;
      },
      20_000,
      250,
    );
    expect(JSON.parse(ok.body)).toEqual({ method: 'POST', url: '/app/world?x=1', body: 'ping' });
    const seen = app.calls.at(-1)!;
    expect(seen.headers['content-type']).toBe('text/plain');
    expect(seen.headers.authorization).toBeUndefined();
    // The app's own status passes through.
    expect((await call(`/${node}/default/hello/missing`)).status).toBe(404);

    // Bad input, each with its status; everything else keeps flowing.
    expect((await call(`/${node}/default/hello`, [], '')).status).toBe(401);
    expect((await call(`/${node}/default/hello`, [], 'not-a-token')).status).toBe(401);
    const noRule = await call(`/${node}/default/nothing-here`);
    expect(noRule).toMatchObject({ status: 404, body: expect.stringContaining('no rule') });
    expect((await call(`/no-such-node/default/hello`)).status).toBe(404);
    expect((await call(`/${node}/default/hello`, ['-X', 'POST', '--data-binary', 'x'.repeat(100 * 1024)])).status).toBe(413);
    expect((await call(`/${node}/default/hello/world`)).status).toBe(200);

    // The app down: 502 with the reason. The edge gone: 503 at once, not after the timeout.
    app.close();
    await eventually(
      async () => expect(await call(`/${node}/default/hello/world`)).toMatchObject({ status: 502, body: expect.stringContaining('cannot be reached') }),
      10_000,
      200,
    );
    await edge.stop();
    // (Waiting for the edge would end in 408 after restTimeout: 503 means it was answered at once.)
    await eventually(
      async () => expect(await call(`/${node}/default/hello/world`)).toMatchObject({ status: 503, body: expect.stringContaining('not connected') }),
      10_000,
      200,
    );

    // A Rule whose target does not exist is stored (no CRD can check another object) and says why it is inactive.
    await apply({
      apiVersion: 'rules.kubeedge.io/v1',
      kind: 'Rule',
      metadata: { name: 'dangling', namespace: 'default' },
      spec: { source: 'my-rest', sourceResource: { path: '/dangling' }, target: 'nope', targetResource: { path: '/x' } },
    });
    await eventually(
      async () => {
        const rule = JSON.parse(await cp.kubectlOk(['get', 'rule', 'dangling', '-o', 'json']));
        expect(rule.status?.errors?.at(-1)).toMatch(/ inactive: target RuleEndpoint default\/nope does not exist$/);
      },
      20_000,
      500,
    );
    expect(rule404(await call(`/${node}/default/dangling`))).toBe(true);

    // The Rule's status counts the messages, written at most every statusIntervalMs, with the last errors.
    await eventually(
      async () => {
        const rule = JSON.parse(await cp.kubectlOk(['get', 'rule', 'rest-to-app', '-o', 'json']));
        expect(rule.status.successMessages).toBe(3);
        expect(rule.status.failMessages).toBeGreaterThanOrEqual(3);
        expect(rule.status.errors.at(-1)).toMatch(/^\d{4}-\d\d-\d\dT\S+Z 503 /);
      },
      20_000,
      500,
    );
    expect(cloud.logs.some((l) => l.msg === 'router request refused' && l.status === 413)).toBe(true);
  });

  it('publishes a request body on the edge broker once the broker has taken it, with the extra path on the topic', async () => {
    const node = 'router-bus-edge';
    const { edge, apply, call } = await routerEnv(node, { eventBus: { enable: true } });
    // KubeEdge's documented rest → eventbus YAMLs, unchanged.
    await apply(endpoint('my-rest', 'rest'));
    await apply(endpoint('my-eventbus', 'eventbus'));
    await apply({
      apiVersion: 'rules.kubeedge.io/v1',
      kind: 'Rule',
      metadata: { name: 'my-rule', namespace: 'default' },
      spec: { source: 'my-rest', sourceResource: { path: '/test' }, target: 'my-eventbus', targetResource: { topic: 'test' } },
    });
    const sub = await mosquittoSub(`mqtt://127.0.0.1:${edge.eventBus!.port}`, ['test', 'test/#']);
    await eventually(
      async () => expect((await call(`/${node}/default/test`, ['-X', 'POST', '--data-binary', '{"message":"123"}'])).status).toBe(200),
      20_000,
      250,
    );
    expect(await sub.next('test')).toEqual({ message: '123' });
    const r = await call(`/${node}/default/test/room/1`, ['-X', 'POST', '--data-binary', 'on']);
    expect(r).toMatchObject({ status: 200, body: expect.stringContaining('test/room/1') });
    expect(await sub.next('test/room/1')).toBe('on');
    // The broker is gone with the edge: 503 at once.
    await edge.stop();
    expect((await call(`/${node}/default/test`, ['-X', 'POST', '--data-binary', 'x'])).status).toBe(503);
  });

  it('posts what edge apps publish on a rule topic to a cloud URL with NodeName, in order across a cut link, and stops when the rule goes', async () => {
    const node = 'router-up-edge';
    const { url, received } = await cloudApp();
    const { edge, link, apply, cp } = await routerEnv(node, { eventBus: { enable: true } });
    const broker = `mqtt://127.0.0.1:${edge.eventBus!.port}`;
    // KubeEdge's documented eventbus → rest YAMLs, with this test's node and URL.
    await apply(endpoint('my-rest', 'rest'));
    await apply(endpoint('my-eventbus', 'eventbus'));
    await apply({
      apiVersion: 'rules.kubeedge.io/v1',
      kind: 'Rule',
      metadata: { name: 'my-rule-eventbus-rest', namespace: 'default' },
      spec: {
        source: 'my-eventbus',
        sourceResource: { topic: 'test', node_name: node },
        target: 'my-rest',
        targetResource: { resource: url },
      },
    });
    // The rule reaches the edge, which subscribes; an app's message then goes up.
    await eventually(() => expect(edge.eventBus!.ruleCount).toBe(1), 20_000, 100);
    // KubeEdge's topic for a rule of namespace default and topic test: default/test.
    await mosquittoPub(broker, 'default/test', 'first');
    await eventually(() => expect(received.map((r) => r.body)).toEqual(['first']), 20_000, 100);
    expect(received.find((r) => r.body === 'first')!.nodeName).toBe(node);

    // The link cut while an app keeps publishing: everything arrives afterwards, in order.
    const before = received.length;
    link.block();
    link.cut();
    await eventually(() => expect(edge.edgeHub.status.type).not.toBe('connected'), 10_000);
    for (let i = 0; i < 20; i++) await mosquittoPub(broker, 'default/test', `m${i}`);
    expect(received.length).toBe(before);
    link.unblock();
    await eventually(() => expect(received.slice(before).map((r) => r.body)).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`)), 30_000, 200);

    // The rule deleted: the edge unsubscribes, and nothing more goes up.
    await cp.kubectlOk(['delete', 'rule', 'my-rule-eventbus-rest']);
    await eventually(() => expect(edge.eventBus!.ruleCount).toBe(0), 20_000, 100);
    await mosquittoPub(broker, 'default/test', 'after-delete');
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(received.map((r) => r.body)).not.toContain('after-delete');
  });

  it('posts what edge apps publish under $hw/events/upload/ to a rule with that topic, once each, from the embedded and an external broker', async () => {
    const node = 'router-upload-edge';
    const { url, received } = await cloudApp();
    const mosquitto = await startMosquitto();
    const { edge, edgeLogs, apply } = await routerEnv(node, { eventBus: { enable: true, mode: 'both', external: { url: mosquitto.url } } });
    const embedded = `mqtt://127.0.0.1:${edge.eventBus!.port}`;
    await apply(endpoint('my-rest', 'rest'));
    await apply(endpoint('my-eventbus', 'eventbus'));
    // KubeEdge's edge sends every $hw/events/upload/# message to its router, which drops it (its lookup puts the
    // rule namespace in front). Here a rule written with that topic gets them: no namespace is put in front.
    await apply({
      apiVersion: 'rules.kubeedge.io/v1',
      kind: 'Rule',
      metadata: { name: 'uploads', namespace: 'default' },
      spec: {
        source: 'my-eventbus',
        sourceResource: { topic: '$hw/events/upload/sensors/+', node_name: node },
        target: 'my-rest',
        targetResource: { resource: url },
      },
    });
    await eventually(() => expect(edge.eventBus!.ruleCount).toBe(1), 20_000, 100);
    await mosquittoPub(embedded, '$hw/events/upload/sensors/t1', 'from-embedded');
    await eventually(() => expect(received.map((r) => r.body)).toEqual(['from-embedded']), 20_000, 100);
    expect(received[0]!.nodeName).toBe(node);

    // The external broker, where edgecore subscribes $hw/events/upload/# anyway. Each message arrives once (a
    // second copy would come before the next message), and only those on the rule's topic.
    await eventually(() => expect(edgeLogs.some((l) => l.msg === 'connected to external mqtt broker')).toBe(true), 20_000, 100);
    await mosquittoPub(mosquitto.url, '$hw/events/upload/sensors/t2', 'from-mosquitto');
    await mosquittoPub(embedded, '$hw/events/upload/other/t3', 'no-rule');
    await mosquittoPub(embedded, 'default/$hw/events/upload/sensors/t4', 'namespaced');
    await mosquittoPub(mosquitto.url, '$hw/events/upload/sensors/t5', 'last');
    await eventually(() => expect(received.map((r) => r.body)).toEqual(['from-embedded', 'from-mosquitto', 'last']), 20_000, 100);
  });

  it('lets an edge app call a cloud URL through its ServiceBus only where a rule allows it', async () => {
    const node = 'router-sb-edge';
    const received: Array<{ method: string; nodeName: string | undefined; body: string }> = [];
    const cloudApp = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        received.push({ method: req.method!, nodeName: req.headers.nodename as string | undefined, body });
        res.writeHead(201, { 'content-type': 'text/plain' }).end(`hello ${req.headers.nodename}`);
      });
    });
    const appPort = await freePort();
    await new Promise<void>((resolve) => cloudApp.listen(appPort, '127.0.0.1', resolve));
    onTestFinished(() => void cloudApp.close());
    const sbPort = await freePort();
    const { link, apply, cp } = await routerEnv(node, { serviceBus: { enable: true, port: sbPort, maxBodyBytes: 64 * 1024 } });
    const target = `http://127.0.0.1:${appPort}/hello`;
    await apply(endpoint('my-rest', 'rest'));
    await apply(endpoint('my-servicebus', 'servicebus', { service_port: '6666' }));
    await apply({
      apiVersion: 'rules.kubeedge.io/v1',
      kind: 'Rule',
      metadata: { name: 'my-rule-servicebus-rest', namespace: 'default' },
      spec: { source: 'my-servicebus', sourceResource: { target_url: target, node_name: node }, target: 'my-rest', targetResource: { resource: target } },
    });
    // The edge app: KubeEdge's request to ServiceBus, with curl. As from KubeEdge, the HTTP status is 200 and the
    // outcome is in `code`.
    const ask = async (targetURL: string): Promise<{ code: number; msg: string; body: string }> => {
      const r = await curl(['-X', 'POST', '--data-binary', JSON.stringify({ method: 'POST', targetURL, payload: 'ping' }), `http://127.0.0.1:${sbPort}/`]);
      expect(r.status).toBe(200);
      return JSON.parse(r.body);
    };
    const ok = await eventually(
      async () => {
        const r = await ask(target);
        expect(r.code).toBe(200);
        return r;
      },
      20_000,
      250,
    );
    expect(ok).toEqual({ code: 200, msg: 'receive response from cloud successfully', body: `hello ${node}` });
    expect(received.at(-1)).toEqual({ method: 'POST', nodeName: node, body: 'ping' });
    // A URL no rule allows, a garbage body: refused on the edge, nothing reaches the cloud app.
    const calls = received.length;
    expect(await ask(`http://127.0.0.1:${appPort}/other`)).toMatchObject({
      code: 400,
      msg: expect.stringMatching(/^url \S+ is not allowed and please make a rule/),
    });
    expect(JSON.parse((await curl(['-X', 'POST', '--data-binary', 'not json', `http://127.0.0.1:${sbPort}/`])).body)).toMatchObject({
      code: 400,
      msg: 'invalid params',
    });
    // A body over modules.serviceBus.maxBodyBytes: code 413 (HTTP 200, as every answer of KubeEdge's API), and
    // the API goes on serving.
    const big = JSON.stringify({ method: 'POST', targetURL: target, payload: 'x'.repeat(100 * 1024) });
    const tooBig = await curl(['-X', 'POST', '--data-binary', big, `http://127.0.0.1:${sbPort}/`]);
    expect(tooBig.status).toBe(200);
    expect(JSON.parse(tooBig.body)).toMatchObject({ code: 413, msg: expect.stringContaining('maxBodyBytes') });
    expect(received.length).toBe(calls);
    expect(await ask(target)).toMatchObject({ code: 200 });
    // The link down: 503 at once. The rule deleted: refused on the edge.
    link.block();
    link.cut();
    await eventually(async () => expect((await ask(target)).code).toBe(503), 10_000, 200);
    link.unblock();
    await eventually(async () => expect((await ask(target)).code).toBe(200), 30_000, 250);
    await cp.kubectlOk(['delete', 'rule', 'my-rule-servicebus-rest']);
    await eventually(async () => expect((await ask(target)).code).toBe(400), 20_000, 200);
  });

  it('routes a {param} rule path with the whole path and query to the app, and carries bodies up to 12 MiB by default', async () => {
    const app = await echoApp();
    const node = 'router-param-edge';
    // The default body limits (KubeEdge's: 12 MiB in the cloud, 5e6 bytes on the edge).
    const { apply, call, dir } = await routerEnv(node, { serviceBus: { enable: true } }, {});
    await apply(endpoint('my-rest', 'rest'));
    await apply(endpoint('my-servicebus', 'servicebus', { service_port: String(app.port) }));
    await apply({
      apiVersion: 'rules.kubeedge.io/v1',
      kind: 'Rule',
      metadata: { name: 'by-device', namespace: 'default' },
      spec: { source: 'my-rest', sourceResource: { path: '/devices/{id}' }, target: 'my-servicebus', targetResource: { path: '/app' } },
    });
    // As from KubeEdge, the app gets the rule's target path and the whole request path: it learns the id.
    const ok = await eventually(
      async () => {
        const r = await call(`/${node}/default/devices/42/status?verbose=1`);
        expect(r.status).toBe(200);
        return r;
      },
      20_000,
      250,
    );
    expect(JSON.parse(ok.body)).toMatchObject({ method: 'GET', url: '/app/devices/42/status?verbose=1' });
    expect(rule404(await call(`/${node}/default/devices`))).toBe(true);
    expect(rule404(await call(`/${node}/default/devicesx/42`))).toBe(true);

    // 3 MiB, above the former 1 MiB default and the channel's 1 MiB stream window, there and back.
    const file = join(dir, 'big.bin');
    writeFileSync(file, 'y'.repeat(3 << 20));
    const big = await call(`/${node}/default/devices/7`, ['-X', 'PUT', '--data-binary', `@${file}`]);
    expect(big.status).toBe(200);
    expect(JSON.parse(big.body)).toMatchObject({ method: 'PUT', url: '/app/devices/7' });
    expect(JSON.parse(big.body).body.length).toBe(3 << 20);
    // 11 MiB reaches the app too; its echo is over the edge's 5e6-byte limit on answers: a bad gateway answer.
    writeFileSync(file, 'z'.repeat(11 << 20));
    const tooBigAnswer = await call(`/${node}/default/devices/8`, ['-X', 'PUT', '--data-binary', `@${file}`]);
    expect(tooBigAnswer).toMatchObject({ status: 502, body: expect.stringContaining('maxBodyBytes') });
    expect(app.calls.at(-1)).toMatchObject({ method: 'PUT', url: '/app/devices/8' });
    expect(app.calls.at(-1)!.body.length).toBe(11 << 20);
  });
});
