import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { describe, expect, it, onTestFinished } from 'vitest';
import { startContainerd } from '../support/containerd.js';
import { cloudSetup, edgeSetup, startCloud, startEdge } from '../support/daemons.js';
import { tempDir } from '../support/harness.js';
import { createNetns, startNetns, type EdgeNetns } from '../support/netns.js';

/** Node one-liners run inside the namespace (nsenter execs node itself, so no shell quoting is involved). */
const GET = `require('http').get(process.argv[1], (r) => { r.setEncoding('utf8'); r.on('data', (d) => process.stdout.write(d)); })
  .on('error', (e) => { console.error(e.code); process.exit(1); });`;
const SERVE = `const s = require('net').createServer((c) => c.end('inside')); s.listen(0, '0.0.0.0', () => console.log(s.address().port));`;

/** Whether a TCP connection from the host opens within `withinMs`; a DROP shows as no answer at all. */
function connects(host: string, port: number, withinMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), withinMs);
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

async function serveInside(ns: EdgeNetns): Promise<number> {
  const child = ns.spawn(process.execPath, ['-e', SERVE], { stdio: ['ignore', 'pipe', 'inherit'] });
  onTestFinished(() => void child.kill('SIGKILL'));
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', (l) => resolve(Number(l)));
    child.once('exit', (code) => reject(new Error(`server inside exited (${code})`)));
  });
}

const links = (): string => execFileSync('/usr/sbin/ip', ['-o', 'link', 'show'], { encoding: 'utf8' });
const namespaces = (): string => execFileSync('/usr/sbin/ip', ['netns', 'list'], { encoding: 'utf8' });

describe('an edge in its own network namespace (test/support/netns.ts)', () => {
  it('lets a process inside reach a server on the host-side address', async () => {
    const ns = await startNetns();
    const server = http.createServer((_req, res) => res.end('from the host'));
    await new Promise<void>((resolve) => server.listen(0, ns.hostAddress, resolve));
    onTestFinished(() => void server.close());
    const url = `http://${ns.hostAddress}:${(server.address() as net.AddressInfo).port}/`;
    const { stdout } = await ns.exec(process.execPath, ['-e', GET, url]);
    expect(stdout).toBe('from the host');
  });

  it('drops connections from the host to a server inside, which answers from within the namespace', async () => {
    const ns = await startNetns();
    const port = await serveInside(ns);
    const probe = `require('net').connect(${port}, process.argv[1]).on('data', (d) => process.stdout.write(d)).on('error', () => process.exit(1));`;
    expect((await ns.exec(process.execPath, ['-e', probe, ns.edgeAddress])).stdout).toBe('inside');
    // No timing claim beyond this bound: the SYN is dropped, so the host sees neither an answer nor a refusal.
    expect(await connects(ns.edgeAddress, port, 3_000)).toBe(false);
  });

  it('gives each namespace its own /30, and leaves no namespace or veth behind once removed', async () => {
    const a = await createNetns();
    const b = await createNetns();
    try {
      expect(a.hostAddress).not.toBe(b.hostAddress);
      expect(namespaces()).toContain(a.name);
      expect(links()).toContain(`${a.hostLink}@`);
    } finally {
      await Promise.all([a.remove(), b.remove()]);
    }
    await a.remove(); // idempotent
    for (const ns of [a, b]) {
      expect(namespaces()).not.toMatch(new RegExp(`^${ns.name}\\b`, 'm'));
      expect(links()).not.toContain(`${ns.hostLink}@`);
    }
  });

  it('removes the leftovers of a crashed run when the next namespace is created', async () => {
    const crashed = await createNetns();
    // The owner of the slot is a process that has exited: that run crashed before its cleanup.
    const gone = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' }).stdout.trim();
    writeFileSync(`/tmp/kets-netns-slot-${crashed.slot}`, `${gone} crashed-run`);
    const next = await startNetns();
    // The crashed run's namespace and veth are gone; its slot is free again and was the first free one.
    expect(next.slot).toBe(crashed.slot);
    await crashed.remove(); // no longer its slot: touches nothing of `next`
    expect(namespaces()).toContain(next.name);
    const { stdout } = await next.exec('/usr/sbin/ip', ['-o', '-4', 'addr', 'show', 'dev', next.edgeLink]);
    expect(stdout).toContain(`${next.edgeAddress}/30`);
  });

  it('runs containerd inside (nsenter --net keeps the host cgroup mounts): its pod bridge is in the namespace', async () => {
    const ns = await startNetns();
    // Registered after the namespace, so stopped before it is removed (onTestFinished runs in reverse order).
    const containerd = await startContainerd({ command: ns.command });
    const uid = 'netns-pod-1';
    const id = await containerd.client.runPodSandbox({
      metadata: { name: 'netns-pod', uid, namespace: 'netns-test', attempt: 0 },
      hostname: 'netns-pod',
      log_directory: `${containerd.workdir}/pods/${uid}`,
      labels: {},
      port_mappings: [],
      linux: { cgroup_parent: `${containerd.cgroupParent}/pod${uid}`, security_context: { namespace_options: { network: 'POD', pid: 'POD', ipc: 'POD' } } },
    });
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    expect((await ns.exec('/usr/sbin/ip', ['-o', 'link', 'show', containerd.podBridge])).stdout).toContain(containerd.podBridge);
    expect(links()).not.toContain(`${containerd.podBridge}:`);
    await containerd.client.stopPodSandbox(id);
    await containerd.client.removePodSandbox(id);
  });

  it('runs edgecore inside, which joins a cloudcore listening on the host-side address', async () => {
    const ns = await startNetns();
    const dir = tempDir();
    const cloud = await startCloud(
      await cloudSetup(dir, { cloudHub: { address: ns.hostAddress, certServerAddress: ns.hostAddress, advertiseAddresses: [ns.hostAddress] } }),
    );
    const setup = edgeSetup(dir, 'netns-edge', cloud.setup, {
      edgeHub: { server: `${ns.hostAddress}:${cloud.setup.hubPort}`, certServer: `https://${ns.hostAddress}:${cloud.setup.certPort}` },
    });
    const edge = startEdge(setup, await cloud.token(), { command: ns.command });
    await edge.waitForLog((l) => l.msg === 'resynced with cloud', 30_000, 'resync');
    // The edge joined from its own address, through the veth.
    const signed = await cloud.waitForLog((l) => l.msg === 'signed node certificate' && l.nodeId === 'netns-edge');
    expect(signed.peer).toBe(ns.edgeAddress);
  });
});
