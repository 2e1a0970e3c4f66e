// Driving edge-simulator processes from a benchmark: start them, deal nodes to them, read their status.
import { fork } from 'node:child_process';
import { join } from 'node:path';
import { CertificateAuthority, generateKeyPair } from '../../shared/pki/certificate-authority.js';
import type { SimReports, SimStart, SimStatus } from './edge-simulator.js';
import { ROOT, cpuSeconds, note, sleep } from './bench-support.js';

export interface Sim {
  proc: ReturnType<typeof fork>;
  status(): Promise<SimStatus>;
  /** Per node, the newest numbered report made and acknowledged (SimStart.reportEveryMs); `stop` ends reporting. */
  reports(stop?: boolean): Promise<SimReports>;
}

export function startSim(): Sim {
  const bin = join(ROOT, 'dist/test/bench/edge-simulator.js');
  const proc = fork(bin, [], { execArgv: ['--max-old-space-size=6144'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  process.on('exit', () => proc.kill('SIGKILL'));
  return simOver(proc);
}

/** A Sim over an already started simulator process (e.g. one inside a network namespace). */
export function simOver(proc: ReturnType<typeof fork>): Sim {
  // One question at a time: answers carry no id, so they are matched to questions by order.
  let queue: Promise<unknown> = Promise.resolve();
  const ask = <T>(question: object): Promise<T> => {
    const answer = queue.then(
      () =>
        new Promise<T>((resolve) => {
          proc.once('message', (m) => resolve(m as T));
          proc.send(question);
        }),
    );
    queue = answer.catch(() => undefined);
    return answer;
  };
  return {
    proc,
    status: () => ask<SimStatus>({ type: 'status' }),
    reports: (stop = false) => ask<SimReports>({ type: 'reports', stop }),
  };
}

export type Fleet = Sim & { send(start: SimStart): void; setUrls(urls: string[]): void; cpuSeconds(): number; kill(): void };

/** Several simulator processes seen as one: nodes are dealt round-robin, status and CPU are summed. */
export function startFleet(processes: number): Fleet {
  const sims = Array.from({ length: processes }, startSim);
  return {
    proc: sims[0]!.proc,
    send(start) {
      sims.forEach((sim, i) => sim.proc.send({ ...start, nodes: start.nodes.filter((_, n) => n % processes === i) }));
    },
    setUrls(urls) {
      for (const sim of sims) sim.proc.send({ type: 'urls', urls });
    },
    async status() {
      const all = await Promise.all(sims.map((sim) => sim.status()));
      return all.reduce((a, b) => ({
        type: 'status',
        connected: a.connected + b.connected,
        synced: a.synced + b.synced,
        lastSyncedAtMs: Math.max(a.lastSyncedAtMs, b.lastSyncedAtMs),
        objects: a.objects + b.objects,
        reconnects: a.reconnects + b.reconnects,
        failedConnects: a.failedConnects + b.failedConnects,
        rssKiB: a.rssKiB + b.rssKiB,
      }));
    },
    async reports(stop) {
      const all = await Promise.all(sims.map((sim) => sim.reports(stop)));
      return { type: 'reports', nodes: Object.assign({}, ...all.map((r) => r.nodes)) };
    },
    cpuSeconds: () => sims.reduce((sum, sim) => sum + cpuSeconds(sim.proc.pid!), 0),
    kill: () => sims.forEach((sim) => sim.proc.kill('SIGKILL')),
  };
}

export async function waitSynced(sim: Sim, count: number, timeoutMs: number): Promise<SimStatus> {
  const deadline = Date.now() + timeoutMs;
  let last = await sim.status();
  let lastPrint = 0;
  while (last.synced < count) {
    if (Date.now() > deadline) throw new Error(`only ${last.synced}/${count} edges synced after ${timeoutMs} ms: ${JSON.stringify(last)}`);
    if (Date.now() - lastPrint > 5_000) {
      note(`synced ${last.synced}/${count}, connected ${last.connected}, failed connects ${last.failedConnects}`);
      lastPrint = Date.now();
    }
    await sleep(200);
    last = await sim.status();
  }
  return last;
}

export interface FleetCerts {
  caPem: string;
  keyPem: string;
  nodes: SimStart['nodes'];
}

export async function issueCerts(ca: CertificateAuthority, names: string[]): Promise<FleetCerts> {
  // One key pair for every simulated node keeps setup fast; each node still has its own certificate.
  const keys = await generateKeyPair();
  const nodes: SimStart['nodes'] = [];
  let keyPem = '';
  for (const name of names) {
    const pair = await ca.issueNodeCert(name, 7 * 86_400_000, keys);
    keyPem = pair.keyPem;
    nodes.push({ name, certPem: pair.certPem });
  }
  return { caPem: ca.certPem, keyPem, nodes };
}

export function simStart(url: string, certs: FleetCerts, nodes: SimStart['nodes'], extra: Partial<SimStart> = {}): SimStart {
  return {
    type: 'start',
    url,
    caPem: certs.caPem,
    keyPem: certs.keyPem,
    nodes,
    connectConcurrency: 200,
    settings: { streamWindowBytes: 1 << 20, maxMessageBytes: 32 << 20, heartbeatIntervalMs: 30_000, sessionTimeoutMs: 90_000 },
    reconnect: { initialDelayMs: 1_000, maxDelayMs: 30_000 },
    ...extra,
  };
}
