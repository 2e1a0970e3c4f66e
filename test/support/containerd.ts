import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, onTestFinished } from 'vitest';
import { CriClient } from '../../edgecore/edged/cri/cri-client.js';

const ROOT = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../..' : '../..', import.meta.url));
const SCRIPTS = join(ROOT, 'build', 'cri');

// What build/cri/*.sh run, and the Debian package each comes from (npm test installs them as root).
const PROGRAMS: ReadonlyArray<{ program: string; pkg: string }> = [
  { program: '/usr/bin/containerd', pkg: 'containerd' },
  { program: '/usr/bin/ctr', pkg: 'containerd' },
  { program: '/usr/bin/containerd-shim-runc-v2', pkg: 'containerd' },
  { program: '/usr/sbin/runc', pkg: 'runc' },
  { program: '/bin/busybox', pkg: 'busybox-static' },
  { program: '/usr/lib/cni/bridge', pkg: 'containernetworking-plugins' },
  { program: '/usr/bin/jq', pkg: 'jq' },
];

/** A private containerd with the offline images (build/cri/, docs/cri.md). */
export interface Containerd {
  /** `unix:///tmp/kc-XXXXXX/containerd.sock` */
  endpoint: string;
  workdir: string;
  /** Give pods `cgroup_parent: ${cgroupParent}/pod<uid>`: stop() removes this cgroup subtree. */
  cgroupParent: string;
  /** This containerd's pod subnet, a /27 of 198.51.100.0/24, on its own bridge `podBridge`. */
  podSubnet: string;
  podBridge: string;
  client: CriClient;
  /** containerd's own pid. */
  pid(): number;
  /** Kills only containerd and starts it again on the same workdir; shims, sandboxes and containers live on. */
  restart(signal?: NodeJS.Signals, whileDown?: () => Promise<void>): Promise<void>;
  /** Removes every sandbox over CRI, then stop-containerd.sh --purge. Idempotent. */
  stop(): Promise<void>;
}

export interface LaunchContainerdOptions {
  /**
   * Prefixes the command lines of build/cri/*.sh, e.g. `EdgeNetns.command` to run containerd, its pod bridge and its
   * streaming server inside an edge's network namespace. Default: none (the host's namespaces).
   */
  command?: (argv: readonly string[]) => string[];
}

type Command = NonNullable<LaunchContainerdOptions['command']>;
const asIs: Command = (argv) => [...argv];

function run(script: string, args: string[], env: Record<string, string>, command: Command = asIs): Promise<void> {
  const [program, ...rest] = command([join(SCRIPTS, script), ...args]);
  return new Promise((resolve, reject) => {
    execFile(program!, rest, { env: { ...process.env, ...env }, timeout: 120_000 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`${script} ${args.join(' ')} failed (${err.message.split('\n')[0]}):\n${stderr.slice(-3000)}`));
      else resolve();
    });
  });
}

function checkHost(): void {
  const missing = PROGRAMS.filter((p) => !existsSync(p.program));
  if (missing.length > 0) {
    const pkgs = [...new Set(missing.map((p) => p.pkg))].join(' ');
    throw new Error(`${missing.map((p) => p.program).join(', ')} missing: apt-get install ${pkgs} (npm test does it when run as root)`);
  }
  if (process.getuid?.() !== 0) throw new Error('containerd tests need root (mounts, namespaces, cgroups)');
}

// The image tarball is deterministic, so it is built once per process and kept in memory (about 1 MB); each
// workdir gets a copy, removed with the workdir, so nothing outlives a worker that is killed.
let images: Promise<Buffer> | undefined;
function imagesTar(): Promise<Buffer> {
  images ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kc-img-'));
    try {
      await run('build-images.sh', [join(dir, 'images.tar')], {});
      return readFileSync(join(dir, 'images.tar'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  })();
  images.catch(() => (images = undefined)); // a failed build is retried by the next caller
  return images;
}

// Each containerd gets its own bridge and /27 of 198.51.100.0/24: two test processes running at once would
// otherwise hand out the same pod IPs from their separate IPAM stores. A slot is claimed by creating its file
// (O_EXCL) holding the workdir; it is stale once that workdir is gone.
const CNI_SLOTS = 8;
function claimCniSlot(workdir: string): { subnet: string; bridge: string; release(): void } {
  for (let n = 0; n < CNI_SLOTS; n++) {
    const file = `/tmp/kc-cni-slot-${n}`;
    if (!claimFile(file, workdir)) continue;
    // Kept while the workdir exists: a failed cleanup may have left pods on this bridge and these IPs.
    const release = (): void => {
      if (!existsSync(workdir) && readOwner(file) === workdir) rmSync(file, { force: true });
    };
    return { subnet: `198.51.100.${n * 32}/27`, bridge: `kc-cni${n}`, release };
  }
  throw new Error(`all ${CNI_SLOTS} CNI slots of 198.51.100.0/24 are taken (/tmp/kc-cni-slot-*)`);
}

function readOwner(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function claimFile(file: string, workdir: string): boolean {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, workdir, { flag: 'wx' });
      return true;
    } catch {
      const owner = readOwner(file);
      // Empty: its owner is between create and write.
      if (owner === '' || (owner !== undefined && existsSync(owner))) return false;
      rmSync(file, { force: true });
    }
  }
  return false;
}

