import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import net from 'node:net';
import { onTestFailed, onTestFinished } from 'vitest';
import { eventually } from './harness.js';
import { freePort } from './ports.js';

/** Debian's haproxy package (build/scripts/prepare.mjs installs it for the tests). */
export const HAPROXY_BIN = '/usr/sbin/haproxy';

export interface HaproxyReplica {
  name: string;
  hubPort: number;
  certPort: number;
  monitorPort: number;
}

export interface HaproxyServerStat {
  /** `hub` or `certs`. */
  backend: string;
  /** `r<i>`, the replica's index in the list given to startHaproxy. */
  server: string;
  /** The name that replica was given. */
  replica: string;
  /** HAProxy's check status: `UP`, `DOWN`, `MAINT`, `UP 1/2` (going down), `DOWN 1/2` (going up), … */
  status: string;
  /** Connections open to the server now (`scur`). */
  sessions: number;
  /** HTTP status of the last health check (`check_code`), e.g. 503 from a draining replica. */
  checkCode: number | undefined;
}

export interface Haproxy {
  /** Frontend for the edge hub (wss passes through: TCP mode, TLS ends at cloudcore). */
  hubPort: number;
  /** Frontend for the certificate server. */
  certPort: number;
  /** Every server of both backends, read from the stats socket (`show stat`). */
  stats(): Promise<HaproxyServerStat[]>;
  stop(): Promise<void>;
}

function config(dir: string, hubPort: number, certPort: number, replicas: HaproxyReplica[]): string {
  const servers = (port: (r: HaproxyReplica) => number): string[] =>
    // The check goes to the monitor port, not the served one: a draining replica still accepts TCP, only
    // /readyz says it wants no new connections.
    replicas.map((r, i) => `  server r${i} 127.0.0.1:${port(r)} check port ${r.monitorPort} inter 500 fall 2 rise 2`);
  return [
    'global',
    `  stats socket ${join(dir, 'haproxy.sock')} level admin`,
    '  log stderr format raw local0 info',
    'defaults',
    '  mode tcp',
    '  log global',
    '  option tcplog',
    '  timeout connect 2s',
    // Hub sessions are WebSockets that live for days with a 30 s heartbeat; the idle timeouts must be far
    // above the heartbeat or HAProxy would cut healthy edges.
    '  timeout client 1h',
    '  timeout server 1h',
    '  timeout check 1s',
    // leastconn, not roundrobin: connections are long-lived, so what matters is how many each replica holds
    // now, and a replica back from a restart (empty) gets the reconnecting edges until it catches up.
    '  balance leastconn',
    '  option httpchk GET /readyz',
    '  http-check expect status 200',
    'frontend hub',
    `  bind 127.0.0.1:${hubPort}`,
    '  default_backend hub',
    'frontend certs',
    `  bind 127.0.0.1:${certPort}`,
    '  default_backend certs',
    'backend hub',
    ...servers((r) => r.hubPort),
    'backend certs',
    ...servers((r) => r.certPort),
    '',
  ].join('\n');
}

/** One command on the admin socket; HAProxy answers and closes the connection. */
function socketCommand(socketPath: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let answer = '';
    const socket = net.connect(socketPath, () => socket.end(`${command}\n`));
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.once('end', () => resolve(answer));
    socket.once('error', reject);
  });
}

/** `show stat` is CSV with a `# pxname,svname,…` header; columns are looked up by name. */
export function parseShowStat(csv: string, names: string[] = []): HaproxyServerStat[] {
  const [header, ...rows] = csv.split('\n').filter((l) => l.trim() !== '');
  if (!header?.startsWith('# ')) throw new Error(`haproxy: unexpected show stat answer: ${csv.slice(0, 200)}`);
  const columns = header.slice(2).split(',');
  const at = (row: string[], name: string): string => row[columns.indexOf(name)] ?? '';
  return rows
    .map((line) => line.split(','))
    .filter((row) => !['FRONTEND', 'BACKEND'].includes(at(row, 'svname')))
    .map((row) => {
      const server = at(row, 'svname');
      return {
        backend: at(row, 'pxname'),
        server,
        replica: names[Number(server.slice(1))] ?? server,
        status: at(row, 'status'),
        sessions: Number(at(row, 'scur')),
        checkCode: at(row, 'check_code') === '' ? undefined : Number(at(row, 'check_code')),
      };
    });
}

/**
 * A real HAProxy in TCP mode in front of cloudcore replicas, as an L4 load balancer in front of a Service
 * would be: the hub and the certificate server each get a frontend on a free loopback port, and every server
 * is health-checked with GET /readyz on the replica's monitor port. Runs in the foreground with its config in
 * `dir`; killed when the test ends. Resolves once every server of both backends is UP (or only those of the
 * replicas named in `waitUp`, when the others start later).
 */
export async function startHaproxy(dir: string, replicas: HaproxyReplica[], options: { waitUp?: string[] } = {}): Promise<Haproxy> {
  if (!existsSync(HAPROXY_BIN)) throw new Error(`${HAPROXY_BIN} missing: install the Debian package haproxy (apt-get install haproxy)`);
  const hubPort = await freePort();
  const certPort = await freePort();
  const configFile = join(dir, 'haproxy.cfg');
  writeFileSync(configFile, config(dir, hubPort, certPort, replicas));
  // -db: foreground, no daemon and no master process, so killing this child stops HAProxy.
  const child = spawn(HAPROXY_BIN, ['-db', '-f', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  const log: string[] = [];
  child.stderr.on('data', (chunk: Buffer) => log.push(chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  onTestFinished(() => void child.kill('SIGKILL'));
  onTestFailed(() => console.error(`--- haproxy log ---\n${log.join('').split('\n').slice(-40).join('\n')}`));
  const socketPath = join(dir, 'haproxy.sock');
  const names = replicas.map((r) => r.name);
  const stats = async (): Promise<HaproxyServerStat[]> => parseShowStat(await socketCommand(socketPath, 'show stat'), names);
  await eventually(
    async () => {
      if (child.exitCode !== null) throw new Error(`haproxy exited with ${child.exitCode}: ${log.join('')}`);
      const servers = await stats();
      const down = servers.filter((s) => s.status !== 'UP' && (options.waitUp ?? names).includes(s.replica));
      if (servers.length !== 2 * replicas.length || down.length > 0) throw new Error(`haproxy servers not all UP: ${JSON.stringify(servers)}`);
    },
    30_000,
    100,
  );
  return {
    hubPort,
    certPort,
    stats,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
