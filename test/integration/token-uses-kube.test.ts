import { describe, expect, it } from 'vitest';
import { ConfigMapTokenUses } from '../../cloudcore/kube/token-uses-configmap.js';
import { createKubeClients } from '../../cloudcore/kube/kube-client.js';
import { CLOUDCORE_BIN, cloudSetup, edgeSetup, runCli, startCloud, startEdge } from '../support/daemons.js';
import { tempDir, useControlPlane } from '../support/harness.js';

const controlPlane = useControlPlane();

async function storedUses(): Promise<Record<string, string>> {
  const json = await controlPlane().kubectlOk(['get', 'configmap', 'tokenuses', '-n', 'kubeedge', '-o', 'json']);
  return (JSON.parse(json) as { data?: Record<string, string> }).data ?? {};
}

describe('token uses shared by cloudcore replicas (ConfigMap kubeedge/tokenuses, real API server)', () => {
  it('gives the last use of a token to exactly one of several racing replicas', async () => {
    const cp = controlPlane();
    // Separate clients, as separate replicas would have; a conflict is retried on the new resourceVersion.
    const replicas = [0, 1, 2].map(() => new ConfigMapTokenUses({ core: createKubeClients({ kubeconfig: cp.kubeconfig }).core }));
    const expiresAt = new Date(Date.now() + 3_600_000);
    const results = await Promise.allSettled([...replicas, ...replicas].map((r) => r.consume('race-token', 2, expiresAt)));
    expect(
      results
        .filter((r) => r.status === 'fulfilled')
        .map((r) => (r as PromiseFulfilledResult<number>).value)
        .sort(),
    ).toEqual([1, 2]);
    for (const r of results.filter((x) => x.status === 'rejected')) expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'ERR_TOKEN_USED_UP' });
    expect((await storedUses())['race-token']).toBe(`2 ${Math.ceil(expiresAt.getTime() / 1000)}`);
  });

  it('counts a single-use token in the cluster when cloudcore runs in kubernetes mode', async () => {
    const cp = controlPlane();
    const dir = tempDir();
    // As deployed: cloudcore's ServiceAccount (build/rbac/cloudcore.yaml) must be allowed to count the uses.
    const cloud = await startCloud(await cloudSetup(dir, { kubeconfig: await cp.cloudcoreKubeconfig() }));
    const created = await runCli(CLOUDCORE_BIN, ['--config', cloud.setup.configPath, 'token', 'create', '--ttl', '1h', '--uses', '1']);
    expect(created.code, created.stderr).toBe(0);
    const token = created.stdout.trim();
    const jti = JSON.parse(Buffer.from(token.split('.')[2]!, 'base64url').toString()).jti as string;

    const first = startEdge(edgeSetup(dir, 'kube-once-a', cloud.setup), token);
    await first.waitForLog((l) => l.msg === 'node certificate obtained', 30_000, 'certificate');
    const second = startEdge(edgeSetup(dir, 'kube-once-b', cloud.setup), token);
    expect((await second.exited).code).not.toBe(0);
    expect(second.stderr.join('\n')).toMatch(/used 1 time, its limit/);
    expect((await storedUses())[jti]).toMatch(/^1 \d+$/);
    await first.kill('SIGTERM');
    await cp.kubectl(['delete', 'node', 'kube-once-a', '--ignore-not-found', '--wait=false']);
  });
});
