import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import net from 'node:net';
import { onTestFinished } from 'vitest';
import { eventually, freePort, tempDir } from './harness.js';

const MOSQUITTO = '/usr/sbin/mosquitto';

/** A real mosquitto broker (Debian's) on a free loopback port, stopped when the test ends. */
export async function startMosquitto(): Promise<{ url: string; port: number }> {
  if (!existsSync(MOSQUITTO)) throw new Error(`${MOSQUITTO} is missing: apt-get install mosquitto (npm test does it when run as root)`);
  const port = await freePort();
  const conf = join(tempDir('ke-mosquitto-'), 'mosquitto.conf');
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n`);
  const child = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  onTestFinished(() => void child.kill('SIGKILL'));
  await eventually(
    () =>
      new Promise<void>((resolve, reject) => {
        if (child.exitCode !== null) return reject(new Error(`mosquitto exited: ${stderr}`));
        const socket = net.connect(port, '127.0.0.1', () => (socket.destroy(), resolve()));
        socket.once('error', reject);
      }),
    10_000,
    50,
  );
  return { url: `mqtt://127.0.0.1:${port}`, port };
}

const MOSQUITTO_SUB = '/usr/bin/mosquitto_sub';
const MOSQUITTO_PUB = '/usr/bin/mosquitto_pub';

export interface MosquittoSub {
  /** Every message so far, oldest first; payloads parsed as JSON when they are JSON. */
  messages: Array<{ topic: string; payload: any }>;
  /** Waits for a message on `topic` (after index `since`) matching `match`. */
  next(topic: string, match?: (payload: any) => boolean, since?: number, timeoutMs?: number): Promise<any>;
}

function needClients(): void {
  if (!existsSync(MOSQUITTO_SUB)) throw new Error(`${MOSQUITTO_SUB} is missing: apt-get install mosquitto-clients (npm test does it when run as root)`);
}

/**
 * Debian's mosquitto_sub on `topics`, a client nobody here wrote; resolves once the broker acknowledged the
 * subscription (its -d output says SUBACK). Killed when the test ends.
 */
export async function mosquittoSub(url: string, topics: string[]): Promise<MosquittoSub> {
  needClients();
  const { hostname, port } = new URL(url);
  const args = ['-h', hostname, '-p', port, '-v', '-d', '-q', '1', ...topics.flatMap((t) => ['-t', t])];
  // Line-buffered: into a pipe, mosquitto_sub's stdio would hold the SUBACK and messages back.
  const child = spawn('stdbuf', ['-oL', MOSQUITTO_SUB, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  onTestFinished(() => void child.kill('SIGKILL'));
  const messages: MosquittoSub['messages'] = [];
  let buffered = '';
  let subscribed = false;
  child.stdout.on('data', (d: Buffer) => {
    buffered += d.toString('utf8');
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) {
      // -d interleaves "Client ... received SUBACK" lines with the "-v" message lines ("<topic> <payload>").
      if (line.startsWith('Client ')) subscribed ||= line.includes('SUBACK');
      else if (line !== '' && !line.startsWith('Subscribed (mid')) {
        const space = line.indexOf(' ');
        const topic = space < 0 ? line : line.slice(0, space);
        const text = space < 0 ? '' : line.slice(space + 1);
        let payload: unknown = text;
        try {
          payload = JSON.parse(text);
        } catch {
          // kept as text
        }
        messages.push({ topic, payload });
      }
    }
  });
  await eventually(
    () => {
      if (child.exitCode !== null) throw new Error(`mosquitto_sub exited with ${child.exitCode}`);
      if (!subscribed) throw new Error('mosquitto_sub not subscribed yet');
    },
    10_000,
    20,
  );
  return {
    messages,
    next: (topic, match = () => true, since = 0, timeoutMs = 10_000) =>
      eventually(() => {
        const found = messages.slice(since).find((m) => m.topic === topic && match(m.payload));
        if (!found) throw new Error(`mosquitto_sub: no message on ${topic}; got ${JSON.stringify(messages.slice(-5)).slice(0, 800)}`);
        return found.payload;
      }, timeoutMs),
  };
}

/** Debian's mosquitto_pub: publishes one message (JSON unless a string) at QoS 1 and waits for it to exit 0. */
export async function mosquittoPub(url: string, topic: string, payload: unknown): Promise<void> {
  needClients();
  const { hostname, port } = new URL(url);
  const message = typeof payload === 'string' ? payload : JSON.stringify(payload);
  const child = spawn(MOSQUITTO_PUB, ['-h', hostname, '-p', port, '-q', '1', '-t', topic, '-m', message], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`mosquitto_pub ${topic} exited with ${code}: ${stderr}`);
}
