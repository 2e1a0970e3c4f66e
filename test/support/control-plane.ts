import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { withHostsFile } from './hosts-file.js';

const ROOT = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../..' : '../..', import.meta.url));
const SCRIPTS = join(ROOT, 'build', 'control-plane');

export interface ControlPlane {
  dir: string;
  kubeconfig: string;
  server: string;
  binDir: string;
  /** Runs the real kubectl against this cluster. */
  kubectl(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }>;
  /** kubectl that must succeed; returns stdout. */
  kubectlOk(args: string[], input?: string): Promise<string>;
  /**
   * A kubeconfig for cloudcore as it is deployed: ServiceAccount kubeedge/cloudcore bound only to
   * build/rbac/cloudcore.yaml (applied on first use), never the admin's. Proves that RBAC is enough.
   */
  cloudcoreKubeconfig(): Promise<string>;
  /**
   * Installs every CRD in build/crds (devices and router) the way `npm run up` and the README do, once per
   * cluster, and resolves when their API groups are served.
   */
  installCrds(): Promise<void>;
  stop(): void;
}

export interface ControlPlaneOptions {
  /** Extra kube-controller-manager flags (e.g. a short --node-monitor-grace-period for NotReady tests). */
  controllerManagerArgs?: string[];
  apiserverArgs?: string[];
  /**
   * Runs every component in a mount namespace with this file as /etc/hosts (hosts-file.ts), e.g. to resolve per-node
   * kubelet host names to cloudcore for kube-apiserver only.
   */
  hostsFile?: string;
}

/**
 * (No vitest here: benchmarks use it too; `useControlPlane` in harness.ts is the test-file wrapper.)
 * Starts etcd, kube-apiserver, kube-controller-manager and kube-scheduler (build/control-plane/start.sh) in a
 * fresh folder on free loopback ports. The binaries were built or found by the global setup.
 */
export function startControlPlane(options: ControlPlaneOptions = {}): ControlPlane {
  const dir = mkdtempSync(join(tmpdir(), 'ke-cp-'));
  const env = {
    ...process.env,
    KE_CP_KCM_ARGS: (options.controllerManagerArgs ?? []).join(' '),
    KE_CP_APISERVER_ARGS: (options.apiserverArgs ?? []).join(' '),
  };
  try {
    // The components start detached (setsid) and stay in start.sh's mount namespace after it exits.
    const argv = [join(SCRIPTS, 'start.sh'), dir];
    const [program, ...args] = options.hostsFile ? withHostsFile(options.hostsFile, argv) : argv;
    execFileSync(program!, args, { env, stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000 });
  } catch (err) {
    const e = err as { stderr?: Buffer };
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`control plane did not start: ${e.stderr?.toString().slice(-3000) ?? String(err)}`);
  }
  const vars = Object.fromEntries(
    readFileSync(join(dir, 'env'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1).replace(/^'|'$/g, '')]),
  );
  const kubeconfig = join(dir, 'kubeconfig');
  const binDir = vars.KE_CP_BIN_DIR!;
  const kubectl = (args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      const child = execFile(join(binDir, 'kubectl'), ['--kubeconfig', kubeconfig, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      });
      child.stdin?.end(input ?? '');
    });
  let stopped = false;
  let cloudcoreKubeconfig: Promise<string> | undefined;
  let crdsInstalled: Promise<void> | undefined;
  const kubectlOk = async (args: string[], input?: string): Promise<string> => {
    const r = await kubectl(args, input);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  };
  const restrictedKubeconfig = async (): Promise<string> => {
    await kubectlOk(['apply', '-f', join(ROOT, 'build', 'rbac', 'cloudcore.yaml')]);
    const token = (await kubectlOk(['-n', 'kubeedge', 'create', 'token', 'cloudcore', '--duration=24h'])).trim();
    const path = join(dir, 'cloudcore.kubeconfig');
    const ca = readFileSync(vars.KE_CP_CA_FILE!).toString('base64');
    writeFileSync(
      path,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        'current-context': 'cloudcore',
        clusters: [{ name: 'kubeedge-ts', cluster: { server: vars.KE_CP_SERVER, 'certificate-authority-data': ca } }],
        users: [{ name: 'cloudcore', user: { token } }],
        contexts: [{ name: 'cloudcore', context: { cluster: 'kubeedge-ts', user: 'cloudcore' } }],
      }),
      { mode: 0o600 },
    );
    return path;
  };
  return {
    dir,
    kubeconfig,
    server: vars.KE_CP_SERVER!,
    binDir,
    kubectl,
    kubectlOk,
    cloudcoreKubeconfig() {
      cloudcoreKubeconfig ??= restrictedKubeconfig();
      return cloudcoreKubeconfig;
    },
    installCrds() {
      crdsInstalled ??= (async () => {
        const crds = join(ROOT, 'build', 'crds');
        await kubectlOk(['apply', '--server-side', '-f', crds]);
        // Unlike apply, `wait -f <dir>` recurses: it would wait for the objects in build/crds/examples too.
        await kubectlOk(['wait', '--for=condition=Established', '--timeout=60s', '--recursive=false', '-f', crds]);
        // Established comes a moment before the API groups are in discovery.
        for (let attempt = 0; ; attempt++) {
          const r = await kubectl(['get', 'devices,devicemodels,rules,ruleendpoints', '-A']);
          if (r.code === 0) return;
          if (attempt >= 200) throw new Error(`CRDs established but not served: ${r.stderr}`);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      })();
      return crdsInstalled;
    },
    stop() {
      if (stopped) return;
      stopped = true;
      try {
        execFileSync(join(SCRIPTS, 'stop.sh'), [dir], { stdio: 'ignore', timeout: 60_000 });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
