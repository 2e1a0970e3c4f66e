import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { afterAll, beforeAll, onTestFinished } from 'vitest';
import { startControlPlane, type ControlPlane, type ControlPlaneOptions } from './control-plane.js';

export { freePort } from './ports.js';

/** A temp folder removed when the current test ends. */
export function tempDir(prefix = 'ke-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Retries `check` until it stops throwing, or rethrows its last error after `timeoutMs`. */
export async function eventually<T>(check: () => T | Promise<T>, timeoutMs = 20_000, intervalMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }
}

export interface TcpProxy {
  port: number;
  /** Resets every connection through the proxy (an abrupt link loss: no FIN, no close frame). */
  cut(): void;
  /** While blocked, new connections are reset at once. */
  block(): void;
  /**
   * Stops relaying on every open connection without closing anything: the daemon behind keeps a half-open
   * session (no FIN, no RST, no bytes) until its own timeout, even after the client side gives up.
   */
  freeze(): void;
  unblock(): void;
  connections(): number;
}

/** A TCP relay in front of a daemon, to cut the link without the daemons knowing. */
export async function tcpProxy(targetPort: number): Promise<TcpProxy> {
  const pairs = new Set<[net.Socket, net.Socket]>();
  const frozen = new Set<net.Socket>();
  let blocked = false;
  const server = net.createServer((client) => {
    if (blocked) return client.resetAndDestroy();
    const upstream = net.connect(targetPort, '127.0.0.1');
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    client.pipe(upstream).pipe(client);
    const drop = (): void => {
      pairs.delete(pair);
      client.destroy();
      // A frozen upstream stays open: the daemon must find out by itself.
      if (!frozen.has(upstream)) upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => {
    for (const [a, b] of pairs) {
      a.destroy();
      b.destroy();
    }
    for (const s of frozen) s.destroy();
    server.close();
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    cut() {
      for (const [a, b] of [...pairs]) {
        a.resetAndDestroy();
        b.resetAndDestroy();
      }
      pairs.clear();
    },
    block() {
      blocked = true;
    },
    freeze() {
      for (const [client, upstream] of pairs) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
        frozen.add(upstream);
      }
    },
    unblock() {
      blocked = false;
    },
    connections: () => pairs.size,
  };
}

/** One control plane for the whole test file, stopped after its last test. */
export function useControlPlane(options: ControlPlaneOptions = {}): () => ControlPlane {
  let cp: ControlPlane | undefined;
  beforeAll(() => {
    cp = startControlPlane(options);
  }, 300_000);
  afterAll(() => cp?.stop());
  return () => {
    if (!cp) throw new Error('control plane not started');
    return cp;
  };
}
