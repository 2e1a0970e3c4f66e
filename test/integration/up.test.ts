import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import { eventually, tempDir } from '../support/harness.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** What `npm run up` runs after its prepare step, in its own state folder. */
function up(dir: string): { output: () => string; exited: Promise<number | null>; kill: (signal: NodeJS.Signals) => void } {
  const child = spawn(process.execPath, [join(ROOT, 'dist', 'build', 'up.js')], {
    env: { ...process.env, KE_UP_DIR: dir, KUBECONFIG: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  onTestFinished(async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
  });
  return { output: () => output, exited, kill: (signal) => child.kill(signal) };
}

describe('npm run up', () => {
  it('brings up a control plane, cloudcore and an edge with the demo pod, prints how to use it, and stops it all on SIGTERM', async () => {
    const dir = tempDir('ke-up-');
    const run = up(dir);
    await eventually(() => expect(run.output()).toMatch(/^ready \(Ctrl-C stops everything\)$/m), 180_000, 200);
    const kubeconfig = run.output().match(/export KUBECONFIG=(\S+)/)![1]!;
    const kubectlPath = run.output().match(/alias kubectl=(\S+)/)![1]!;
    const kubectl = (...args: string[]): string => spawnSync(kubectlPath, ['--kubeconfig', kubeconfig, ...args], { encoding: 'utf8' }).stdout;
    const edgeObjects = (): string =>
      spawnSync(process.execPath, [join(ROOT, 'dist', 'edgecore', 'main.js'), '--config', join(dir, 'edgecore.yaml'), 'objects', 'list'], { encoding: 'utf8' })
        .stdout;

    // The commands it prints work: the edge node is Ready, the demo pod is scheduled there and on the edge.
    expect(kubectl('get', 'nodes', '--no-headers')).toMatch(/^edge-1\s+Ready\s+edge/m);
    expect(kubectl('get', 'pod', 'hello', '-o', 'jsonpath={.spec.nodeName}')).toBe('edge-1');
    expect(edgeObjects()).toMatch(/^default\/pod\/hello\t/m);
    // As root (CI is) the demo pod runs in containerd and says so in kubectl and in its log.
    if (process.getuid?.() === 0) {
      await eventually(() => expect(kubectl('get', 'pod', 'hello', '-o', 'jsonpath={.status.phase}')).toBe('Running'), 60_000, 500);
      const uid = kubectl('get', 'pod', 'hello', '-o', 'jsonpath={.metadata.uid}');
      expect(readFileSync(join(dir, 'edge', 'logs', `default_hello_${uid}`, 'hello', '0.log'), 'utf8')).toMatch(/stdout [PF] hello from the cloud/);
      // kubectl logs and exec reach the edge through the apiserver's egress selector and cloudcore (issue 13).
      await eventually(() => expect(kubectl('logs', 'hello')).toBe('hello from the cloud\n'), 30_000, 500);
      expect(kubectl('exec', 'hello', '--', 'cat', '/etc/hello/greeting')).toBe('hello from the cloud');
      // The node proxy, as the hint prints it (the API server refuses a loopback node address there).
      await eventually(() => expect(kubectl('get', '--raw', '/api/v1/nodes/edge-1/proxy/stats/summary')).toContain('"nodeName": "edge-1"'), 30_000, 500);
    }
    kubectl('patch', 'configmap', 'hello', '-p', '{"data":{"greeting":"changed"}}');
    const rv = kubectl('get', 'configmap', 'hello', '-o', 'jsonpath={.metadata.resourceVersion}');
    await eventually(() => expect(edgeObjects()).toMatch(new RegExp(`^default/configmap/hello\\t${rv}\\t`, 'm')), 20_000, 200);

    // The demo device: the virtual mapper's values reach the Device status, and keep moving.
    const temperature = (): string =>
      kubectl('get', 'device', 'virtual-sensor-1', '-o', 'jsonpath={.status.twins[?(@.propertyName=="temperature")].reported.value}');
    expect(kubectl('get', 'devices', '--no-headers')).toMatch(/^virtual-sensor-1\s+edge-1\s+virtual-sensor-model\s+virtual\s+online/m);
    const first = temperature();
    expect(Number(first)).toBeGreaterThanOrEqual(18);
    await eventually(() => expect(temperature()).not.toBe(first), 20_000, 500);
    kubectl('patch', 'device', 'virtual-sensor-1', '--type=json', '-p', '[{"op":"add","path":"/spec/properties/2/desired","value":{"value":"3"}}]');
    await eventually(
      () => expect(kubectl('get', 'device', 'virtual-sensor-1', '-o', 'jsonpath={.status.twins[?(@.propertyName=="fan-speed")].reported.value}')).toBe('3'),
      20_000,
      500,
    );

    // The Router demo: KubeEdge's rest → servicebus example, called once through cloudcore's listener to an app on
    // the edge host (up fails when the call does not succeed).
    expect(run.output()).toMatch(
      /^\[up\] router: a cloud app's call reached the edge app through the channel \(200 edge app on edge-1: GET \/target\/hello\)$/m,
    );

    run.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    expect(run.output()).toMatch(/^stopped$/m);
    // Every control-plane process is gone (stop.sh renames its pid file only when none is left).
    expect(existsSync(join(dir, 'control-plane', 'pids'))).toBe(false);
    for (const line of readFileSync(join(dir, 'control-plane', 'pids.stopped'), 'utf8')
      .trim()
      .split('\n')) {
      // Gone, or a zombie waiting for whichever process adopted it to reap it.
      const stat = `/proc/${line.split(' ')[1]}/stat`;
      if (existsSync(stat)) expect(readFileSync(stat, 'utf8').split(' ')[2], line).toBe('Z');
    }
  });
});
