import { execFile, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, onTestFinished } from 'vitest';

const IP = '/usr/sbin/ip';
const IPTABLES = '/usr/sbin/iptables';
const NSENTER = '/usr/bin/nsenter';
// npm test installs them as root (build/scripts/prepare.mjs); nsenter is util-linux, always there on Debian.
const PROGRAMS: ReadonlyArray<{ program: string; pkg: string }> = [
  { program: IP, pkg: 'iproute2' },
  { program: IPTABLES, pkg: 'iptables' },
  { program: NSENTER, pkg: 'util-linux' },
];

/** 203.0.113.0/24 (TEST-NET-3): 192.0.2.0/24 is this VM's eth0 and 198.51.100.0/24 the CNI pods' (docs/kubeedge-stream-facts.md §0.5). */
const SLOTS = 64;
const slotFile = (n: number): string => `/tmp/kets-netns-slot-${n}`;
const names = (n: number): { name: string; hostLink: string; edgeLink: string } => ({ name: `kets-n${n}`, hostLink: `kets-h${n}`, edgeLink: `kets-e${n}` });

/**
 * A network namespace for an edge that the host (the apiserver, cloudcore) cannot open connections to, while
 * the edge can dial out: a veth pair on a /30 of 203.0.113.0/24 (host side .1, edge side .2, default route
 * through the host side) and an iptables DROP of new inbound connections inside (§7.3).
 */
export interface EdgeNetns {
  /** `kets-n<slot>`; the namespace is `/run/netns/<name>`. */
  name: string;
  path: string;
  slot: number;
  /** 203.0.113.(4·slot+1): where the host listens for the edge (cloudcore's hub must bind it or 0.0.0.0). */
  hostAddress: string;
  /** 203.0.113.(4·slot+2): the edge's own address, its nodeIP. */
  edgeAddress: string;
  hostLink: string;
  edgeLink: string;
  /**
   * `argv` prefixed to run inside the namespace. Only the network namespace is entered (`nsenter --net`), not a
   * mount namespace as `ip netns exec` makes: containerd under `ip netns exec` loses /sys/fs/cgroup.
   */
  command(argv: readonly string[]): string[];
  spawn(command: string, args: readonly string[], options?: SpawnOptions): ChildProcess;
  /** Runs a command inside to completion; rejects with its stderr when it fails. */
  exec(command: string, args: readonly string[], timeoutMs?: number): Promise<{ stdout: string; stderr: string }>;
  /**
   * Deletes the veth pair and the namespace, and releases the slot. Idempotent. Kills nothing: stop what runs
   * inside first (a process left inside keeps an unnamed namespace with only its loopback).
   */
  remove(): Promise<void>;
}

