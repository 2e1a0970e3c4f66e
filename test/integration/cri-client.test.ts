import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { CriClient, criSocketPath } from '../../edgecore/edged/cri/cri-client.js';
import type { ContainerConfig, PodSandboxConfig } from '../../edgecore/edged/cri/cri-types.js';
import { RuntimeError } from '../../edgecore/edged/cri/runtime-error.js';
import { ConfigError } from '../../shared/errors.js';
import { startContainerd, useContainerd, type Containerd } from '../support/containerd.js';
import { eventually, freePort, tempDir } from '../support/harness.js';

const BUSYBOX = 'localhost/lite/busybox:latest';
const containerd = useContainerd();
let podSeq = 0;

interface PodOptions {
  network?: 'NODE' | 'POD';
  labels?: Record<string, string>;
  hostPort?: number;
}

function podConfig(name: string, options: PodOptions = {}, { workdir, cgroupParent }: Containerd = containerd()): PodSandboxConfig {
  const network = options.network ?? 'NODE';
  const uid = `uid-${name}-${++podSeq}`;
  const logDirectory = join(workdir, 'pods', uid);
  // The kubelet creates log_directory; containerd only creates the sub-directories of each log_path.
  mkdirSync(logDirectory, { recursive: true });
  return {
    metadata: { name, uid, namespace: 'cri-test', attempt: 0 },
    hostname: network === 'POD' ? name : '',
    log_directory: logDirectory,
    labels: options.labels ?? {},
    port_mappings: options.hostPort ? [{ protocol: 'TCP', container_port: 8080, host_port: options.hostPort }] : [],
    linux: { cgroup_parent: `${cgroupParent}/pod${uid}`, security_context: { namespace_options: { network, pid: 'POD', ipc: 'POD' } } },
  };
}

/** RunPodSandbox, removed (with its containers) when the test ends. */
async function runPod(config: PodSandboxConfig): Promise<string> {
  const { client } = containerd();
  const id = await client.runPodSandbox(config);
  onTestFinished(async () => {
    await client.stopPodSandbox(id).catch(() => undefined);
    await client.removePodSandbox(id).catch(() => undefined);
  });
  return id;
}

type ContainerOptions = Partial<ContainerConfig> & { name: string };

async function createContainer(sandboxId: string, sandbox: PodSandboxConfig, config: ContainerOptions, client = containerd().client): Promise<string> {
  const { name, ...rest } = config;
  return client.createContainer(sandboxId, { metadata: { name, attempt: 0 }, image: { image: BUSYBOX }, log_path: `${name}/0.log`, ...rest }, sandbox);
}

async function runContainer(sandboxId: string, sandbox: PodSandboxConfig, config: ContainerOptions, client = containerd().client): Promise<string> {
  const id = await createContainer(sandboxId, sandbox, config, client);
  await client.startContainer(id);
  return id;
}

/** A host-network pod with one running `sleep` container. */
async function sleeper(name: string, extra: Partial<ContainerConfig> = {}): Promise<{ sandbox: PodSandboxConfig; sandboxId: string; containerId: string }> {
  const sandbox = podConfig(name);
  const sandboxId = await runPod(sandbox);
  const containerId = await runContainer(sandboxId, sandbox, { name: 'app', command: ['sh', '-c', 'echo hi; exec sleep 3600'], ...extra });
  return { sandbox, sandboxId, containerId };
}

async function exec(containerId: string, script: string): Promise<string> {
  const res = await containerd().client.execSync(containerId, ['sh', '-c', script], 10);
  expect(res.exit_code, res.stderr.toString()).toBe(0);
  return res.stdout.toString();
}

async function errorOf(promise: Promise<unknown>): Promise<RuntimeError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RuntimeError);
  return err as RuntimeError;
}

