import { mkdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { PodSandboxConfig } from '../../edgecore/edged/cri/cri-types.js';
import { serveContainerLogs } from '../../edgecore/edged/kubelet-api/container-logs.js';
import { logPathResolver } from '../../edgecore/edged/kubelet-api/log-path-resolver.js';
import type { Pod, PodStatus } from '../../edgecore/edged/pod-types.js';
import { useContainerd } from '../support/containerd.js';

const containerd = useContainerd();

// What containerd 1.6 really writes (docs/kubeedge-stream-facts.md §4.1): a 30,000-byte line split into P + F,
// stderr beside stdout, output without a newline held until the newline; served through the kubelet handler.
const SCRIPT = [
  'echo one',
  'sleep 0.2',
  'echo err >&2',
  'sleep 0.2',
  'head -c 30000 /dev/zero | tr "\\0" x; echo',
  'printf partial; sleep 0.3; echo -end',
  'sleep 1',
  'echo last',
].join('; ');
const EXPECTED = `one\nerr\n${'x'.repeat(30_000)}\npartial-end\nlast\n`;

describe('container logs from containerd', () => {
  it('follows a running container through GET /containerLogs until it exits, then tails, limits and timestamps its file', async () => {
    const { client, workdir, cgroupParent } = containerd();
    const uid = 'uid-logs-1';
    const logDirectory = join(workdir, 'pods', `ns_p1_${uid}`);
    mkdirSync(logDirectory, { recursive: true });
    const sandbox: PodSandboxConfig = {
      metadata: { name: 'p1', uid, namespace: 'ns', attempt: 0 },
      hostname: '',
      log_directory: logDirectory,
      labels: {},
      port_mappings: [],
      linux: { cgroup_parent: `${cgroupParent}/pod${uid}`, security_context: { namespace_options: { network: 'NODE', pid: 'POD', ipc: 'POD' } } },
    };
    const sandboxId = await client.runPodSandbox(sandbox);
    onTestFinished(async () => {
      await client.stopPodSandbox(sandboxId).catch(() => undefined);
      await client.removePodSandbox(sandboxId).catch(() => undefined);
    });
    const id = await client.createContainer(
      sandboxId,
      { metadata: { name: 'web', attempt: 0 }, image: { image: 'localhost/lite/busybox:latest' }, command: ['sh', '-c', SCRIPT], log_path: 'web/0.log' },
      sandbox,
    );
    const pod: Pod = { metadata: { name: 'p1', namespace: 'ns', uid }, spec: { containers: [{ name: 'web', image: 'busybox' }] } };
    const status: PodStatus = {
      phase: 'Running',
      containerStatuses: [
        { name: 'web', state: { running: {} }, lastState: {}, ready: true, restartCount: 0, image: 'busybox', imageID: '', containerID: `containerd://${id}` },
      ],
    } as PodStatus;
    const resolve = logPathResolver({ pod: (ns, name) => (ns === 'ns' && name === 'p1' ? pod : undefined), status: () => status, cri: client });
    const server = createServer((req, res) => void serveContainerLogs(req, res, { resolve }));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    onTestFinished(() => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    });
    const get = (query: string): Promise<string> =>
      fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/containerLogs/ns/p1/web?${query}`).then((r) => r.text());

    await client.startContainer(id);
    // Ends by itself: the handler asks CRI before each wait and stops once the container exited.
    expect(await get('follow=true')).toBe(EXPECTED);
    const exited = await client.containerStatus(id);
    expect(exited.state).toBe('CONTAINER_EXITED');
    expect(readFileSync(exited.log_path, 'utf8')).toMatch(/ stdout P x{16384}\n.* stdout F x{13616}\n/);
    expect(await get('tailLines=2')).toBe('partial-end\nlast\n');
    expect(await get('limitBytes=5')).toBe('one\ne');
    const stamped = (await get('timestamps=true')).split('\n').slice(0, -1);
    expect(stamped).toHaveLength(5);
    for (const line of stamped) expect(line).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z /);
    expect(stamped.map((l) => l.slice(31))).toEqual(EXPECTED.split('\n').slice(0, -1));
  });
});
