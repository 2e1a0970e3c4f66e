import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createKubeClients, LIST_PAGE_SIZE } from '../../cloudcore/kube/kube-client.js';

const POD_COUNT = LIST_PAGE_SIZE * 2 + 7;

// An API server that answers lists in pages of `limit`, every page carrying the snapshot's resourceVersion.
function pagedServer(): Promise<{ url: string; queries: URLSearchParams[]; server: Server }> {
  const queries: URLSearchParams[] = [];
  const pods = Array.from({ length: POD_COUNT }, (_, i) => ({ metadata: { name: `p${i}`, namespace: 'default', resourceVersion: String(i) } }));
  const server = createServer((req, res) => {
    const query = new URL(req.url!, 'http://x').searchParams;
    queries.push(query);
    const from = Number(query.get('continue') ?? 0);
    const to = Math.min(pods.length, from + Number(query.get('limit') ?? pods.length));
    const metadata = { resourceVersion: '4242', ...(to < pods.length ? { continue: String(to) } : {}) };
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ kind: 'PodList', apiVersion: 'v1', metadata, items: pods.slice(from, to) }));
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, queries, server })),
  );
}

describe('rawList', () => {
  const cleanups: Array<() => void> = [];
  afterEach(() => cleanups.splice(0).forEach((fn) => fn()));

  it('lists in pages and returns every item with the snapshot resourceVersion the watch starts from', async () => {
    const { url, queries, server } = await pagedServer();
    cleanups.push(() => server.close());
    const dir = mkdtempSync(join(tmpdir(), 'ke-rawlist-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        'current-context': 'c',
        clusters: [{ name: 'c', cluster: { server: url, 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'u', user: { token: 't' } }],
        contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
      }),
    );
    const list = await createKubeClients({ kubeconfig }).rawList<{ metadata: { name: string } }>('/api/v1/pods', 'app=x');
    expect(list.items.map((p) => p.metadata.name)).toEqual(Array.from({ length: POD_COUNT }, (_, i) => `p${i}`));
    expect(list.metadata?.resourceVersion).toBe('4242');
    expect(queries.map((q) => [q.get('limit'), q.get('continue'), q.get('labelSelector')])).toEqual([
      [String(LIST_PAGE_SIZE), null, 'app=x'],
      [String(LIST_PAGE_SIZE), String(LIST_PAGE_SIZE), 'app=x'],
      [String(LIST_PAGE_SIZE), String(LIST_PAGE_SIZE * 2), 'app=x'],
    ]);
  });
});
