import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { V1Pod } from '@kubernetes/client-node';
import { STRATEGIC_MERGE_PATCH, createKubeClients } from '../../cloudcore/kube/kube-client.js';
import { isKubeletAllowedLabel, kubeletLabels } from '../../cloudcore/edgecontroller/kubelet-labels.js';
import { mirrorPodReferences } from '../../cloudcore/edgecontroller/pod-references.js';

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
}

async function recordingApiServer(): Promise<{ server: string; seen: Seen[]; close(): void }> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method!, url: req.url!, headers: req.headers });
    req.resume().on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"kind":"Node","metadata":{"name":"x"}}'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server: `http://127.0.0.1:${(server.address() as { port: number }).port}`, seen, close: () => server.close() };
}

function kubeconfigFor(server: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'ke-kc-'));
  const path = join(dir, 'kubeconfig');
  writeFileSync(
    path,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      'current-context': 'c',
      clusters: [{ name: 'k', cluster: { server, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'u', user: { token: 'cloudcore-token' } }],
      contexts: [{ name: 'c', context: { cluster: 'k', user: 'u' } }],
    }),
  );
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return path;
}

const cleanups: Array<() => void> = [];
afterEach(() => cleanups.splice(0).forEach((c) => c()));

describe('writes on behalf of a node', () => {
  it("go out impersonating the node (system:node:<name>, group system:nodes) with cloudcore's own credentials; cloudcore's own calls do not", async () => {
    const api = await recordingApiServer();
    cleanups.push(api.close);
    const clients = createKubeClients({ kubeconfig: kubeconfigFor(api.server) });
    await clients.asNode('edge-1').core.patchNamespacedPodStatus({ name: 'p', namespace: 'default', body: { status: {} } }, STRATEGIC_MERGE_PATCH);
    await clients.asNode('edge-2').coordination.patchNamespacedLease({ name: 'edge-2', namespace: 'kube-node-lease', body: {} }, STRATEGIC_MERGE_PATCH);
    await clients.core.readNode({ name: 'x' });
    const [status, lease, own] = api.seen;
    expect(status!.headers).toMatchObject({
      'impersonate-user': 'system:node:edge-1',
      'impersonate-group': 'system:nodes',
      authorization: 'Bearer cloudcore-token',
      'content-type': 'application/strategic-merge-patch+json',
    });
    expect(lease!.headers).toMatchObject({ 'impersonate-user': 'system:node:edge-2', 'impersonate-group': 'system:nodes' });
    expect(own!.headers['impersonate-user']).toBeUndefined();
    expect(own!.headers['impersonate-group']).toBeUndefined();
    expect(clients.asNode('edge-1')).toBe(clients.asNode('edge-1'));
  });
});

describe('labels an edge asks for on its Node', () => {
  it('keeps what NodeRestriction lets a kubelet set and drops role and node-restriction labels', () => {
    const { allowed, refused } = kubeletLabels({
      'node-role.kubernetes.io/control-plane': '',
      'node-restriction.kubernetes.io/trusted': 'yes',
      'team.node-restriction.kubernetes.io/x': '1',
      'kubernetes.io/hostname': 'h',
      'topology.kubernetes.io/zone': 'z1',
      'node.kubernetes.io/instance-type': 'small',
      'kubelet.kubernetes.io/anything': '1',
      'sub.node.kubernetes.io/x': '1',
      'beta.kubernetes.io/arch': 'amd64',
      'example.k8s.io/x': '1',
      'kubernetes.io/role': 'master',
      'site.example.com/rack': '7',
      plain: 'ok',
    });
    expect(Object.keys(allowed).sort()).toEqual([
      'beta.kubernetes.io/arch',
      'kubelet.kubernetes.io/anything',
      'kubernetes.io/hostname',
      'node.kubernetes.io/instance-type',
      'plain',
      'site.example.com/rack',
      'sub.node.kubernetes.io/x',
      'topology.kubernetes.io/zone',
    ]);
    expect(refused.sort()).toEqual([
      'example.k8s.io/x',
      'kubernetes.io/role',
      'node-restriction.kubernetes.io/trusted',
      'node-role.kubernetes.io/control-plane',
      'team.node-restriction.kubernetes.io/x',
    ]);
    expect(isKubeletAllowedLabel('node-role.kubernetes.io/edge')).toBe(false);
  });
});

describe('mirror pods', () => {
  const pod = (spec: Record<string, unknown>): V1Pod =>
    ({ metadata: { name: 'm', namespace: 'default' }, spec: { containers: [{ name: 'c', image: 'i' }], ...spec } }) as V1Pod;

  it('may reference no Secret, ConfigMap, service account, PVC or resource claim', () => {
    expect(mirrorPodReferences(pod({}))).toEqual([]);
    expect(mirrorPodReferences(pod({ volumes: [{ name: 'v', configMap: { name: 'extension-apiserver-authentication' } }] }))).toEqual(['configmap']);
    expect(mirrorPodReferences(pod({ imagePullSecrets: [{ name: 's' }] }))).toEqual(['secret']);
    expect(mirrorPodReferences(pod({ serviceAccountName: 'default' }))).toEqual(['serviceaccount']);
    expect(mirrorPodReferences(pod({ volumes: [{ name: 'v', persistentVolumeClaim: { claimName: 'data' } }] }))).toEqual(['persistentvolumeclaim']);
    expect(mirrorPodReferences(pod({ volumes: [{ name: 'v', ephemeral: { volumeClaimTemplate: { spec: {} } } }] }))).toEqual(['persistentvolumeclaim']);
    expect(mirrorPodReferences(pod({ resourceClaims: [{ name: 'gpu', resourceClaimName: 'gpu' }] }))).toEqual(['resourceclaim']);
    expect(
      mirrorPodReferences(pod({ volumes: [{ name: 'v', projected: { sources: [{ serviceAccountToken: { path: 't' } }, { configMap: { name: 'x' } }] } }] })),
    ).toEqual(['configmap', 'serviceaccount']);
  });
});
