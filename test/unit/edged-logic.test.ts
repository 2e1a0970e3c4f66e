import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ContainerConfigError, containerEnv, expand, type ConfigSource } from '../../edgecore/edged/container-env.js';
import { CrashBackoff } from '../../edgecore/edged/crash-backoff.js';
import type { ContainerStatus, PodSandbox } from '../../edgecore/edged/cri/cri-types.js';
import { defaultPullPolicy } from '../../edgecore/edged/image-manager.js';
import { PodManager } from '../../edgecore/edged/pod-manager.js';
import { podStatus } from '../../edgecore/edged/pod-status.js';
import type { PodSync } from '../../edgecore/edged/pod-sync.js';
import type { ProbeManager } from '../../edgecore/edged/probe-manager.js';
import type { Pod } from '../../edgecore/edged/pod-types.js';
import { parseQuantity } from '../../edgecore/edged/quantity.js';
import { containerHash, linuxResources } from '../../edgecore/edged/runtime-config.js';
import type { PodRuntime, RuntimeState } from '../../edgecore/edged/runtime-state.js';
import { StaticPods } from '../../edgecore/edged/static-pods.js';
import { silentLogger } from '../../shared/logger.js';
import { eventually } from '../support/harness.js';

const pod = (spec: Partial<Pod['spec']> = {}): Pod => ({
  metadata: { name: 'p', namespace: 'ns', uid: 'u1', labels: { app: 'x' } },
  spec: { nodeName: 'n1', containers: [{ name: 'c', image: 'img' }], ...spec },
});
const source = (cms: Record<string, Record<string, string>> = {}, secrets: Record<string, Record<string, string>> = {}): ConfigSource => ({
  configMap: (_ns, name) => (cms[name] ? { metadata: { name, uid: name }, data: cms[name] } : undefined),
  secret: (_ns, name) =>
    secrets[name]
      ? { metadata: { name, uid: name }, data: Object.fromEntries(Object.entries(secrets[name]!).map(([k, v]) => [k, Buffer.from(v).toString('base64')])) }
      : undefined,
});
const addresses = { podIP: '198.51.100.7', hostIP: '192.0.2.1' };

describe('container environment (kubelet rules)', () => {
  it('applies envFrom first, env after, and expands $(VAR) references to earlier variables', () => {
    const p = pod();
    const env = containerEnv(
      p,
      {
        name: 'c',
        envFrom: [{ prefix: 'CM_', configMapRef: { name: 'cfg' } }, { secretRef: { name: 'sec' } }],
        env: [
          { name: 'A', value: 'a' },
          { name: 'B', value: '$(A)-$(CM_k)-$(UNKNOWN)-$$(A)' },
          { name: 'IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
          { name: 'LBL', valueFrom: { fieldRef: { fieldPath: "metadata.labels['app']" } } },
          { name: 'pw', value: 'overridden' },
        ],
      },
      source({ cfg: { k: 'v' } }, { sec: { pw: 'secret' } }),
      addresses,
    );
    expect(Object.fromEntries(env.map((e) => [e.key, e.value]))).toEqual({
      CM_k: 'v',
      pw: 'overridden',
      A: 'a',
      B: 'a-v-$(UNKNOWN)-$(A)',
      IP: '198.51.100.7',
      LBL: 'x',
    });
  });

  it('refuses missing ConfigMaps and keys unless optional', () => {
    expect(() =>
      containerEnv(pod(), { name: 'c', env: [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'gone', key: 'k' } } }] }, source(), addresses),
    ).toThrow(new ContainerConfigError('configmap "gone" not found'));
    expect(() =>
      containerEnv(
        pod(),
        { name: 'c', env: [{ name: 'X', valueFrom: { secretKeyRef: { name: 's', key: 'nope' } } }] },
        source({}, { s: { a: 'b' } }),
        addresses,
      ),
    ).toThrow(/couldn't find key nope in secret "s"/);
    expect(
      containerEnv(pod(), { name: 'c', env: [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'gone', key: 'k', optional: true } } }] }, source(), addresses),
    ).toEqual([]);
  });

  it('expands only defined names', () => {
    expect(expand('$(A) $(B) $$ $$(A)', new Map([['A', '1']]))).toBe('1 $(B) $ $(A)');
  });
});

