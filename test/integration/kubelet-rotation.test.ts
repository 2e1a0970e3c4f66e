import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, type ControlPlane } from '../support/control-plane.js';
import { cloudSetup, edgeSetup, startCloud, startEdge } from '../support/daemons.js';
import { eventually, freePort } from '../support/harness.js';
import { kubeletApiserverFlags, writeHubCa } from '../support/kubelet-setup.js';

// Issue 13: "a rotated certificate changes nothing for new streams". KubeEdge's EdgeStream dials its own tunnel
// with the node certificate it loaded at start and keeps it after a rotation. Here kubelet streams ride the edge's
// channel, which reconnects with the renewed certificate: once the first certificate has expired, new kubelet
// requests still reach the edge. The edge runs no containers; the kubelet API's /healthz is enough, and its Node
// address (203.0.113.77) routes nowhere, so the only way there is the tunnel. The API server's egress selector uses
// the unix socket transport here (modules.streams.connect.socketPath), the other tests its mutual-TLS TCP one.

const NODE = 'kubelet-rotation';

describe('kubelet streams across a node certificate rotation', () => {
  let dir: string;
  let cp: ControlPlane;
  let socketPath: string;
  let kubeletClientCa: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ke-kubelet-rotation-'));
    socketPath = join(dir, 'konnectivity.sock');
    const flags = kubeletApiserverFlags(dir, await writeHubCa(dir), { socketPath });
    kubeletClientCa = flags.kubeletClient.ca;
    cp = startControlPlane({ apiserverArgs: flags.apiserverArgs });
  }, 300_000);

  afterAll(() => {
    cp?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves new kubelet requests after the node certificate was renewed and the first one expired', async () => {
    const setup = await cloudSetup(dir, {
      kubeconfig: await cp.cloudcoreKubeconfig(),
      // Node certificates of 20 s: the edge renews one before it expires and reconnects with it.
      cloudHub: { edgeCertValiditySeconds: 20 },
      // The TCP listener on a free port, unused: the API server comes through the socket.
      streams: { enable: true, connect: { address: '127.0.0.1', port: await freePort(), socketPath }, clientCAFile: kubeletClientCa },
    });
    const cloud = await startCloud(setup);
    const es = edgeSetup(dir, NODE, setup, { edged: { enable: true, nodeIP: '203.0.113.77', runtimeEndpoint: '' } });
    startEdge(es, await cloud.token());
    await eventually(async () => expect(await cp.kubectlOk(['get', 'node', NODE, '--no-headers'])).toMatch(/\sReady\s/), 60_000, 250);
    const healthz = ['get', '--raw', `/api/v1/nodes/${NODE}/proxy/healthz`];
    expect(await cp.kubectlOk(healthz)).toBe('ok');
    expect(cloud.logs.some((l) => l.msg === 'kubelet stream open' && l.proxyCaller === 'unix socket' && l.nodeId === NODE)).toBe(true);
    const first = new X509Certificate(readFileSync(join(es.dir, 'node.crt')));

    await cloud.waitForLog((l) => l.msg === 'signed node certificate' && l.how === 'certificate', 60_000, 'renewal by certificate');
    await eventually(() => expect(new X509Certificate(readFileSync(join(es.dir, 'node.crt'))).serialNumber).not.toBe(first.serialNumber), 30_000);
    await eventually(() => expect(cloud.logs.filter((l) => l.msg === 'edge session open').length).toBeGreaterThanOrEqual(2), 30_000);
    // Past the first certificate's end: nothing may still lean on it.
    const expired = Date.parse(first.validTo) + 1_000;
    await new Promise((r) => setTimeout(r, Math.max(0, expired - Date.now())));
    const streamsBefore = cloud.logs.filter((l) => l.msg === 'kubelet stream open').length;
    expect(await cp.kubectlOk(healthz)).toBe('ok');
    expect(cloud.logs.filter((l) => l.msg === 'kubelet stream open').length).toBeGreaterThan(streamsBefore);
  });
});