describe('CriClient against a real containerd', () => {
  it('reports the runtime version and that runtime and network are ready', async () => {
    const { client } = containerd();
    expect(await client.version()).toMatchObject({ runtime_name: 'containerd', runtime_api_version: 'v1' });
    const conditions = Object.fromEntries((await client.status()).map((c) => [c.type, c.status]));
    expect(conditions).toEqual({ RuntimeReady: true, NetworkReady: true });
  });

  it('lists the offline images and answers null for an image that is not present', async () => {
    const { client } = containerd();
    const tags = (await client.listImages()).flatMap((i) => i.repo_tags);
    expect(tags).toEqual(expect.arrayContaining(['registry.k8s.io/pause:3.6', BUSYBOX, 'localhost/lite/busybox:v2']));
    const latest = await client.imageStatus(BUSYBOX);
    const v2 = await client.imageStatus('localhost/lite/busybox:v2');
    expect(latest?.id).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(v2?.id).not.toBe(latest?.id);
    expect(await client.imageStatus('localhost/lite/absent:1')).toBeNull();
  });

  it('fails a pull fast with a RuntimeError naming the image when no registry serves it', async () => {
    const started = Date.now();
    const err = await errorOf(containerd().client.pullImage('localhost/lite/absent:1'));
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(err.method).toBe('PullImage');
    expect(err.message).toContain('localhost/lite/absent:1');
    expect(err.runtimeMessage).toContain('localhost/lite/absent:1');
  });

  it('fails CreateContainer with ERR_NOT_FOUND for an image that is not present', async () => {
    const sandbox = podConfig('no-image');
    const sandboxId = await runPod(sandbox);
    const err = await errorOf(createContainer(sandboxId, sandbox, { name: 'app', image: { image: 'localhost/lite/absent:1' } }));
    expect(err.code).toBe('ERR_NOT_FOUND');
    expect(err.grpcCode).toBe(5);
  });

  it('runs a host-network container that logs in CRI format to log_directory/log_path', async () => {
    const { client } = containerd();
    const { sandbox, sandboxId, containerId } = await sleeper('logger');
    expect(await client.podSandboxStatus(sandboxId)).toMatchObject({ id: sandboxId, state: 'SANDBOX_READY', metadata: sandbox.metadata });
    const status = await client.containerStatus(containerId);
    expect(status).toMatchObject({ id: containerId, state: 'CONTAINER_RUNNING', image: { image: BUSYBOX } });
    expect(status.log_path).toBe(join(sandbox.log_directory!, 'app/0.log'));
    await eventually(() => expect(readFileSync(status.log_path, 'utf8')).toMatch(/^\d{4}-\d\d-\d\dT\S+Z stdout F hi$/m));
  });

  it('returns stdout, stderr and the exit code of execSync', async () => {
    const { containerId } = await sleeper('exec');
    const res = await containerd().client.execSync(containerId, ['sh', '-c', 'echo out; echo err >&2; exit 7'], 10);
    expect({ stdout: res.stdout.toString(), stderr: res.stderr.toString(), exit_code: res.exit_code }).toEqual({
      stdout: 'out\n',
      stderr: 'err\n',
      exit_code: 7,
    });
  });

  it('answers Exec, Attach and PortForward with one-time URLs on the loopback streaming server', async () => {
    const { client } = containerd();
    const { sandboxId, containerId } = await sleeper('stream-urls');
    const flags = { tty: false, stdin: false, stdout: true, stderr: true };
    const urls = [
      await client.exec({ container_id: containerId, cmd: ['true'], ...flags }),
      await client.attach({ container_id: containerId, ...flags }),
      await client.portForward(sandboxId, []),
    ];
    expect(urls.map((u) => new URL(u).pathname.split('/')[1])).toEqual(['exec', 'attach', 'portforward']);
    for (const url of urls) expect(new URL(url).hostname).toBe('127.0.0.1');
    expect((await errorOf(client.exec({ container_id: 'no-such-container', cmd: ['true'], ...flags }))).code).toBe('ERR_NOT_FOUND');
  });

  it('stops a running container within its timeout: EXITED by SIGTERM or SIGKILL', async () => {
    const { client } = containerd();
    const { containerId } = await sleeper('stopper');
    await client.stopContainer(containerId, 2);
    const status = await client.containerStatus(containerId);
    expect(status.state).toBe('CONTAINER_EXITED');
    expect([137, 143]).toContain(status.exit_code);
    expect(BigInt(status.finished_at)).toBeGreaterThan(0n);
  });

  it('reports exit code 3 and reason Error for a container that exits 3', async () => {
    const { client } = containerd();
    const sandbox = podConfig('failer');
    const containerId = await runContainer(await runPod(sandbox), sandbox, { name: 'app', command: ['sh', '-c', 'exit 3'] });
    await eventually(async () => expect(await client.containerStatus(containerId)).toMatchObject({ state: 'CONTAINER_EXITED', exit_code: 3, reason: 'Error' }));
  });

  it('fails StartContainer for a missing command with the runtime message; the status says StartError', async () => {
    const { client } = containerd();
    const sandbox = podConfig('bad-command');
    const containerId = await createContainer(await runPod(sandbox), sandbox, { name: 'app', command: ['/bin/does-not-exist'] });
    const err = await errorOf(client.startContainer(containerId));
    expect(err.code).toBe('ERR_ILLEGAL_STATE');
    expect(err.runtimeMessage).toContain('/bin/does-not-exist');
    expect(await client.containerStatus(containerId)).toMatchObject({ state: 'CONTAINER_EXITED', exit_code: 128, reason: 'StartError' });
  });

  it('gives a pod-network sandbox an IP in 198.51.100.0/24 where busybox httpd answers the host, also on its hostPort', async () => {
    const { client } = containerd();
    const hostPort = await freePort();
    const sandbox = podConfig('web', { network: 'POD', hostPort });
    const sandboxId = await runPod(sandbox);
    const script = 'mkdir -p /www && echo hello-from-pod > /www/index.html && exec httpd -f -p 8080 -h /www';
    await runContainer(sandboxId, sandbox, { name: 'httpd', command: ['sh', '-c', script] });
    const ip = (await client.podSandboxStatus(sandboxId)).network?.ip ?? '';
    expect(ip).toMatch(/^198\.51\.100\.\d+$/);
    for (const url of [`http://${ip}:8080/`, `http://127.0.0.1:${hostPort}/`]) {
      const body = await eventually(async () => {
        const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
        expect(res.status).toBe(200);
        return res.text();
      });
      expect(body).toBe('hello-from-pod\n');
    }
  });

  it('passes env values into the container', async () => {
    const { containerId } = await sleeper('env', {
      envs: [
        { key: 'GREETING', value: 'hello world' },
        { key: 'EMPTY', value: '' },
      ],
    });
    expect(await exec(containerId, 'echo "[$GREETING] [${EMPTY-unset}]"')).toBe('[hello world] []\n');
  });

  it('shows a bind-mounted host directory, read-only when asked', async () => {
    const dir = tempDir('kc-mount-');
    writeFileSync(join(dir, 'config.txt'), 'from the host\n');
    const { containerId } = await sleeper('mounter', { mounts: [{ container_path: '/etc/app', host_path: dir, readonly: true }] });
    expect(await exec(containerId, 'cat /etc/app/config.txt')).toBe('from the host\n');
    const write = await containerd().client.execSync(containerId, ['sh', '-c', 'echo x > /etc/app/new'], 10);
    expect(write.exit_code).not.toBe(0);
    expect(existsSync(join(dir, 'new'))).toBe(false);
  });

  it('applies the memory limit to the container cgroup under the pod cgroup_parent', async () => {
    const limit = String(64 * 1024 * 1024);
    const { sandbox, containerId } = await sleeper('limited', { linux: { resources: { memory_limit_in_bytes: limit } } });
    const cgroup = `${sandbox.linux!.cgroup_parent}/${containerId}`;
    // This VM runs cgroup v1 (hybrid); v2-only hosts name the file memory.max.
    const v1 = `/sys/fs/cgroup/memory${cgroup}/memory.limit_in_bytes`;
    const hostFile = existsSync(v1) ? v1 : `/sys/fs/cgroup${cgroup}/memory.max`;
    expect(readFileSync(hostFile, 'utf8').trim()).toBe(limit);
    const inside = existsSync(v1) ? '/sys/fs/cgroup/memory/memory.limit_in_bytes' : '/sys/fs/cgroup/memory.max';
    expect((await exec(containerId, `cat ${inside}`)).trim()).toBe(limit);
  });

  it('filters sandboxes and containers by label, sandbox and state', async () => {
    const { client } = containerd();
    const run = `r${Date.now()}`;
    const a = podConfig('label-a', { labels: { run, app: 'a' } });
    const b = podConfig('label-b', { labels: { run, app: 'b' } });
    const aId = await runPod(a);
    const bId = await runPod(b);
    const running = await runContainer(aId, a, { name: 'runner', labels: { run, role: 'runner' }, command: ['sleep', '3600'] });
    const done = await runContainer(aId, a, { name: 'done', labels: { run, role: 'done' }, command: ['true'] });
    await runContainer(bId, b, { name: 'other', labels: { run }, command: ['sleep', '3600'] });
    await eventually(async () => expect((await client.containerStatus(done)).state).toBe('CONTAINER_EXITED'));

    expect((await client.listPodSandbox({ labels: { run, app: 'a' } })).map((s) => s.id)).toEqual([aId]);
    expect((await client.listPodSandbox({ labels: { run } })).map((s) => s.id).sort()).toEqual([aId, bId].sort());
    expect((await client.listContainers({ labels: { run, role: 'runner' } })).map((c) => c.id)).toEqual([running]);
    expect((await client.listContainers({ podSandboxId: aId })).map((c) => c.id).sort()).toEqual([running, done].sort());
    expect((await client.listContainers({ podSandboxId: aId, state: 'CONTAINER_RUNNING' })).map((c) => c.id)).toEqual([running]);
    expect((await client.listContainers({ labels: { run }, state: 'CONTAINER_EXITED' })).map((c) => c.id)).toEqual([done]);

    await client.stopPodSandbox(bId);
    expect((await client.listPodSandbox({ labels: { run }, state: 'SANDBOX_NOTREADY' })).map((s) => s.id)).toEqual([bId]);
  });

  it('keeps sandboxes and containers running across a containerd restart, and the client reconnects', async () => {
    const c = containerd();
    const { sandboxId, containerId } = await sleeper('survivor');
    const before = await c.client.containerStatus(containerId);
    const oldPid = c.pid();
    await c.restart();
    expect(c.pid()).not.toBe(oldPid);
    await eventually(async () => {
      expect((await c.client.podSandboxStatus(sandboxId)).state).toBe('SANDBOX_READY');
      expect((await c.client.containerStatus(containerId)).state).toBe('CONTAINER_RUNNING');
    });
    expect((await c.client.listPodSandbox()).map((s) => s.id)).toContain(sandboxId);
    // The very same process: never restarted while containerd was away.
    expect((await c.client.containerStatus(containerId)).started_at).toBe(before.started_at);
    expect(await exec(containerId, 'echo alive')).toBe('alive\n');
  });

  it('leaves no sandbox, container or rootfs mount once every sandbox is stopped and removed', async () => {
    const { client, workdir } = containerd();
    await sleeper('last-1');
    const sandbox = podConfig('last-2', { network: 'POD' });
    await runContainer(await runPod(sandbox), sandbox, { name: 'app', command: ['sleep', '3600'] });
    for (const s of await client.listPodSandbox()) {
      await client.stopPodSandbox(s.id);
      await client.removePodSandbox(s.id);
    }
    expect(await client.listPodSandbox()).toEqual([]);
    expect(await client.listContainers()).toEqual([]);
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .filter((l) => l.includes(` ${workdir}/`));
    expect(mounts).toEqual([]);
  });
});

