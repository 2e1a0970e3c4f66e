import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { EdgeCore } from '../../edgecore/edgecore.js';
import { POD_UID_LABEL } from '../../edgecore/edged/runtime-config.js';
import { eventually, tcpProxy, tempDir, useControlPlane, type TcpProxy } from '../support/harness.js';
import { cloudSetup, edgeSetup, startCloud, startEdgeInProcess, type Cloud, type EdgeSetup } from '../support/daemons.js';
import type { ControlPlane } from '../support/control-plane.js';
import { useContainerd } from '../support/containerd.js';
import { startOciRegistry } from '../support/oci-registry.js';
import { freePort } from '../support/harness.js';

const controlPlane = useControlPlane({ controllerManagerArgs: ['--node-monitor-grace-period=20s', '--node-monitor-period=2s'] });
const containerd = useContainerd();
const IMAGE = 'localhost/lite/busybox:latest';

interface Edge {
  cp: ControlPlane;
  cloud: Cloud;
  node: string;
  setup: EdgeSetup;
  proxy: TcpProxy;
  core(): EdgeCore;
  restart(): Promise<EdgeCore>;
  stop(): Promise<void>;
  dir: string;
}

/** A cluster, cloudcore, and one edge running its pods on the test's containerd (through a cuttable link). */
async function edge(node: string): Promise<Edge> {
  const cp = controlPlane();
  const dir = tempDir('ke-edged-');
  const cloud = await startCloud(await cloudSetup(dir, { kubeconfig: cp.kubeconfig }));
  const proxy = await tcpProxy(cloud.setup.hubPort);
  const c = containerd();
  const setup = edgeSetup(dir, node, cloud.setup, {
    hubPort: proxy.port,
    edged: {
      enable: true,
      nodeIP: '127.0.0.1',
      runtimeEndpoint: c.endpoint,
      rootDirectory: join(dir, 'pods'),
      podLogsDirectory: join(dir, 'logs'),
      cgroupParent: c.cgroupParent,
      staticPodPath: join(dir, 'manifests'),
      relistIntervalMs: 300,
      crashLoopBackOffMs: 500,
      crashLoopBackOffMaxMs: 2_000,
    },
  });
  let core = await startEdgeInProcess(setup, await cloud.token());
  onTestFinished(async () => {
    await cp.kubectl(['delete', 'node', node, '--ignore-not-found', '--wait=false']);
  });
  const ready = async (): Promise<void> =>
    eventually(async () => expect(await cp.kubectlOk(['get', 'node', node, '--no-headers'])).toMatch(/\sReady\s/), 30_000, 200);
  await ready();
  return {
    cp,
    cloud,
    node,
    setup,
    proxy,
    dir,
    core: () => core,
    async restart() {
      await core.stop();
      core = await startEdgeInProcess(setup);
      return core;
    },
    stop: () => core.stop(),
  };
}

const json = async (cp: ControlPlane, args: string[]): Promise<any> => JSON.parse(await cp.kubectlOk([...args, '-o', 'json']));

/** Containers containerd runs for a pod uid. */
async function containersOf(uid: string): Promise<Array<{ id: string; name: string; state: string; attempt: number }>> {
  const list = await containerd().client.listContainers({ labels: { [POD_UID_LABEL]: uid } });
  return list.map((c) => ({ id: c.id, name: c.metadata.name, state: c.state, attempt: c.metadata.attempt }));
}

function httpGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { timeout: 2_000 }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

function deployment(name: string, node: string, image: string, replicas: number): string {
  return JSON.stringify({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: 'default' },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      strategy: { rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          nodeSelector: { 'kubernetes.io/hostname': node },
          terminationGracePeriodSeconds: 2,
          containers: [
            {
              name: 'web',
              image,
              imagePullPolicy: 'IfNotPresent',
              command: [
                'sh',
                '-c',
                'mkdir -p /www && echo "hello from $HOSTNAME ${LITE_IMAGE_VERSION:-v1}" > /www/index.html && exec busybox httpd -f -p 8080 -h /www',
              ],
              ports: [{ containerPort: 8080 }],
              readinessProbe: { httpGet: { path: '/', port: 8080 }, periodSeconds: 1 },
            },
          ],
        },
      },
    },
  });
}

