// `npm run bench -- servicebus [--seconds=10] [--messages=20000] [--offline=10000] [--outage-seconds=60]
//   [--only=rest,eventbus,offline]`: the Router and ServiceBus on a real control plane, one cloudcore and one
// edgecore process. KE_BENCH_CLOUD_NODE_ARGS / KE_BENCH_EDGE_NODE_ARGS pass V8 flags (e.g. `--cpu-prof`) to
// the daemons; both are stopped with SIGTERM at the end, so a profile gets written.
//   rest_to_servicebus_rps         small requests, curl-like HTTPS with keep-alive, 64 in flight, through one
//                                  edge to an HTTP app on its host
//   rest_to_servicebus_p99_ms      p99 latency at half that rate (open loop)
//   eventbus_to_rest_msgs_per_s    an MQTT client on the edge broker (QoS 1) → a cloud URL, one edge
//   offline_messages_lost          messages published while cloudcore is down for the outage, missing at the
//                                  cloud URL once it is back
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { stringify } from 'yaml';
import { startControlPlane, type ControlPlane } from '../support/control-plane.js';
import {
  CLOUDCORE_BIN,
  EDGECORE_BIN,
  ROOT,
  benchDir,
  cpuSeconds,
  freePort,
  note,
  onExit,
  percentile,
  report,
  runBench,
  sleep,
  start,
  type Proc,
} from './bench-support.js';

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=') as [string, string]));
const SECONDS = Number(args.get('seconds') ?? 10);
const MESSAGES = Number(args.get('messages') ?? 20_000);
const OFFLINE = Number(args.get('offline') ?? 10_000);
const OUTAGE_S = Number(args.get('outage-seconds') ?? 60);
const ONLY = new Set((args.get('only') ?? 'rest,eventbus,offline').split(','));
const CLOUD_NODE_ARGS = process.env.KE_BENCH_CLOUD_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
const EDGE_NODE_ARGS = process.env.KE_BENCH_EDGE_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
const NODE = 'bench-edge';
const CONCURRENCY = 64;

interface System {
  cp: ControlPlane;
  cloud: Proc;
  cloudConfig: string;
  edge: Proc;
  routerPort: number;
  mqttPort: number;
  ca: string;
  token: string;
}

runBench(async () => {
  // The edge app (rest → servicebus) and the cloud URL (eventbus → rest), both in this process.
  const appPort = await freePort();
  const app = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('ok'));
  await new Promise<void>((resolve) => app.listen(appPort, '127.0.0.1', resolve));
  const received = new Set<string>();
  const receivedByPrefix = new Map<string, number>();
  let receivedAt = 0;
  const cloudPort = await freePort();
  const cloudApp = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      if (!received.has(body)) {
        received.add(body);
        // Bodies are e<i> and o<i>: counted by their first letter, so polling the count costs nothing.
        receivedByPrefix.set(body[0]!, (receivedByPrefix.get(body[0]!) ?? 0) + 1);
      }
      receivedAt = performance.now();
      res.writeHead(200).end();
    });
  });
  cloudApp.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => cloudApp.listen(cloudPort, '127.0.0.1', resolve));
  onExit(() => (app.close(), cloudApp.close()));

  const sink: Sink = { count: (prefix) => receivedByPrefix.get(prefix) ?? 0, lastAt: () => receivedAt };
  const system = await setUp(appPort, cloudPort);
  if (ONLY.has('rest')) await restToServiceBus(system);
  if (ONLY.has('eventbus')) await eventBusToRest(system, sink);
  if (ONLY.has('offline')) await offline(system, sink);
  // SIGTERM: a graceful stop lets a profiled daemon write its profile.
  for (const proc of [system.cloud, system.edge]) proc.child.kill('SIGTERM');
  await Promise.race([Promise.all([system.cloud.exited, system.edge.exited]), sleep(10_000)]);
});

/** CPU seconds used so far by cloudcore, edgecore and this process (the load generator, the app and the sink). */
function cpuNow(s: System): { cloud: number; edge: number; bench: number } {
  const { user, system } = process.cpuUsage();
  return { cloud: cpuSeconds(s.cloud.child.pid!), edge: cpuSeconds(s.edge.child.pid!), bench: (user + system) / 1e6 };
}

