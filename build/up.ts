#!/usr/bin/env node
// `npm run up`: cloudcore and one edgecore on loopback, joined with a token, a demo object delivered to the
// edge, and the commands to try printed. Ctrl-C (or SIGTERM) stops both. State lives in .tmp/up (or
// $KE_UP_DIR) and survives restarts, like a real installation: the second `up` reuses CA, certificates and
// the edge store.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import net from 'node:net';
import { stringify } from 'yaml';
import { LocalObjectStore } from '../cloudcore/edgecontroller/local-object-store.js';

const ROOT = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../..' : '..', import.meta.url));
const DIR = process.env.KE_UP_DIR ?? join(ROOT, '.tmp', 'up');
const CLOUDCORE = join(ROOT, 'dist', 'cloudcore', 'main.js');
const EDGECORE = join(ROOT, 'dist', 'edgecore', 'main.js');
const NODE_NAME = 'edge-1';

interface Daemon {
  name: string;
  child: ChildProcess;
  waitFor(msg: string, timeoutMs: number): Promise<Record<string, unknown>>;
}

async function portOrFree(preferred: number): Promise<number> {
  const tryListen = (port: number): Promise<number | undefined> =>
    new Promise((resolve) => {
      const server = net.createServer();
      server.once('error', () => resolve(undefined));
      server.listen(port, '127.0.0.1', () => {
        const got = (server.address() as net.AddressInfo).port;
        server.close(() => resolve(got));
      });
    });
  return (await tryListen(preferred)) ?? (await tryListen(0))!;
}

/** Starts a daemon; prints its log lines in short form, prefixed with its name. */
function startDaemon(name: string, args: string[]): Daemon {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const seen: Array<Record<string, unknown>> = [];
  const waiters: Array<{ msg: string; resolve: (l: Record<string, unknown>) => void }> = [];
  const print = (text: string): void => {
    let line: Record<string, unknown>;
    try {
      line = JSON.parse(text) as Record<string, unknown>;
    } catch {
      process.stdout.write(`[${name}] ${text}\n`);
      return;
    }
    seen.push(line);
    const { level, time, pid, name: _n, msg, ...rest } = line;
    const fields = Object.entries(rest).filter(([k]) => k !== 'hostname').map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
    const tag = Number(level) >= 50 ? 'ERROR ' : Number(level) >= 40 ? 'WARN ' : '';
    process.stdout.write(`[${name}] ${tag}${String(msg)} ${fields.join(' ')}`.trimEnd().slice(0, 300) + '\n');
    for (const w of waiters.splice(0)) (w.msg === msg ? w.resolve(line) : waiters.push(w));
  };
  createInterface({ input: child.stdout! }).on('line', print);
  createInterface({ input: child.stderr! }).on('line', (t) => process.stdout.write(`[${name}] ${t}\n`));
  return {
    name,
    child,
    waitFor(msg, timeoutMs) {
      const found = seen.find((l) => l.msg === msg);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        waiters.push({ msg, resolve });
        setTimeout(() => reject(new Error(`${name}: no "${msg}" within ${timeoutMs} ms`)), timeoutMs).unref();
        child.once('exit', (code) => reject(new Error(`${name} exited with code ${code} before "${msg}"`)));
      });
    },
  };
}