function run(program: string, args: readonly string[], timeoutMs = 30_000): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(program, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${program} ${args.join(' ')} failed (${err.message.split('\n')[0]}): ${stderr.trim()}`));
      else resolve({ stdout, stderr });
    });
  });
}

function checkHost(): void {
  const missing = PROGRAMS.filter((p) => !existsSync(p.program));
  if (missing.length > 0) {
    const pkgs = [...new Set(missing.map((p) => p.pkg))].join(' ');
    throw new Error(`${missing.map((p) => p.program).join(', ')} missing: apt-get install ${pkgs} (npm test does it when run as root)`);
  }
  if (process.getuid?.() !== 0) throw new Error('network namespace tests need root');
}

const pidAlive = (pid: number): boolean => Number.isSafeInteger(pid) && pid > 0 && existsSync(`/proc/${pid}`);

/** A slot file holds `<pid> <token>`; the slot is stale once that process is gone (a crashed test run). */
function slotOwner(n: number): { pid: number; token: string } | undefined {
  try {
    const [pid, token] = readFileSync(slotFile(n), 'utf8').split(' ');
    return { pid: Number(pid), token: token ?? '' };
  } catch {
    return undefined;
  }
}

async function deleteInterfaces(n: number): Promise<void> {
  const { name, hostLink } = names(n);
  // Deleting one end of a veth deletes both, even when the other end is in a namespace some process still holds.
  if (existsSync(`/sys/class/net/${hostLink}`)) await run(IP, ['link', 'del', hostLink]).catch(() => undefined);
  if (existsSync(`/run/netns/${name}`)) await run(IP, ['netns', 'del', name]);
}

/** Removes what crashed runs left: the interfaces of every slot nobody alive holds (its processes are not ours to kill). */
async function sweepStaleSlots(): Promise<void> {
  for (let n = 0; n < SLOTS; n++) {
    const owner = slotOwner(n);
    if (owner && (owner.pid === 0 || pidAlive(owner.pid))) continue; // pid 0: being written
    const { name, hostLink } = names(n);
    if (existsSync(`/sys/class/net/${hostLink}`) || existsSync(`/run/netns/${name}`)) await deleteInterfaces(n);
    if (owner) rmSync(slotFile(n), { force: true });
  }
}

/** Host addresses already on some interface (e.g. a hand-made `kets-edge` on 203.0.113.1): their slots are skipped. */
async function addressesInUse(): Promise<Set<string>> {
  const { stdout } = await run(IP, ['-o', '-4', 'addr', 'show']);
  return new Set([...stdout.matchAll(/inet (\d+\.\d+\.\d+\.\d+)\//g)].map((m) => m[1]!));
}

async function claimSlot(token: string): Promise<number> {
  await sweepStaleSlots();
  const used = await addressesInUse();
  for (let n = 0; n < SLOTS; n++) {
    if (used.has(`203.0.113.${4 * n + 1}`) || used.has(`203.0.113.${4 * n + 2}`)) continue;
    try {
      writeFileSync(slotFile(n), `${process.pid} ${token}`, { flag: 'wx' });
      return n;
    } catch {
      // taken
    }
  }
  throw new Error(`all ${SLOTS} /30 slots of 203.0.113.0/24 are taken (/tmp/kets-netns-slot-*)`);
}

async function build(n: number): Promise<void> {
  const { name, hostLink, edgeLink } = names(n);
  const inside = (program: string, args: string[]): Promise<unknown> => run(NSENTER, [`--net=/run/netns/${name}`, program, ...args]);
  await run(IP, ['netns', 'add', name]);
  await run(IP, ['link', 'add', hostLink, 'type', 'veth', 'peer', 'name', edgeLink]);
  await run(IP, ['link', 'set', edgeLink, 'netns', name]);
  await run(IP, ['addr', 'add', `203.0.113.${4 * n + 1}/30`, 'dev', hostLink]);
  await run(IP, ['link', 'set', hostLink, 'up']);
  await inside(IP, ['addr', 'add', `203.0.113.${4 * n + 2}/30`, 'dev', edgeLink]);
  await inside(IP, ['link', 'set', edgeLink, 'up']);
  await inside(IP, ['link', 'set', 'lo', 'up']);
  await inside(IP, ['route', 'add', 'default', 'via', `203.0.113.${4 * n + 1}`]);
  // Replies to the edge's own connections pass (ESTABLISHED); anything the host opens towards the edge is dropped.
  await inside(IPTABLES, ['-A', 'INPUT', '-i', edgeLink, '-m', 'conntrack', '--ctstate', 'NEW', '-j', 'DROP']);
}

/** Creates an edge network namespace. No vitest hooks (see `startNetns`, `useNetns`). */
export async function createNetns(): Promise<EdgeNetns> {
  checkHost();
  const token = randomUUID();
  const slot = await claimSlot(token);
  const { name, hostLink, edgeLink } = names(slot);
  const path = `/run/netns/${name}`;
  let removing: Promise<void> | undefined;
  const remove = (): Promise<void> =>
    (removing ??= (async () => {
      // A slot some other run took over (we were thought dead) is no longer ours to delete.
      if (slotOwner(slot)?.token !== token) return;
      await deleteInterfaces(slot);
      rmSync(slotFile(slot), { force: true });
    })());
  try {
    await build(slot);
  } catch (err) {
    await remove().catch(() => undefined);
    throw err;
  }
  const command = (argv: readonly string[]): string[] => [NSENTER, `--net=${path}`, ...argv];
  return {
    name,
    path,
    slot,
    hostAddress: `203.0.113.${4 * slot + 1}`,
    edgeAddress: `203.0.113.${4 * slot + 2}`,
    hostLink,
    edgeLink,
    command,
    spawn: (program, args, options = {}) => spawn(NSENTER, [`--net=${path}`, program, ...args], options),
    exec: (program, args, timeoutMs) => run(NSENTER, [`--net=${path}`, program, ...args], timeoutMs),
    remove,
  };
}

/** A namespace for the current test, removed when it ends. */
export async function startNetns(): Promise<EdgeNetns> {
  const netns = await createNetns();
  onTestFinished(() => netns.remove());
  return netns;
}

/** One namespace for the whole test file, removed after its last test. */
export function useNetns(): () => EdgeNetns {
  let netns: EdgeNetns | undefined;
  beforeAll(async () => {
    netns = await createNetns();
  }, 60_000);
  afterAll(() => netns?.remove(), 60_000);
  return () => {
    if (!netns) throw new Error('network namespace not created');
    return netns;
  };
}
