import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { loadCloudCoreConfig } from '../../cloudcore/config.js';
import { tempDir, useControlPlane } from '../support/harness.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MANIFEST = join(ROOT, 'build', 'kubernetes', 'cloudcore.yaml');
const RBAC = join(ROOT, 'build', 'rbac', 'cloudcore.yaml');

const controlPlane = useControlPlane();

type Doc = Record<string, any>;
const manifest = (): Doc[] => parseAllDocuments(readFileSync(MANIFEST, 'utf8')).map((d) => d.toJS() as Doc);
const find = (docs: Doc[], kind: string): Doc => docs.find((d) => d.kind === kind)!;
const portOf = (container: Doc, name: string): number => (container.ports as Doc[]).find((p) => p.name === name)!.containerPort;

describe('build/kubernetes/cloudcore.yaml (real API server)', () => {
  it('embeds a cloudcore config that cloudcore accepts and that matches the pod spec', () => {
    const docs = manifest();
    const file = join(tempDir(), 'cloudcore.yaml');
    writeFileSync(file, find(docs, 'ConfigMap').data['cloudcore.yaml']);
    const config = loadCloudCoreConfig({ file });
    const pod = find(docs, 'Deployment').spec.template.spec;
    const container = pod.containers[0];

    expect(config.kubeAPI.kubeconfig).toBe(''); // in-cluster, as the ServiceAccount
    expect(config.modules.edgeController.source).toBe('kubernetes');
    expect(config.monitorServer.address).toBe('0.0.0.0');
    expect(portOf(container, 'monitor')).toBe(config.monitorServer.port);
    expect(portOf(container, 'hub')).toBe(config.modules.cloudHub.port);
    expect(portOf(container, 'certs')).toBe(config.modules.cloudHub.certServerPort);
    expect(portOf(container, 'webhook')).toBe(config.modules.edgeController.webhookPort);
    expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'monitor' });
    expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'monitor' });
    // The drain window must end, and the sessions close, before the kubelet's SIGKILL.
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(config.monitorServer.shutdownDelaySeconds + 20);
    expect(config.monitorServer.shutdownDelaySeconds).toBeGreaterThan(container.readinessProbe.periodSeconds * container.readinessProbe.failureThreshold);
    expect(pod.serviceAccountName).toBe('cloudcore');

    const service = find(docs, 'Service');
    expect(service.spec.sessionAffinity ?? 'None').toBe('None');
    expect((service.spec.ports as Doc[]).map((p) => [p.port, p.protocol])).toEqual(
      expect.arrayContaining([
        [10000, 'TCP'],
        [10002, 'TCP'],
      ]),
    );
  });

  it('is accepted by the API server (server-side dry run) once build/rbac/cloudcore.yaml is applied', async () => {
    const cp = controlPlane();
    await cp.kubectlOk(['apply', '-f', RBAC]);
    const out = await cp.kubectlOk(['apply', '--dry-run=server', '-f', MANIFEST]);
    for (const name of ['configmap/cloudcore', 'deployment.apps/cloudcore', 'poddisruptionbudget.policy/cloudcore', 'service/cloudcore'])
      expect(out).toContain(`${name} created (server dry run)`);
  });

  it.each([
    {
      what: 'a misspelt probe field',
      refusal: 'unknown field "spec.template.spec.containers[0].readinesProbe"',
      breakIt: (docs: Doc[]) => {
        const container = find(docs, 'Deployment').spec.template.spec.containers[0];
        container.readinesProbe = container.readinessProbe;
        delete container.readinessProbe;
      },
    },
    {
      what: 'an unsupported session affinity',
      refusal: 'spec.sessionAffinity: Unsupported value',
      breakIt: (docs: Doc[]) => void (find(docs, 'Service').spec.sessionAffinity = 'Sticky'),
    },
  ])('refuses a copy with $what, naming the field', async ({ refusal, breakIt }) => {
    const cp = controlPlane();
    await cp.kubectlOk(['apply', '-f', RBAC]);
    const docs = manifest();
    breakIt(docs);
    const r = await cp.kubectl(['apply', '--dry-run=server', '-f', '-'], docs.map((d) => stringify(d)).join('---\n'));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(refusal);
  });
});