describe('resources and quantities', () => {
  it('parses Kubernetes quantities', () => {
    expect([parseQuantity('100m'), parseQuantity('1.5'), parseQuantity('64Mi'), parseQuantity('1G'), parseQuantity('129e6'), parseQuantity('abc')]).toEqual([
      0.1,
      1.5,
      67108864,
      1e9,
      129e6,
      undefined,
    ]);
  });

  it('maps requests to shares and limits to a CFS quota and a memory limit', () => {
    expect(linuxResources({ name: 'c', resources: { requests: { cpu: '250m' }, limits: { cpu: '500m', memory: '64Mi' } } })).toEqual({
      cpu_shares: '256',
      cpu_period: '100000',
      cpu_quota: '50000',
      memory_limit_in_bytes: '67108864',
    });
    expect(linuxResources({ name: 'c' })).toEqual({});
  });

  it('changes the container hash with the image, not with probes', () => {
    const base = { name: 'c', image: 'a:1' };
    expect(containerHash(base)).not.toBe(containerHash({ ...base, image: 'a:2' }));
    expect(containerHash(base)).toBe(containerHash({ ...base, readinessProbe: { exec: { command: ['true'] } } }));
    // The same spec written in another key order, or with empty fields, is the same container.
    expect(containerHash({ image: 'a:1', name: 'c', command: ['x'], resources: {} } as never)).toBe(
      containerHash({ name: 'c', command: ['x'], image: 'a:1', workingDir: undefined }),
    );
  });

  it('defaults the pull policy as the API server does', () => {
    expect(['busybox', 'busybox:latest', 'r/x:1.2', 'r/x@sha256:ab', 'localhost:5000/x'].map(defaultPullPolicy)).toEqual([
      'Always',
      'Always',
      'IfNotPresent',
      'IfNotPresent',
      'Always',
    ]);
  });
});

describe('crash back-off', () => {
  it('restarts at once, then waits twice as long each time, up to the maximum', () => {
    let now = 0;
    const b = new CrashBackoff(10, 40, () => now);
    expect(b.waitMs('k', 0, 0)).toBe(0);
    expect(b.waitMs('k', 0, 0)).toBe(10);
    now = 10;
    expect(b.waitMs('k', 0, 0)).toBe(0);
    expect(b.currentMs('k')).toBe(20);
    now = 100;
    expect(b.waitMs('k', 95, 100)).toBe(20);
    now = 1_000;
    expect(b.waitMs('k', 960, 970)).toBe(0);
    expect(b.currentMs('k')).toBe(40);
    // A container that ran long enough starts over.
    expect(b.waitMs('k', 0, 500)).toBe(0);
    expect(b.currentMs('k')).toBe(10);
  });
});

const sandbox: PodSandbox = {
  id: 's1',
  metadata: { name: 'p', uid: 'u1', namespace: 'ns', attempt: 0 },
  state: 'SANDBOX_READY',
  created_at: '1',
  labels: {},
  annotations: {},
};
function cs(name: string, attempt: number, state: ContainerStatus['state'], exit = 0): { container: never; status: ContainerStatus } {
  return {
    container: { metadata: { name, attempt } } as never,
    status: {
      id: `${name}-${attempt}`,
      metadata: { name, attempt },
      state,
      created_at: '1',
      started_at: '1000000000',
      finished_at: state === 'CONTAINER_EXITED' ? '2000000000' : '0',
      exit_code: exit,
      image: null,
      image_ref: 'sha256:x',
      reason: '',
      message: '',
      labels: {},
      annotations: {},
      log_path: '',
    },
  };
}
const statusOf = (p: Pod, runtime: PodRuntime, waiting = new Map()) =>
  podStatus({
    pod: p,
    runtime,
    waiting,
    ready: () => undefined,
    started: () => undefined,
    hostIP: '192.0.2.1',
    podIP: '198.51.100.7',
    nowIso: '2026-12-01T00:00:00Z',
  });