describe('stop-containerd.sh', () => {
  it('sweeps the pods, shims, mounts, NAT rules, cgroups and bridge of a containerd killed under running pods', async () => {
    const c = await startContainerd();
    const sandbox = podConfig('orphan', { network: 'POD', hostPort: await freePort() }, c);
    const sandboxId = await c.client.runPodSandbox(sandbox);
    await runContainer(sandboxId, sandbox, { name: 'app', command: ['sleep', '3600'] }, c.client);
    const natRules = (): string => execFileSync('iptables-save', ['-t', 'nat'], { encoding: 'utf8' });
    expect(natRules()).toContain(sandboxId);
    process.kill(c.pid(), 'SIGKILL');
    await c.stop();
    const processes = readdirSync('/proc').filter((p) => /^\d+$/.test(p) && cmdlineOf(p).includes(c.workdir));
    expect(processes).toEqual([]);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(c.workdir);
    expect(natRules()).not.toContain(sandboxId);
    // rmdir succeeds only once no process is left in the pod's cgroups.
    expect(existsSync(`/sys/fs/cgroup/memory${c.cgroupParent}`) || existsSync(`/sys/fs/cgroup${c.cgroupParent}`)).toBe(false);
    expect(existsSync(`/sys/class/net/${c.podBridge}`)).toBe(false);
    expect(existsSync(c.workdir)).toBe(false);
  });
});

function cmdlineOf(pid: string): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return '';
  }
}

describe('CriClient without a runtime', () => {
  it('fails a call to a missing socket with ERR_UNAVAILABLE', async () => {
    const client = new CriClient({ endpoint: 'unix:///tmp/kc-none/containerd.sock', callTimeoutMs: 5_000 });
    onTestFinished(() => client.close());
    const err = await errorOf(client.version());
    expect(err.code).toBe('ERR_UNAVAILABLE');
    expect(err.grpcCode).toBe(14);
  });

  it('accepts unix:// URLs and bare socket paths, and refuses anything else', () => {
    expect(criSocketPath('unix:///run/containerd/containerd.sock')).toBe('/run/containerd/containerd.sock');
    expect(criSocketPath('unix:/run/containerd/containerd.sock')).toBe('/run/containerd/containerd.sock');
    expect(criSocketPath('/run/containerd/containerd.sock')).toBe('/run/containerd/containerd.sock');
    expect(() => criSocketPath('tcp://127.0.0.1:1234')).toThrow(ConfigError);
    expect(() => criSocketPath('run/containerd.sock')).toThrow(ConfigError);
  });
});