async function main(): Promise<void> {
  mkdirSync(DIR, { recursive: true });
  const hubPort = await portOrFree(10000);
  const certPort = await portOrFree(10002);
  const cloudConfig = join(DIR, 'cloudcore.yaml');
  const edgeConfig = join(DIR, 'edgecore.yaml');
  writeFileSync(cloudConfig, stringify({
    logLevel: 'info',
    modules: {
      cloudHub: {
        address: '127.0.0.1', port: hubPort, certServerAddress: '127.0.0.1', certServerPort: certPort, advertiseAddresses: ['127.0.0.1'],
        caCertFile: join(DIR, 'cloud', 'ca', 'rootCA.crt'), caKeyFile: join(DIR, 'cloud', 'ca', 'rootCA.key'),
        serverCertFile: join(DIR, 'cloud', 'certs', 'server.crt'), serverKeyFile: join(DIR, 'cloud', 'certs', 'server.key'),
      },
      edgeController: { source: 'local', localStorePath: join(DIR, 'cloud', 'objects.db') },
    },
  }));
  writeFileSync(edgeConfig, stringify({
    logLevel: 'info',
    nodeName: NODE_NAME,
    database: { path: join(DIR, 'edge', 'edgecore.db') },
    modules: { edgeHub: { server: `127.0.0.1:${hubPort}`, certServer: `https://127.0.0.1:${certPort}`, caFile: join(DIR, 'edge', 'ca', 'rootCA.crt'), certFile: join(DIR, 'edge', 'certs', 'node.crt'), keyFile: join(DIR, 'edge', 'certs', 'node.key') } },
  }));

  const daemons: Daemon[] = [];
  let stopping = false;
  const stop = async (code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    process.stdout.write('\nstopping edgecore and cloudcore...\n');
    for (const d of [...daemons].reverse()) {
      if (d.child.exitCode !== null) continue;
      d.child.kill('SIGTERM');
      await new Promise((resolve) => {
        const t = setTimeout(() => (d.child.kill('SIGKILL'), resolve(undefined)), 15_000);
        d.child.once('exit', () => (clearTimeout(t), resolve(undefined)));
      });
    }
    process.stdout.write('stopped\n');
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  try {
    const cloud = startDaemon('cloudcore', [CLOUDCORE, '--config', cloudConfig]);
    daemons.push(cloud);
    await cloud.waitFor('cloudcore ready', 30_000);
    const joined = existsSync(join(DIR, 'edge', 'certs', 'node.crt'));
    const token = spawnSync(process.execPath, [CLOUDCORE, '--config', cloudConfig, 'token', 'create', '--ttl', '1h'], { encoding: 'utf8' }).stdout.trim();
    const edge = startDaemon('edgecore', [EDGECORE, '--config', edgeConfig, ...(joined ? [] : ['--token', token])]);
    daemons.push(edge);
    cloud.child.once('exit', (code) => !stopping && (process.stdout.write(`cloudcore exited (${code})\n`), void stop(1)));
    edge.child.once('exit', (code) => !stopping && (process.stdout.write(`edgecore exited (${code})\n`), void stop(1)));
    await edge.waitFor('resynced with cloud', 30_000);

    // A demo object, delivered to the edge like any pod or configmap would be.
    const store = new LocalObjectStore(join(DIR, 'cloud', 'objects.db'));
    const { resourceVersion } = store.put(NODE_NAME, 'default/configmap/hello', { apiVersion: 'v1', kind: 'ConfigMap', data: { greeting: 'hello from the cloud', at: new Date().toISOString() } });
    store.close();
    const ec = `node ${relative(process.cwd(), EDGECORE)} --config ${relative(process.cwd(), edgeConfig)}`;
    const cc = `node ${relative(process.cwd(), CLOUDCORE)} --config ${relative(process.cwd(), cloudConfig)}`;
    const deadline = Date.now() + 10_000;
    for (;;) {
      const listed = spawnSync(process.execPath, [EDGECORE, '--config', edgeConfig, 'objects', 'list'], { encoding: 'utf8' }).stdout;
      if (listed.split('\n').some((l) => l.startsWith(`default/configmap/hello\t${resourceVersion}\t`))) break;
      if (Date.now() > deadline) throw new Error('the demo object did not reach the edge within 10 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    process.stdout.write(`[up] ${NODE_NAME} committed default/configmap/hello (resourceVersion ${resourceVersion})\n`);
    process.stdout.write(`
cloudcore:  hub wss://127.0.0.1:${hubPort}   certificates https://127.0.0.1:${certPort}   config ${cloudConfig}
edgecore:   node ${NODE_NAME}   store ${join(DIR, 'edge', 'edgecore.db')}   config ${edgeConfig}
join token: ${token.slice(0, 24)}...  (another: ${cc} token create)

Try (in another terminal, from ${process.cwd()}):
  ${ec} objects get default/configmap/hello            # what the edge holds
  echo '{"data":{"k":"v"}}' | ${cc} objects put ${NODE_NAME} default/configmap/mine
  ${ec} objects list                                    # ...and it is on the edge
  ${cc} objects delete ${NODE_NAME} default/configmap/mine
  ${cc} objects list ${NODE_NAME}                       # what the cloud wants the edge to hold

ready (Ctrl-C stops everything)
`);
  } catch (err) {
    process.stdout.write(`up failed: ${(err as Error).message}\n`);
    await stop(1);
  }
}

void main();
