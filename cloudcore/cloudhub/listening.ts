import type { Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';

/** Listens and resolves with the bound address (the port when 0 was asked for). */
export async function listen(server: Server, port: number, host: string, backlog = 511): Promise<AddressInfo> {
  server.listen({ port, host, backlog });
  await once(server, 'listening');
  return server.address() as AddressInfo;
}

/** Stops accepting and drops open connections; idempotent. */
export async function closeServer(server: Server & { closeAllConnections?: () => void }): Promise<void> {
  if (!server.listening) return;
  const closed = once(server, 'close');
  server.close();
  server.closeAllConnections?.();
  await closed;
}