describe('edged: pods on containerd, driven by a real cluster (scheduler, controller-manager, kubectl)', () => {
  it('runs a Deployment scheduled to the edge and shows it Running; scale, rolling update and delete work', async () => {
    const e = await edge('pods-edge-a');
    await e.cp.kubectlOk(['apply', '-f', '-'], deployment('web', e.node, IMAGE, 2));
    const pods = async (): Promise<any[]> => (await json(e.cp, ['get', 'pods', '-l', 'app=web'])).items;
    const running = async (n: number, image: string): Promise<any[]> =>
      eventually(
        async () => {
          const items = (await pods()).filter((p: any) => !p.metadata.deletionTimestamp);
          expect(
            items.map((p: any) => [p.spec.containers[0].image, p.status.phase, p.status.conditions?.find((c: any) => c.type === 'Ready')?.status]),
          ).toEqual(Array(n).fill([image, 'Running', 'True']));
          return items;
        },
        60_000,
        300,
      );

    const first = await running(2, IMAGE);
    for (const p of first) {
      expect(p.spec.nodeName).toBe(e.node);
      expect(p.status.podIP).toMatch(/^198\.51\.100\./);
      expect(await containersOf(p.metadata.uid)).toEqual([expect.objectContaining({ name: 'web', state: 'CONTAINER_RUNNING' })]);
      expect(await httpGet(`http://${p.status.podIP}:8080/`)).toMatch(/^hello from .* v1/);
    }

    await e.cp.kubectlOk(['scale', 'deployment', 'web', '--replicas=3']);
    await running(3, IMAGE);

    await e.cp.kubectlOk(['set', 'image', 'deployment/web', 'web=localhost/lite/busybox:v2']);
    const updated = await running(3, 'localhost/lite/busybox:v2');
    // The old pods are gone from the API (edged confirmed their deletion) and from containerd.
    await eventually(async () => expect((await pods()).length).toBe(3), 30_000, 300);
    await eventually(
      async () => {
        for (const p of first) expect(await containersOf(p.metadata.uid)).toEqual([]);
      },
      10_000,
      200,
    );
    expect(await httpGet(`http://${updated[0].status.podIP}:8080/`)).toMatch(/v2/);

    await e.cp.kubectlOk(['delete', 'deployment', 'web']);
    await eventually(async () => expect(await pods()).toEqual([]), 30_000, 300);
    await eventually(
      async () => {
        for (const p of updated) expect(await containersOf(p.metadata.uid)).toEqual([]);
      },
      10_000,
      200,
    );
  });

  it('runs init containers first and gives containers their env, volumes, resources and logs', async () => {
    const e = await edge('pods-edge-b');
    const hostDir = join(e.dir, 'host-data');
    mkdirSync(hostDir, { recursive: true });
    writeFileSync(join(hostDir, 'motd'), 'from the host');
    await e.cp.kubectlOk(['create', 'configmap', 'app-config', '--from-literal=greeting=hello', '--from-literal=mode=fast']);
    await e.cp.kubectlOk(['create', 'secret', 'generic', 'app-secret', '--from-literal=pw=s3cret']);
    await e.cp.kubectlOk(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'full', namespace: 'default', labels: { tier: 'demo' } },
        spec: {
          nodeName: e.node,
          terminationGracePeriodSeconds: 1,
          initContainers: [
            {
              name: 'prepare',
              image: IMAGE,
              imagePullPolicy: 'IfNotPresent',
              command: ['sh', '-c', 'echo prepared > /work/ready'],
              volumeMounts: [{ name: 'work', mountPath: '/work' }],
            },
          ],
          containers: [
            {
              name: 'app',
              image: IMAGE,
              imagePullPolicy: 'IfNotPresent',
              command: ['sh', '-c', 'echo "started $(GREETING)"; exec sleep 3600'],
              env: [
                { name: 'PLAIN', value: 'plain-value' },
                { name: 'GREETING', valueFrom: { configMapKeyRef: { name: 'app-config', key: 'greeting' } } },
                { name: 'PW', valueFrom: { secretKeyRef: { name: 'app-secret', key: 'pw' } } },
                { name: 'MY_POD', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                { name: 'COMBINED', value: '$(PLAIN)-$(MY_POD)' },
              ],
              envFrom: [{ prefix: 'CFG_', configMapRef: { name: 'app-config' } }],
              resources: { limits: { memory: '64Mi', cpu: '500m' } },
              volumeMounts: [
                { name: 'work', mountPath: '/work' },
                { name: 'cfg', mountPath: '/cfg' },
                { name: 'sec', mountPath: '/sec', readOnly: true },
                { name: 'host', mountPath: '/host' },
                { name: 'proj', mountPath: '/proj' },
              ],
            },
          ],
          volumes: [
            { name: 'work', emptyDir: {} },
            { name: 'cfg', configMap: { name: 'app-config' } },
            { name: 'sec', secret: { secretName: 'app-secret' } },
            { name: 'host', hostPath: { path: hostDir, type: 'Directory' } },
            {
              name: 'proj',
              projected: {
                sources: [
                  { configMap: { name: 'app-config', items: [{ key: 'mode', path: 'mode.txt' }] } },
                  { downwardAPI: { items: [{ path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } }] } },
                ],
              },
            },
          ],
        },
      }),
    );
    const pod = await eventually(
      async () => {
        const p = await json(e.cp, ['get', 'pod', 'full']);
        expect(p.status.phase).toBe('Running');
        expect(p.status.initContainerStatuses[0].state.terminated).toMatchObject({ exitCode: 0, reason: 'Completed' });
        return p;
      },
      60_000,
      300,
    );
    const app = (await containersOf(pod.metadata.uid)).find((c) => c.name === 'app' && c.state === 'CONTAINER_RUNNING')!;
    const sh = async (cmd: string): Promise<string> => (await containerd().client.execSync(app.id, ['sh', '-c', cmd], 10)).stdout.toString().trim();
    expect(await sh('cat /work/ready')).toBe('prepared');
    expect(await sh('echo $PLAIN $GREETING $PW $MY_POD $COMBINED $CFG_mode')).toBe('plain-value hello s3cret full plain-value-full fast');
    expect(await sh('cat /cfg/greeting /sec/pw /host/motd /proj/mode.txt /proj/labels')).toBe('hellos3cretfrom the hostfasttier="demo"');
    // The Secret's files on the host are root's alone; the container still reads them (above).
    expect(statSync(join(e.dir, 'pods', pod.metadata.uid)).mode & 0o777).toBe(0o700);
    expect(await sh('cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max')).toBe(String(64 * 1024 * 1024));
    expect(await sh('cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d" " -f1 /sys/fs/cgroup/cpu.max')).toBe('50000');
    // Logs in CRI format at <podLogsDirectory>/<namespace>_<pod>_<uid>/<container>/<restart>.log.
    const logDir = join(e.dir, 'logs', `default_full_${pod.metadata.uid}`);
    expect(readdirSync(logDir).sort()).toEqual(['app', 'prepare']);
    expect(readFileSync(join(logDir, 'app', '0.log'), 'utf8')).toMatch(/^\S+Z stdout F started hello$/m);

    // A ConfigMap change reaches the mounted files of the running container (its env stays, as in Kubernetes).
    await e.cp.kubectlOk(['patch', 'configmap', 'app-config', '-p', '{"data":{"greeting":"changed"}}']);
    await eventually(async () => expect(await sh('cat /cfg/greeting')).toBe('changed'), 20_000, 300);
    await e.cp.kubectlOk(['delete', 'pod', 'full', '--wait=true', '--timeout=30s']);
  });

  it('restarts crashing containers with back-off, follows restartPolicy Never and OnFailure, and restarts on a failed liveness probe', async () => {
    const e = await edge('pods-edge-c');
    const pod = (name: string, restartPolicy: string, command: string, extra: object = {}): string =>
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: 'default' },
        spec: {
          nodeName: e.node,
          restartPolicy,
          terminationGracePeriodSeconds: 1,
          containers: [{ name: 'c', image: IMAGE, imagePullPolicy: 'IfNotPresent', command: ['sh', '-c', command], ...extra }],
        },
      });
    await e.cp.kubectlOk(['apply', '-f', '-'], pod('crasher', 'Always', 'echo boom; exit 1'));
    await e.cp.kubectlOk(['apply', '-f', '-'], pod('once-failing', 'Never', 'exit 3'));
    await e.cp.kubectlOk(['apply', '-f', '-'], pod('once-ok', 'OnFailure', 'exit 0'));
    await e.cp.kubectlOk(
      ['apply', '-f', '-'],
      pod('unhealthy', 'Always', 'touch /tmp/alive; sleep 2; rm /tmp/alive; exec sleep 3600', {
        livenessProbe: { exec: { command: ['test', '-f', '/tmp/alive'] }, periodSeconds: 1, failureThreshold: 2 },
      }),
    );

    const status = async (name: string): Promise<any> => (await json(e.cp, ['get', 'pod', name])).status;
    let sawBackOff = false;
    await eventually(
      async () => {
        const s = (await status('crasher')).containerStatuses[0];
        if (s.state.waiting?.reason === 'CrashLoopBackOff') sawBackOff = true;
        expect(s.restartCount).toBeGreaterThanOrEqual(3);
        expect(s.lastState.terminated).toMatchObject({ exitCode: 1, reason: 'Error' });
        expect(sawBackOff).toBe(true);
      },
      60_000,
      100,
    );
    await eventually(
      async () =>
        expect(await status('once-failing')).toMatchObject({
          phase: 'Failed',
          containerStatuses: [{ restartCount: 0, state: { terminated: { exitCode: 3 } } }],
        }),
      30_000,
      200,
    );
    await eventually(
      async () =>
        expect(await status('once-ok')).toMatchObject({
          phase: 'Succeeded',
          containerStatuses: [{ restartCount: 0, state: { terminated: { exitCode: 0, reason: 'Completed' } } }],
        }),
      30_000,
      200,
    );
    await eventually(async () => expect((await status('unhealthy')).containerStatuses[0].restartCount).toBeGreaterThanOrEqual(1), 60_000, 200);
    // The kubelet's events: the back-off and the failed probe are in `kubectl get events`.
    await eventually(
      async () => {
        const reasons = (await json(e.cp, ['get', 'events'])).items
          .filter((ev: any) => ev.source?.host === e.node)
          .map((ev: any) => `${ev.involvedObject.name}:${ev.reason}`);
        expect(reasons).toEqual(expect.arrayContaining(['crasher:BackOff', 'crasher:Started', 'unhealthy:Unhealthy', 'unhealthy:Killing']));
      },
      20_000,
      300,
    );
    await e.cp.kubectlOk(['delete', 'pod', 'crasher', 'once-failing', 'once-ok', 'unhealthy', '--wait=true', '--timeout=30s']);
  });

  it('says why a pod cannot run (ErrImagePull, CreateContainerConfigError, a missing ConfigMap volume) and keeps serving the others', async () => {
    const e = await edge('pods-edge-d');
    const pod = (name: string, container: object, volumes: object[] = []): string =>
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: 'default' },
        spec: {
          nodeName: e.node,
          terminationGracePeriodSeconds: 1,
          volumes,
          containers: [{ name: 'c', image: IMAGE, imagePullPolicy: 'IfNotPresent', command: ['sleep', '3600'], ...container }],
        },
      });
    await e.cp.kubectlOk(['apply', '-f', '-'], pod('healthy', {}));
    const healthy = await eventually(
      async () => {
        const p = await json(e.cp, ['get', 'pod', 'healthy']);
        expect(p.status.phase).toBe('Running');
        return p;
      },
      30_000,
      200,
    );
    const [before] = await containersOf(healthy.metadata.uid);

    await e.cp.kubectlOk(['apply', '-f', '-'], pod('no-image', { image: 'localhost/nope/missing:1.0' }));
    await e.cp.kubectlOk(['apply', '-f', '-'], pod('bad-ref', { env: [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'absent-config', key: 'k' } } }] }));
    await e.cp.kubectlOk(
      ['apply', '-f', '-'],
      pod('no-volume', { volumeMounts: [{ name: 'cfg', mountPath: '/cfg' }] }, [{ name: 'cfg', configMap: { name: 'absent-volume' } }]),
    );
    const waiting = async (name: string): Promise<any> => (await json(e.cp, ['get', 'pod', name])).status.containerStatuses?.[0]?.state?.waiting;
    await eventually(
      async () => expect(await waiting('no-image')).toMatchObject({ reason: 'ErrImagePull', message: expect.stringContaining('localhost/nope/missing:1.0') }),
      30_000,
      200,
    );
    await eventually(
      async () => expect(await waiting('bad-ref')).toMatchObject({ reason: 'CreateContainerConfigError', message: 'configmap "absent-config" not found' }),
      30_000,
      200,
    );
    await eventually(
      async () => expect(await waiting('no-volume')).toMatchObject({ reason: 'ContainerCreating', message: 'configmap "absent-volume" not found' }),
      30_000,
      200,
    );
    await eventually(
      async () => {
        const reasons = (await json(e.cp, ['get', 'events'])).items
          .filter((ev: any) => ev.source?.host === e.node && ev.type === 'Warning')
          .map((ev: any) => `${ev.involvedObject.name}:${ev.reason}`);
        expect(reasons).toEqual(expect.arrayContaining(['no-image:Failed', 'bad-ref:Failed', 'no-volume:FailedMount']));
      },
      20_000,
      300,
    );

    // Fixing the cause is enough: the ConfigMap appears and the pod starts.
    await e.cp.kubectlOk(['create', 'configmap', 'absent-volume', '--from-literal=a=b']);
    await eventually(async () => expect((await json(e.cp, ['get', 'pod', 'no-volume'])).status.phase).toBe('Running'), 30_000, 200);
    // The healthy pod was never touched.
    expect(await containersOf(healthy.metadata.uid)).toEqual([before]);
    expect((await json(e.cp, ['get', 'pod', 'healthy'])).status.containerStatuses[0].restartCount).toBe(0);
    await e.cp.kubectlOk(['delete', 'pod', 'healthy', 'no-image', 'bad-ref', 'no-volume', '--wait=true', '--timeout=30s']);
  });

  it('stops containers gracefully within terminationGracePeriodSeconds when a pod is deleted', async () => {
    const e = await edge('pods-edge-e');
    const pod = (name: string, command: string, grace: number): string =>
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: 'default' },
        spec: {
          nodeName: e.node,
          terminationGracePeriodSeconds: grace,
          containers: [{ name: 'c', image: IMAGE, imagePullPolicy: 'IfNotPresent', command: ['sh', '-c', command] }],
        },
      });
    await e.cp.kubectlOk(['apply', '-f', '-'], pod('polite', "trap 'echo got TERM; exit 0' TERM; echo up; while true; do sleep 0.1; done", 30));
    await e.cp.kubectlOk(['apply', '-f', '-'], pod('stubborn', "trap '' TERM; echo up; while true; do sleep 0.1; done", 2));
    const uids = await eventually(
      async () => {
        const items = (await json(e.cp, ['get', 'pods'])).items.filter((p: any) => ['polite', 'stubborn'].includes(p.metadata.name));
        expect(items.map((p: any) => p.status.phase)).toEqual(['Running', 'Running']);
        return Object.fromEntries(items.map((p: any) => [p.metadata.name, p.metadata.uid]));
      },
      30_000,
      200,
    );
    await e.cp.kubectlOk(['delete', 'pod', 'polite', 'stubborn', '--wait=true', '--timeout=60s']);
    // polite exited on SIGTERM (its log says so); stubborn ignored it and was killed when its 2 s ran out.
    const log = (name: string): string => readFileSync(join(e.dir, 'logs', `default_${name}_${uids[name]}`, 'c', '0.log'), 'utf8');
    expect(log('polite')).toMatch(/stdout F got TERM/);
    expect(log('stubborn')).not.toMatch(/TERM/);
  });

  it('keeps pods through an edgecore restart (adopted, not restarted), a reboot without the cloud, and a long outage', async () => {
    const e = await edge('pods-edge-f');
    const pod = (name: string, command: string): string =>
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: 'default' },
        spec: {
          nodeName: e.node,
          terminationGracePeriodSeconds: 1,
          containers: [{ name: 'c', image: IMAGE, imagePullPolicy: 'IfNotPresent', command: ['sh', '-c', command] }],
        },
      });
    await e.cp.kubectlOk(['apply', '-f', '-'], pod('steady', 'exec sleep 3600'));
    await e.cp.kubectlOk(['apply', '-f', '-'], pod('flaky', 'sleep 2; exit 1'));
    const steady = await eventually(
      async () => {
        const p = await json(e.cp, ['get', 'pod', 'steady']);
        expect(p.status.phase).toBe('Running');
        return p;
      },
      30_000,
      200,
    );
    const flakyUid = (await json(e.cp, ['get', 'pod', 'flaky'])).metadata.uid;
    const [running] = await containersOf(steady.metadata.uid);

    // 1. edgecore restarts: the running container is adopted, same id, no restart.
    await e.restart();
    await eventually(() => expect(e.core().edgeHub.status).toMatchObject({ type: 'connected', synced: true }));
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await containersOf(steady.metadata.uid)).toEqual([running]);
    expect((await json(e.cp, ['get', 'pod', 'steady'])).status.containerStatuses[0].restartCount).toBe(0);

    // 1b. cloudcore restarts: its informers relist and the resync sends the pods again; nothing restarts.
    await e.cloud.kill('SIGTERM');
    e.cloud = await startCloud(e.cloud.setup, 'cloudcore-restarted');
    await eventually(() => expect(e.core().edgeHub.status).toMatchObject({ type: 'connected', synced: true }), 40_000);
    await new Promise((r) => setTimeout(r, 2_000));
    expect(await containersOf(steady.metadata.uid)).toEqual([running]);

    // 1c. containerd goes down: the node turns NotReady saying why, the pods are left alone, and it is Ready
    //     again once containerd is back (its shims kept the containers running meanwhile). It goes down while
    //     `flaky` waits out its crash back-off and stays down past it, so that restart is due while nothing
    //     answers (a sync that failed then used to be retried only by the 60 s resync).
    await eventually(async () => expect((await containersOf(flakyUid)).map((c) => c.state)).not.toContain('CONTAINER_RUNNING'), 20_000, 20);
    await new Promise((r) => setTimeout(r, 400)); // edged's relist (300 ms) sees the exit and starts the back-off (2 s)
    await containerd().restart('SIGKILL', async () => {
      await eventually(
        async () => {
          const ready = (await json(e.cp, ['get', 'node', e.node])).status.conditions.find((c: any) => c.type === 'Ready');
          expect(ready).toMatchObject({ status: 'False', reason: 'KubeletNotReady', message: expect.stringMatching(/^container runtime is down/) });
        },
        20_000,
        200,
      );
      await new Promise((r) => setTimeout(r, 2_500)); // past crashLoopBackOffMaxMs: the restart falls due while down
    });
    await eventually(
      async () => expect((await json(e.cp, ['get', 'node', e.node])).status.conditions.find((c: any) => c.type === 'Ready').status).toBe('True'),
      20_000,
      200,
    );
    expect(await containersOf(steady.metadata.uid)).toEqual([running]);

    // 2. The cloud is unreachable for a long while (scaled down here): pods keep running, restarts still happen.
    e.proxy.block();
    e.proxy.cut();
    await eventually(() => expect(e.core().edgeHub.status.type).not.toBe('connected'));
    const cloudSaw = (await json(e.cp, ['get', 'pod', 'flaky'])).status.containerStatuses[0].restartCount;
    const edgeRestarts = async (): Promise<number> => Math.max(...(await containersOf(flakyUid)).map((c) => c.attempt));
    await eventually(async () => expect(await edgeRestarts()).toBeGreaterThanOrEqual(cloudSaw + 2), 30_000, 200);
    expect(await containersOf(steady.metadata.uid)).toEqual([running]);

    // 3. A reboot while the cloud is still away: containerd lost every sandbox; edged brings the pods back
    //    from the edge store alone.
    await e.core().stop();
    for (const s of await containerd().client.listPodSandbox({ labels: { 'kubeedge-ts.io/node': e.node } })) {
      await containerd().client.stopPodSandbox(s.id);
      await containerd().client.removePodSandbox(s.id);
    }
    expect(await containersOf(steady.metadata.uid)).toEqual([]);
    await e.restart();
    await eventually(async () => expect((await containersOf(steady.metadata.uid)).map((c) => c.state)).toEqual(['CONTAINER_RUNNING']), 30_000, 200);
    expect(e.core().edgeHub.status.type).not.toBe('connected');

    // The link comes back: the statuses written offline reach the cluster (restart counts, new container).
    const offline = await edgeRestarts();
    e.proxy.unblock();
    await eventually(
      async () => {
        const p = await json(e.cp, ['get', 'pod', 'steady']);
        expect(p.status.phase).toBe('Running');
        const now = (await containersOf(steady.metadata.uid)).filter((c) => c.state === 'CONTAINER_RUNNING');
        expect(p.status.containerStatuses[0].containerID, JSON.stringify(await containersOf(steady.metadata.uid))).toBe(`containerd://${now[0]?.id}`);
        expect((await json(e.cp, ['get', 'pod', 'flaky'])).status.containerStatuses[0].restartCount).toBeGreaterThanOrEqual(offline);
      },
      30_000,
      300,
    );
    await e.cp.kubectlOk(['delete', 'pod', 'steady', 'flaky', '--wait=true', '--timeout=30s']);
  });

  it('runs static pods from the manifest folder without the cloud, mirrors them to the API, and reports the node', async () => {
    const e = await edge('pods-edge-g');
    const manifests = join(e.dir, 'manifests');
    mkdirSync(manifests, { recursive: true });
    writeFileSync(
      join(manifests, 'agent.yaml'),
      `apiVersion: v1\nkind: Pod\nmetadata:\n  name: agent\n  labels: {app: agent}\nspec:\n  containers:\n  - name: ` +
        `agent\n    image: ${IMAGE}\n    imagePullPolicy: IfNotPresent\n    command: [sleep, "3600"]\n`,
    );
    writeFileSync(join(manifests, 'broken.yaml'), 'kind: Pod\nmetadata: {name: broken}\nspec: {containers: []}\n');
    await e.restart();
    const name = `agent-${e.node}`;
    await eventually(
      async () => {
        const mirror = await json(e.cp, ['get', 'pod', name]);
        expect(mirror.metadata.annotations['kubernetes.io/config.mirror']).toBeDefined();
        expect(mirror.status.phase).toBe('Running');
        expect(mirror.spec.nodeName).toBe(e.node);
      },
      40_000,
      300,
    );
    // The mirror is a copy: deleting it through the API does not stop the static pod.
    const node = await json(e.cp, ['get', 'node', e.node]);
    expect(node.status.nodeInfo.containerRuntimeVersion).toMatch(/^containerd:\/\/1\./);
    expect(node.status.images.flatMap((i: any) => i.names)).toEqual(expect.arrayContaining([IMAGE]));
    expect(Number(node.status.allocatable.pods)).toBeGreaterThan(0);
    // Removing the manifest stops the pod and removes the mirror.
    const uid = (await json(e.cp, ['get', 'pod', name])).metadata.annotations['kubernetes.io/config.mirror'];
    expect((await containersOf(uid)).map((c) => c.state)).toEqual(['CONTAINER_RUNNING']);
    await import('node:fs').then((fs) => fs.rmSync(join(manifests, 'agent.yaml')));
    await eventually(async () => expect(await containersOf(uid)).toEqual([]), 40_000, 300);
    await eventually(async () => expect((await e.cp.kubectl(['get', 'pod', name])).code).not.toBe(0), 20_000, 300);
  });

  it('pulls an image from a registry through CRI, runs host-network pods, and gates readiness on TCP and startup probes', async () => {
    const e = await edge('pods-edge-h');
    const registry = await startOciRegistry(join(containerd().workdir, 'images.tar'));
    const image = `${registry.host}/lite/busybox:v2`;
    expect(await containerd().client.imageStatus(image)).toBeNull();
    const port = await freePort();
    await e.cp.kubectlOk(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'hostnet', namespace: 'default' },
        spec: {
          nodeName: e.node,
          hostNetwork: true,
          terminationGracePeriodSeconds: 1,
          containers: [
            {
              name: 'web',
              image,
              imagePullPolicy: 'IfNotPresent',
              // Listens only after 2 s: the startup probe holds readiness back until then.
              command: ['sh', '-c', `sleep 2; mkdir -p /www; echo up > /www/index.html; exec busybox httpd -f -p 127.0.0.1:${port} -h /www`],
              startupProbe: { tcpSocket: { port }, periodSeconds: 1, failureThreshold: 30 },
              readinessProbe: { tcpSocket: { port }, periodSeconds: 1 },
            },
          ],
        },
      }),
    );
    const notReadyYet = await eventually(
      async () => {
        const p = await json(e.cp, ['get', 'pod', 'hostnet']);
        expect(p.status.containerStatuses?.[0]?.state?.running).toBeDefined();
        return p;
      },
      30_000,
      100,
    );
    expect(notReadyYet.status.containerStatuses[0].ready).toBe(false);
    await eventually(
      async () => {
        const p = await json(e.cp, ['get', 'pod', 'hostnet']);
        expect(p.status.conditions.find((c: any) => c.type === 'Ready').status).toBe('True');
        expect(p.status.containerStatuses[0].started).toBe(true);
        // A host-network pod has the node's address.
        expect(p.status.podIP).toBe('127.0.0.1');
      },
      30_000,
      200,
    );
    expect(await httpGet(`http://127.0.0.1:${port}/`)).toBe('up\n');
    // The image came through the runtime's PullImage from the registry (the blobs were already in containerd's
    // content store from the offline import, so resolving the manifest is all it needed).
    expect(registry.requests).toEqual(expect.arrayContaining([expect.stringMatching(/^(HEAD|GET) \/v2\/lite\/busybox\/manifests\/v2$/)]));
    expect(await containerd().client.imageStatus(image)).not.toBeNull();
    await e.cp.kubectlOk(['delete', 'pod', 'hostnet', '--wait=true', '--timeout=30s']);
  });
});
