import { execFileSync } from 'node:child_process';
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';
import { tempDir } from './harness.js';

interface IndexEntry {
  digest: string;
  mediaType: string;
  annotations?: Record<string, string>;
}

/**
 * A read-only OCI distribution registry on 127.0.0.1 serving the offline images (cri.md §7): containerd pulls
 * `localhost:<port>/<name>:<tag>` over plain HTTP, so PullImage runs for real without the internet.
 */
export async function startOciRegistry(imagesTar: string): Promise<{ host: string; requests: string[] }> {
  const dir = tempDir('ke-registry-');
  execFileSync('tar', ['-xf', imagesTar, '-C', dir]);
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { manifests: IndexEntry[] };
  const blob = (digest: string): string => join(dir, 'blobs', ...digest.split(':'));
  const manifest = (name: string, ref: string): IndexEntry | undefined =>
    ref.startsWith('sha256:')
      ? index.manifests.find((m) => m.digest === ref)
      : index.manifests.find((m) => (m.annotations?.['io.containerd.image.name'] ?? '').endsWith(`/${name}:${ref}`));
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    requests.push(`${req.method} ${path}`);
    const send = (status: number, headers: http.OutgoingHttpHeaders, file?: string): void => {
      res.writeHead(status, headers);
      if (req.method === 'HEAD' || !file) res.end();
      else createReadStream(file).pipe(res);
    };
    if (path === '/v2/' || path === '/v2') return send(200, { 'Docker-Distribution-API-Version': 'registry/2.0' });
    let m = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(path);
    if (m) {
      const entry = manifest(m[1]!, m[2]!);
      if (!entry) return send(404, {});
      return send(
        200,
        { 'Content-Type': entry.mediaType, 'Docker-Content-Digest': entry.digest, 'Content-Length': statSync(blob(entry.digest)).size },
        blob(entry.digest),
      );
    }
    m = /^\/v2\/(.+)\/blobs\/(sha256:[0-9a-f]{64})$/.exec(path);
    if (m && existsSync(blob(m[2]!)))
      return send(
        200,
        { 'Content-Type': 'application/octet-stream', 'Docker-Content-Digest': m[2], 'Content-Length': statSync(blob(m[2]!)).size },
        blob(m[2]!),
      );
    send(404, {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { host: `localhost:${(server.address() as net.AddressInfo).port}`, requests };
}
