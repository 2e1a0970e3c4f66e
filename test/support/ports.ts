import net from 'node:net';
import { readFileSync } from 'node:fs';

/**
 * Ports are handed out below the kernel's ephemeral range (ip_local_port_range, 32768+ by default): a port the
 * kernel picked for `listen(0)` and that was released at once is also a candidate for the source port of the
 * next outgoing connection (kubectl, a client of the API server …), which then makes the daemon's bind fail with
 * EADDRINUSE. Below that range only explicit binds compete.
 */
const EPHEMERAL_LOW = (() => {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
})();
const LOW = 20_000;
const HIGH = Math.max(LOW + 1_000, EPHEMERAL_LOW) - 1;
let next = LOW + Math.floor(Math.random() * (HIGH - LOW));

function tryBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A port free right now (bound and released); used where a daemon must come back on the same port. */
export async function freePort(): Promise<number> {
  for (let tries = 0; tries < HIGH - LOW; tries++) {
    const port = next;
    next = next >= HIGH ? LOW : next + 1;
    if (await tryBind(port)) return port;
  }
  throw new Error(`no free port between ${LOW} and ${HIGH}`);
}