/** CPU seconds each process used since `before`, per second of `seconds`: 1 is one core flat out. */
function cpuShare(s: System, before: ReturnType<typeof cpuNow>, seconds: number): Record<string, number> {
  const now = cpuNow(s);
  const share = (k: keyof typeof now): number => Number(((now[k] - before[k]) / seconds).toFixed(2));
  return { cloudcoreCpu: share('cloud'), edgecoreCpu: share('edge'), benchCpu: share('bench') };
}

/** What reached the cloud URL: distinct bodies starting with a letter, and when the last one came. */
interface Sink {
  count(prefix: string): number;
  lastAt(): number;
}

async function setUp(appPort: number, cloudPort: number): Promise<System> {
  const cp = startControlPlane();
  onExit(() => cp.stop());
  await cp.kubectlOk(['apply', '--server-side', '-f', join(ROOT, 'build', 'crds')]);
  await cp.kubectlOk(['wait', '--for=condition=Established', 'crd/rules.rules.kubeedge.io', 'crd/ruleendpoints.rules.kubeedge.io', '--timeout=60s']);
  const dir = benchDir();
  const [hubPort, certPort, routerPort, mqttPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const cloudConfig = join(dir, 'cloudcore.yaml');
  writeFileSync(
    cloudConfig,
    stringify({
      logLevel: 'warn',
      kubeAPI: { kubeconfig: await cp.cloudcoreKubeconfig() },
      monitorServer: { port: 0 },
      modules: {
        cloudHub: {
          address: '127.0.0.1',
          port: hubPort,
          certServerAddress: '127.0.0.1',
          certServerPort: certPort,
          advertiseAddresses: ['127.0.0.1'],
          caCertFile: join(dir, 'ca.crt'),
          caKeyFile: join(dir, 'ca.key'),
          serverCertFile: join(dir, 'server.crt'),
          serverKeyFile: join(dir, 'server.key'),
        },
        edgeController: { source: 'kubernetes', webhookAddress: '127.0.0.1', webhookPort: 0 },
        router: { enable: true, address: '127.0.0.1', port: routerPort },
      },
    }),
  );
  const cloud = start(CLOUDCORE_BIN, ['--config', cloudConfig, '--log-level', 'info'], { nodeArgs: CLOUD_NODE_ARGS });
  await cloud.waitForLog((l) => l.msg === 'cloudcore ready');
  writeFileSync(
    join(dir, 'edgecore.yaml'),
    stringify({
      logLevel: 'warn',
      nodeName: NODE,
      database: { path: join(dir, 'edge', 'edgecore.db') },
      monitorServer: { port: 0 },
      modules: {
        edged: { nodeIP: '127.0.0.1', runtimeEndpoint: '' },
        eventBus: { internal: { port: mqttPort } },
        serviceBus: { enable: true, port: await freePort() },
        edgeHub: {
          server: `127.0.0.1:${hubPort}`,
          certServer: `https://127.0.0.1:${certPort}`,
          caFile: join(dir, 'edge', 'ca.crt'),
          certFile: join(dir, 'edge', 'node.crt'),
          keyFile: join(dir, 'edge', 'node.key'),
          reconnectInitialDelayMs: 200,
          reconnectMaxDelayMs: 1_000,
        },
      },
    }),
  );
  const edgeToken = execFileSync(process.execPath, [CLOUDCORE_BIN, '--config', cloudConfig, 'token', 'create'], { encoding: 'utf8' }).trim();
  const edge = start(EDGECORE_BIN, ['--config', join(dir, 'edgecore.yaml'), '--token', edgeToken], { nodeArgs: EDGE_NODE_ARGS });
  const apply = (o: object): Promise<string> => cp.kubectlOk(['apply', '-f', '-'], JSON.stringify(o));
  const endpoint = (name: string, ruleEndpointType: string, properties: Record<string, string> = {}): object => ({
    apiVersion: 'rules.kubeedge.io/v1',
    kind: 'RuleEndpoint',
    metadata: { name, namespace: 'default' },
    spec: { ruleEndpointType, properties },
  });
  const rule = (name: string, spec: object): object => ({ apiVersion: 'rules.kubeedge.io/v1', kind: 'Rule', metadata: { name, namespace: 'default' }, spec });
  await apply(endpoint('rest', 'rest'));
  await apply(endpoint('sb', 'servicebus', { service_port: String(appPort) }));
  await apply(endpoint('bus', 'eventbus'));
  await apply(rule('to-app', { source: 'rest', sourceResource: { path: '/app' }, target: 'sb', targetResource: { path: '/' } }));
  await apply(
    rule('to-cloud', {
      source: 'bus',
      sourceResource: { topic: 'bench', node_name: NODE },
      target: 'rest',
      targetResource: { resource: `http://127.0.0.1:${cloudPort}/in` },
    }),
  );
  const secret = JSON.parse(await cp.kubectlOk(['get', 'secret', '-n', 'kubeedge', 'casecret', '-o', 'json']));
  const ca = new X509Certificate(Buffer.from(secret.data.cadata, 'base64')).toString();
  const token = (await cp.kubectlOk(['create', 'token', 'default', '--duration=2h'])).trim();
  const system = { cp, cloud, cloudConfig, edge, routerPort, mqttPort, ca, token };
  // Ready when a request goes through.
  const deadline = Date.now() + 120_000;
  for (;;) {
    const status = await call(system, new https.Agent({ ca, keepAlive: false })).catch(() => 0);
    if (status === 200) break;
    if (Date.now() > deadline) throw new Error(`the rest → servicebus rule does not answer 200 after 120 s (last ${status})`);
    await sleep(500);
  }
  return system;
}

function call(s: System, agent: https.Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port: s.routerPort, path: `/${NODE}/default/app`, method: 'GET', agent, headers: { authorization: `Bearer ${s.token}` } },
      (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.once('error', reject);
    req.end();
  });
}

