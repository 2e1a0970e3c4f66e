import { writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { CertificateAuthority } from '../../shared/pki/certificate-authority.js';
import { eventually, tempDir, useControlPlane } from '../support/harness.js';
import { startMetricsServer } from '../support/metrics-server.js';

const cp = useControlPlane();

/**
 * What metrics-server reads from a kubelet, and all it reads: `/metrics/resource` in Prometheus text
 * (docs/kubeedge-stream-facts.md §5.1). CPU is a counter, so a rate needs two scrapes; zero values are dropped.
 */
async function fakeKubelet(ca: CertificateAuthority): Promise<{ port: number; scrapes: () => number }> {
  const { certPem, keyPem } = await ca.issueServerCert({ hosts: ['127.0.0.1'] });
  const startedMs = Date.now();
  let scrapes = 0;
  const server = https.createServer({ cert: certPem, key: keyPem }, (req, res) => {
    if (req.url !== '/metrics/resource') return void res.writeHead(404).end();
    scrapes++;
    const nowMs = Date.now();
    // Half a core busy since the start, 256 MiB working set.
    const cpuSeconds = 1 + (nowMs - startedMs) / 2_000;
    res.setHeader('Content-Type', 'text/plain; version=0.0.4');
    res.end(
      [
        '# TYPE node_cpu_usage_seconds_total counter',
        `node_cpu_usage_seconds_total ${cpuSeconds} ${nowMs}`,
        '# TYPE node_memory_working_set_bytes gauge',
        `node_memory_working_set_bytes ${256 * 1024 * 1024} ${nowMs}`,
        '',
      ].join('\n'),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => void server.close());
  return { port: (server.address() as AddressInfo).port, scrapes: () => scrapes };
}

describe('metrics-server against the test control plane (build/metrics-server, test/support/metrics-server.ts)', () => {
  it('serves metrics.k8s.io through the aggregator, and kubectl top shows a node scraped at its status port', async () => {
    const dir = tempDir();
    const ca = await CertificateAuthority.create({ commonName: 'fake kubelet serving CA' });
    writeFileSync(join(dir, 'kubelet-ca.crt'), ca.certPem);
    const kubelet = await fakeKubelet(ca);
    // A Node as edged reports one: the address the scraper dials and daemonEndpoints' port (edged: kubeletPort).
    await cp().kubectlOk(['create', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'ms-fake-node' } }));
    onTestFinished(() =>
      cp()
        .kubectl(['delete', 'node', 'ms-fake-node', '--ignore-not-found'])
        .then(() => undefined),
    );
    const resources = { cpu: '2', memory: '1Gi', pods: '110' };
    const status = {
      addresses: [{ type: 'InternalIP', address: '127.0.0.1' }],
      daemonEndpoints: { kubeletEndpoint: { Port: kubelet.port } },
      capacity: resources,
      allocatable: resources,
    };
    await cp().kubectlOk(['patch', 'node', 'ms-fake-node', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })]);

    const ms = await startMetricsServer(cp(), { kubeletCAFile: join(dir, 'kubelet-ca.crt'), preferredAddressTypes: 'InternalIP' });
    onTestFinished(() => ms.stop());
    await ms.register();
    const apiService = JSON.parse(await cp().kubectlOk(['get', 'apiservice', 'v1beta1.metrics.k8s.io', '-o', 'json']));
    expect(apiService.status.conditions).toContainEqual(expect.objectContaining({ type: 'Available', status: 'True' }));

    // Two scrapes make a CPU rate; metric-resolution is 10 s.
    const top = await eventually(
      async () => {
        const r = await cp().kubectl(['top', 'node', 'ms-fake-node', '--no-headers']);
        expect(r.code, r.stderr).toBe(0);
        return r.stdout;
      },
      90_000,
      1_000,
    );
    // NAME CPU(cores) CPU% MEMORY(bytes) MEMORY% (the percentages are of allocatable): about 500m, 256Mi of 1Gi.
    const [name, cpu, , memory, memoryShare] = top.trim().split(/\s+/);
    expect(name, top).toBe('ms-fake-node');
    expect(cpu, top).toMatch(/^\d+m$/);
    expect(Number(cpu!.slice(0, -1))).toBeGreaterThan(0);
    expect([memory, memoryShare], top).toEqual(['256Mi', '25%']);
    expect(kubelet.scrapes()).toBeGreaterThanOrEqual(2);

    await ms.stop();
    // Unregistered on stop: a dead APIService would break discovery for every later kubectl on this cluster.
    expect((await cp().kubectl(['get', 'apiservice', 'v1beta1.metrics.k8s.io'])).code).not.toBe(0);
  });
});