describe('pod status', () => {
  it('is Running and Ready with a running container, and names the waiting reason of a crashed one', () => {
    const running = statusOf(pod(), { uid: 'u1', sandboxes: [sandbox], containers: [cs('c', 0, 'CONTAINER_RUNNING')] });
    expect(running.phase).toBe('Running');
    expect(running.conditions!.find((c) => c.type === 'Ready')!.status).toBe('True');
    expect(running.containerStatuses![0]).toMatchObject({ ready: true, restartCount: 0, containerID: 'containerd://c-0', state: { running: {} } });
    const crashed = statusOf(
      pod(),
      { uid: 'u1', sandboxes: [sandbox], containers: [cs('c', 2, 'CONTAINER_EXITED', 1), cs('c', 1, 'CONTAINER_EXITED', 1)] },
      new Map([['c', { reason: 'CrashLoopBackOff', message: 'back-off' }]]),
    );
    expect(crashed.phase).toBe('Running');
    expect(crashed.containerStatuses![0]).toMatchObject({
      ready: false,
      restartCount: 2,
      state: { waiting: { reason: 'CrashLoopBackOff' } },
      lastState: { terminated: { exitCode: 1, reason: 'Error' } },
    });
  });

  it('does not call a container ready or started before its probes have said so', () => {
    const probed = pod({ containers: [{ name: 'c', image: 'img', readinessProbe: { tcpSocket: { port: 80 } }, startupProbe: { tcpSocket: { port: 80 } } }] });
    const s = statusOf(probed, { uid: 'u1', sandboxes: [sandbox], containers: [cs('c', 0, 'CONTAINER_RUNNING')] });
    expect(s.containerStatuses![0]).toMatchObject({ ready: false, started: false });
    expect(s.conditions!.find((c) => c.type === 'Ready')!.status).toBe('False');
  });

  it('follows the restart policy to Succeeded or Failed, and waits for init containers', () => {
    const done = { uid: 'u1', sandboxes: [sandbox], containers: [cs('c', 0, 'CONTAINER_EXITED', 0)] };
    expect(statusOf(pod({ restartPolicy: 'OnFailure' }), done).phase).toBe('Succeeded');
    expect(statusOf(pod({ restartPolicy: 'Always' }), done).phase).toBe('Running');
    expect(statusOf(pod({ restartPolicy: 'Never' }), { ...done, containers: [cs('c', 0, 'CONTAINER_EXITED', 3)] }).phase).toBe('Failed');
    const init = pod({ initContainers: [{ name: 'i', image: 'img' }] });
    const initializing = statusOf(init, { uid: 'u1', sandboxes: [sandbox], containers: [cs('i', 0, 'CONTAINER_RUNNING')] });
    expect(initializing.phase).toBe('Pending');
    expect(initializing.containerStatuses![0]!.state.waiting!.reason).toBe('PodInitializing');
    expect(initializing.conditions!.find((c) => c.type === 'Initialized')!.status).toBe('False');
  });
});

describe('static pod manifests', () => {
  it('names static pods after the node, gives them a content uid, and skips broken files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ke-static-'));
    writeFileSync(join(dir, 'a.yaml'), 'apiVersion: v1\nkind: Pod\nmetadata: {name: agent}\nspec: {containers: [{name: c, image: busybox}]}\n');
    writeFileSync(join(dir, 'b.yaml'), 'kind: Pod\nmetadata: {name: Bad_Name}\nspec: {containers: [{name: c, image: x}]}\n');
    writeFileSync(join(dir, 'c.yaml'), '{{{ not yaml');
    const pods = [...new StaticPods({ path: dir, nodeName: 'edge-1', logger: silentLogger() }).scan().values()];
    expect(pods.map((p) => [p.metadata.name, p.metadata.namespace, p.spec.nodeName, p.metadata.annotations!['kubernetes.io/config.source']])).toEqual([
      ['agent-edge-1', 'default', 'edge-1', 'file'],
    ]);
    expect(pods[0]!.metadata.uid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-/);
    expect(StaticPods.mirrorOf(pods[0]!).metadata.annotations!['kubernetes.io/config.mirror']).toBe(pods[0]!.metadata.uid);
  });
});

describe('pod workers', () => {
  /** A PodManager over a runtime and a sync the test scripts; `syncs` counts sync attempts. */
  function manager(opts: { relist: () => Promise<Set<string>>; sync: () => Promise<void> }): { pods: PodManager; syncs: () => number } {
    let syncs = 0;
    const empty = (uid: string): PodRuntime => ({ uid, sandboxes: [], containers: [] });
    const pods = new PodManager({
      runtime: { relist: opts.relist, uids: () => [], pod: empty } as unknown as RuntimeState,
      sync: {
        sync: async () => {
          syncs++;
          await opts.sync();
          return { waiting: new Map(), podIP: '' };
        },
        kill: async () => undefined,
      } as unknown as PodSync,
      probes: { ready: () => false, started: () => false } as unknown as ProbeManager,
      pod: (uid) => (uid === 'u1' ? pod() : undefined),
      podUids: () => ['u1'],
      report: () => undefined,
      confirmDeletion: () => undefined,
      hostIP: '192.0.2.1',
      relistIntervalMs: 20,
      resyncIntervalMs: 3_600_000,
      logger: silentLogger(),
    });
    return { pods, syncs: () => syncs };
  }

  it('tries a failed sync again by itself, though no relist reports a change', async () => {
    let fail = true;
    const m = manager({
      relist: async () => new Set(),
      sync: async () => {
        if (fail) {
          fail = false;
          throw new Error('StopContainer: the runtime went away');
        }
      },
    });
    await m.pods.start();
    onTestFinished(() => m.pods.stop());
    await eventually(() => expect(m.syncs()).toBe(2), 10_000, 10);
  });

  it('syncs every pod once the runtime answers again after failing', async () => {
    let down = true;
    const m = manager({
      relist: async () => {
        if (down) throw new Error('runtime down');
        return new Set();
      },
      sync: async () => undefined,
    });
    await m.pods.start();
    onTestFinished(() => m.pods.stop());
    await eventually(() => expect(m.syncs()).toBe(1), 10_000, 10);
    down = false;
    await eventually(() => expect(m.syncs()).toBe(2), 10_000, 10);
  });
});