async function restToServiceBus(s: System): Promise<void> {
  const agent = new https.Agent({ ca: s.ca, keepAlive: true, maxSockets: CONCURRENCY });
  // Closed loop: CONCURRENCY callers, each sending its next request when the last is answered.
  let done = 0;
  let failed = 0;
  const until = performance.now() + SECONDS * 1000;
  const t0 = performance.now();
  const cpu0 = cpuNow(s);
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < until) {
        const status = await call(s, agent).catch(() => 0);
        if (status === 200) done++;
        else failed++;
      }
    }),
  );
  const elapsedS = (performance.now() - t0) / 1000;
  const rps = done / elapsedS;
  report('rest_to_servicebus_rps', Math.round(rps), 'requests/s', { concurrency: CONCURRENCY, seconds: SECONDS, failed, ...cpuShare(s, cpu0, elapsedS) });
  // Open loop at half that rate: a request every 1/rate s, whatever the answers. Each latency is taken from the
  // send and, stricter, from when the request was due: this process also runs the app, and when its event loop
  // stalls the requests go out late and in a burst (coordinated omission). `lateP99` is that lateness.
  const rate = rps / 2;
  const fromSend: number[] = [];
  const fromDue: number[] = [];
  const late: number[] = [];
  const slow: Array<{ atMs: number; ms: number }> = [];
  let errors = 0;
  const pending: Array<Promise<void>> = [];
  const loopDelay = monitorEventLoopDelay({ resolution: 1 });
  loopDelay.enable();
  const start0 = performance.now();
  const cpu1 = cpuNow(s);
  for (let i = 0; performance.now() - start0 < SECONDS * 1000; i++) {
    const due = start0 + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    const sent = performance.now();
    late.push(sent - due);
    pending.push(
      call(s, agent).then(
        (status) => {
          if (status !== 200) return void errors++;
          const now = performance.now();
          fromSend.push(now - sent);
          fromDue.push(now - due);
          if (now - sent > 20) slow.push({ atMs: sent - start0, ms: now - sent });
        },
        () => void errors++,
      ),
    );
  }
  await Promise.all(pending);
  loopDelay.disable();
  const cpu = cpuShare(s, cpu1, (performance.now() - start0) / 1000);
  for (const list of [fromSend, fromDue, late]) list.sort((a, b) => a - b);
  const ms = (list: number[], p: number): number => Number(percentile(list, p).toFixed(2));
  // When the requests over 20 ms were sent, by 100 ms window: a few windows mean stalls, many mean queueing.
  const windows = new Map<number, number>();
  for (const { atMs } of slow) windows.set(Math.floor(atMs / 100), (windows.get(Math.floor(atMs / 100)) ?? 0) + 1);
  report('rest_to_servicebus_p99_ms', ms(fromSend, 99), 'ms', {
    rate: Math.round(rate),
    p50: ms(fromSend, 50),
    p99FromDue: ms(fromDue, 99),
    lateP99: ms(late, 99),
    benchLoopDelayMaxMs: Number((loopDelay.max / 1e6).toFixed(1)),
    over20ms: slow.length,
    over20msWindows: windows.size,
    busiestWindowsAtS: [...windows]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 5)
      .map(([w, n]) => `${(w / 10).toFixed(1)}:${n}`),
    maxMs: ms(fromSend, 100),
    requests: fromSend.length,
    errors,
    ...cpu,
  });
  agent.destroy();
}

