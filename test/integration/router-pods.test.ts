import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { useContainerd } from '../support/containerd.js';
import { cloudSetup, edgeSetup, startCloud, startEdgeInProcess } from '../support/daemons.js';
import { busyboxPod } from '../support/kubelet-setup.js';
import { eventually, freePort, tempDir, useControlPlane } from '../support/harness.js';
import { curl } from '../support/curl.js';

// Issue 14 with the apps in pods: busybox in host-network pods on the edge, run by edged through containerd.
// rest → servicebus: curl → cloudcore → channel → ServiceBus → busybox httpd in a pod. servicebus → rest:
// busybox wget in a pod → ServiceBus on 127.0.0.1 → channel → cloudcore → a cloud URL.

const controlPlane = useControlPlane();
const containerd = useContainerd();

describe('router with apps in pods on the edge', () => {
  it('reaches busybox httpd in a pod from curl, and lets busybox wget in a pod call a cloud URL through ServiceBus', async () => {
    const cp = controlPlane();
    const c = containerd();
    const dir = tempDir('ke-router-pods-');
    await cp.installCrds();
    const routerPort = await freePort();
    const cloud = await startCloud(
      await cloudSetup(dir, {
        kubeconfig: await cp.cloudcoreKubeconfig(),
        router: { enable: true, address: '127.0.0.1', port: routerPort, restTimeout: 30, statusIntervalMs: 1_000 },
      }),
    );
    const node = 'router-pods-edge';
    const serviceBusPort = await freePort();
    const setup = edgeSetup(dir, node, cloud.setup, {
      serviceBus: { enable: true, port: serviceBusPort },
      edged: {
        enable: true,
        nodeIP: '127.0.0.1',
        runtimeEndpoint: c.endpoint,
        rootDirectory: join(dir, 'pods'),
        podLogsDirectory: join(dir, 'logs'),
        cgroupParent: c.cgroupParent,
        relistIntervalMs: 300,
      },
    });
    await startEdgeInProcess(setup, await cloud.token());
    onTestFinished(() => cp.kubectl(['delete', 'pods', '--all', '--grace-period=0', '--force']).then(() => undefined));
    onTestFinished(() => cp.kubectl(['delete', 'rules,ruleendpoints', '--all']).then(() => undefined));
    onTestFinished(() => cp.kubectl(['delete', 'node', node, '--ignore-not-found', '--wait=false']).then(() => undefined));
    await eventually(async () => expect(await cp.kubectlOk(['get', 'node', node, '--no-headers'])).toMatch(/\sReady\s/), 30_000, 200);
    const apply = (o: object): Promise<string> => cp.kubectlOk(['apply', '-f', '-'], JSON.stringify(o));
    const pod = (name: string, command: string, restartPolicy = 'Always') =>
      cp.kubectlOk(['apply', '-f', '-'], busyboxPod(name, node, command, { container: 'app', spec: { hostNetwork: true, restartPolicy } }));

    // rest → servicebus: KubeEdge's objects, the app a busybox httpd in a pod on the edge host's network.
    const appPort = await freePort();
    await pod('httpd', `mkdir -p /www/api && echo "hello from the pod" > /www/api/greeting && exec busybox httpd -f -p 127.0.0.1:${appPort} -h /www`);
    await apply({
      apiVersion: 'rules.kubeedge.io/v1',
      kind: 'RuleEndpoint',
      metadata: { name: 'pod-rest', namespace: 'default' },
      spec: { ruleEndpointType: 'rest', properties: {} },
    });
    await apply({
      apiVersion: 'rules.kubeedge.io/v1',
      kind: 'RuleEndpoint',
      metadata: { name: 'pod-sb', namespace: 'default' },
      spec: { ruleEndpointType: 'servicebus', properties: { service_port: String(appPort) } },
    });
    await apply({
      apiVersion: 'rules.kubeedge.io/v1',
      kind: 'Rule',
      metadata: { name: 'to-httpd', namespace: 'default' },
      spec: { source: 'pod-rest', sourceResource: { path: '/web' }, target: 'pod-sb', targetResource: { path: '/api' } },
    });
    const secret = JSON.parse(await cp.kubectlOk(['get', 'secret', '-n', 'kubeedge', 'casecret', '-o', 'json']));
    const caFile = join(dir, 'edge-ca.crt');
    writeFileSync(caFile, new X509Certificate(Buffer.from(secret.data.cadata, 'base64')).toString());
    const token = (await cp.kubectlOk(['create', 'token', 'default', '--duration=1h'])).trim();
    const answer = await eventually(
      async () => {
        const r = await curl(['--cacert', caFile, '-H', `Authorization: Bearer ${token}`, `https://127.0.0.1:${routerPort}/${node}/default/web/greeting`]);
        expect(r.status).toBe(200);
        return r;
      },
      60_000,
      500,
    );
    expect(answer.body).toBe('hello from the pod\n');
    // busybox's own 404 passes through.
    const missing = await curl(['--cacert', caFile, '-H', `Authorization: Bearer ${token}`, `https://127.0.0.1:${routerPort}/${node}/default/web/nothing`]);
    expect(missing.status).toBe(404);

    // servicebus → rest: a cloud URL, and a rule letting this node's apps call it.
    const received: Array<{ method: string; node: string | undefined; body: string }> = [];
    const cloudApp = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        received.push({ method: req.method!, node: req.headers.nodename as string | undefined, body });
        res.writeHead(200, { 'content-type': 'text/plain' }).end('stored');
      });
    });
    const cloudPort = await freePort();
    await new Promise<void>((resolve) => cloudApp.listen(cloudPort, '127.0.0.1', resolve));
    onTestFinished(() => void cloudApp.close());
    const targetURL = `http://127.0.0.1:${cloudPort}/readings`;
    await apply({
      apiVersion: 'rules.kubeedge.io/v1',
      kind: 'RuleEndpoint',
      metadata: { name: 'pod-sb-src', namespace: 'default' },
      spec: { ruleEndpointType: 'servicebus', properties: { service_port: '1' } },
    });
    await apply({
      apiVersion: 'rules.kubeedge.io/v1',
      kind: 'RuleEndpoint',
      metadata: { name: 'cloud-rest', namespace: 'default' },
      spec: { ruleEndpointType: 'rest', properties: {} },
    });
    await apply({
      apiVersion: 'rules.kubeedge.io/v1',
      kind: 'Rule',
      metadata: { name: 'pod-to-cloud', namespace: 'default' },
      spec: { source: 'pod-sb-src', sourceResource: { target_url: targetURL, node_name: node }, target: 'cloud-rest', targetResource: { resource: targetURL } },
    });
    // The pod succeeds only when ServiceBus answered code 200 with the cloud URL's body; it tries until the rule
    // has reached the edge.
    const request = JSON.stringify({ method: 'POST', targetURL, payload: 'temperature=21' });
    await pod(
      'caller',
      [
        `until wget -q -O- --header 'Content-Type: application/json' --post-data '${request}' http://127.0.0.1:${serviceBusPort}/`,
        `| tee /dev/stderr | grep -q '"code":200.*stored'; do sleep 1; done`,
      ].join(' '),
      'Never',
    );
    await eventually(async () => expect(JSON.parse(await cp.kubectlOk(['get', 'pod', 'caller', '-o', 'json'])).status.phase).toBe('Succeeded'), 90_000, 500);
    expect(received).toContainEqual({ method: 'POST', node, body: 'temperature=21' });
  });
});
