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