async function mqttClient(s: System): Promise<import('mqtt').MqttClient> {
  const { default: mqtt } = await import('mqtt');
  const client = mqtt.connect(`mqtt://127.0.0.1:${s.mqttPort}`, { reconnectPeriod: 500 });
  await new Promise<void>((resolve, reject) => (client.once('connect', () => resolve()), client.once('error', reject)));
  return client;
}

async function eventBusToRest(s: System, sink: Sink): Promise<void> {
  const client = await mqttClient(s);
  const t0 = performance.now();
  const cpu0 = cpuNow(s);
  // QoS 1 with up to 256 in flight: the broker's PUBACK paces the publisher.
  let inflight = 0;
  const waiters: Array<() => void> = [];
  for (let i = 0; i < MESSAGES; i++) {
    while (inflight >= 256) await new Promise<void>((resolve) => waiters.push(resolve));
    inflight++;
    client.publish('default/bench', `e${i}`, { qos: 1 }, () => {
      inflight--;
      waiters.shift()?.();
    });
  }
  const deadline = Date.now() + 300_000;
  const count = (): number => sink.count('e');
  while (count() < MESSAGES) {
    if (Date.now() > deadline) throw new Error(`only ${count()}/${MESSAGES} messages reached the cloud URL after 300 s`);
    await sleep(100);
  }
  const elapsedS = (sink.lastAt() - t0) / 1000;
  const cpu = cpuShare(s, cpu0, (performance.now() - t0) / 1000);
  report('eventbus_to_rest_msgs_per_s', Math.round(MESSAGES / elapsedS), 'msgs/s', { messages: MESSAGES, ...cpu });
  client.end(true);
}

async function offline(s: System, sink: Sink): Promise<void> {
  const prefix = (p: string): number => sink.count(p);
  // cloudcore down for the outage; an edge app keeps publishing at an even pace all along.
  s.cloud.child.kill('SIGKILL');
  await s.cloud.exited;
  note(`cloudcore down; publishing ${OFFLINE} messages over ${OUTAGE_S} s`);
  const client = await mqttClient(s);
  const t0 = performance.now();
  for (let i = 0; i < OFFLINE; i++) {
    const due = t0 + (i * OUTAGE_S * 1000) / OFFLINE;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    await new Promise<void>((resolve, reject) => client.publish('default/bench', `o${i}`, { qos: 1 }, (err) => (err ? reject(err) : resolve())));
  }
  client.end(true);
  s.cloud = start(CLOUDCORE_BIN, ['--config', s.cloudConfig, '--log-level', 'info'], { nodeArgs: CLOUD_NODE_ARGS });
  await s.cloud.waitForLog((l) => l.msg === 'cloudcore ready');
  const back = performance.now();
  const deadline = Date.now() + 300_000;
  let last = -1;
  // Done when everything arrived, or when nothing more arrives for 30 s (what is missing then is lost).
  let stillSince = Date.now();
  while (prefix('o') < OFFLINE && Date.now() < deadline && Date.now() - stillSince < 30_000) {
    if (prefix('o') !== last) {
      last = prefix('o');
      stillSince = Date.now();
    }
    await sleep(200);
  }
  report('offline_messages_lost', OFFLINE - prefix('o'), 'messages', {
    published: OFFLINE,
    outageSeconds: OUTAGE_S,
    drainedSeconds: Number(((sink.lastAt() - back) / 1000).toFixed(1)),
  });
}