async function waitForExit(pid: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const alive = (): boolean => {
    try {
      // A zombie still has a /proc entry; its state letter is Z.
      return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    } catch {
      return false;
    }
  };
  while (alive()) {
    if (Date.now() > deadline) throw new Error(`containerd (pid ${pid}) still running after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Starts containerd in a fresh short workdir (unix socket paths are limited to 108 bytes). No vitest hooks. */
export async function launchContainerd(options: LaunchContainerdOptions = {}): Promise<Containerd> {
  const command = options.command ?? asIs;
  checkHost();
  const tar = await imagesTar();
  const workdir = mkdtempSync('/tmp/kc-');
  const cgroupParent = `/${basename(workdir)}`;
  // start-containerd.sh imports <workdir>/images.tar by default, on every (re)start.
  writeFileSync(join(workdir, 'images.tar'), tar);
  let cni: ReturnType<typeof claimCniSlot>;
  try {
    cni = claimCniSlot(workdir);
  } catch (err) {
    rmSync(workdir, { recursive: true, force: true });
    throw err;
  }
  const env = { KE_CRI_CGROUP_PARENT: cgroupParent, KE_CNI_SUBNET: cni.subnet, KE_CNI_BRIDGE: cni.bridge };
  try {
    await run('start-containerd.sh', [workdir], env, command);
  } catch (err) {
    await run('stop-containerd.sh', ['--purge', workdir], env, command).catch(() => undefined);
    cni.release();
    throw err;
  }
  const endpoint = `unix://${workdir}/containerd.sock`;
  const client = new CriClient({ endpoint });
  const pid = (): number => Number(readFileSync(join(workdir, 'containerd.pid'), 'utf8'));
  let stopping: Promise<void> | undefined;
  return {
    endpoint,
    workdir,
    cgroupParent,
    podSubnet: cni.subnet,
    podBridge: cni.bridge,
    client,
    pid,
    async restart(signal = 'SIGTERM', whileDown) {
      const old = pid();
      process.kill(old, signal);
      await waitForExit(old, 15_000);
      await whileDown?.();
      await run('start-containerd.sh', [workdir], env, command);
    },
    stop() {
      stopping ??= (async () => {
        // Shims outlive containerd: remove the pods the proper way first; stop-containerd.sh sweeps the rest.
        const sandboxes = await client.listPodSandbox().catch(() => []);
        for (const s of sandboxes) {
          await client.stopPodSandbox(s.id).catch(() => undefined);
          await client.removePodSandbox(s.id).catch(() => undefined);
        }
        client.close();
        try {
          await run('stop-containerd.sh', ['--purge', workdir], env, command);
        } finally {
          cni.release();
        }
      })();
      return stopping;
    },
  };
}

/** A containerd for the current test, stopped when it ends. */
export async function startContainerd(options: LaunchContainerdOptions = {}): Promise<Containerd> {
  const containerd = await launchContainerd(options);
  onTestFinished(() => containerd.stop());
  return containerd;
}

/** One containerd for the whole test file, stopped after its last test. */
export function useContainerd(options: LaunchContainerdOptions = {}): () => Containerd {
  let containerd: Containerd | undefined;
  beforeAll(async () => {
    containerd = await launchContainerd(options);
  }, 120_000);
  afterAll(() => containerd?.stop(), 120_000);
  return () => {
    if (!containerd) throw new Error('containerd not started');
    return containerd;
  };
}
