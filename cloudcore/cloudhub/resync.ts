// The resync at every (re)connect: the edge presents its inventory, every sync provider answers with the
// messages that bring it up to date for its types, and what no provider owns any more is deleted.

import type { InventoryItem } from '../../shared/channel/frame.js';
import { ConnectionError } from '../../shared/errors.js';
import { Group, Operation, newMessage, type Message } from '../../shared/message.js';
import { CloudModule } from '../contracts/addresses.js';
import type { CloudBus, SyncMessage } from '../contracts/node-messages.js';
import { ANY_TYPE, deleteOfHeld, typeOfKey, type SyncResponse } from '../contracts/object-sync.js';
import { SYNC_PROVIDERS } from './routes.js';

/** Asks every sync provider on the bus for the node's diff; rejects when one cannot answer. */
export function askProviders(bus: CloudBus, node: string, inventory: InventoryItem[], timeoutMs: number): Promise<SyncResponse[]> {
  const providers = SYNC_PROVIDERS.filter((p) => bus.has(p));
  return Promise.all(
    providers.map(async (provider) => {
      const request: SyncMessage = {
        ...newMessage({ source: CloudModule.cloudHub, group: Group.resource, operation: Operation.sync, resource: '', content: { nodeName: node, inventory } }),
        node,
      };
      const reply = await bus.request(provider, request, timeoutMs);
      if (reply.operation === Operation.error) throw new ConnectionError(`${provider} could not compute the resync: ${JSON.stringify(reply.content)}`);
      return reply.content;
    }),
  );
}

/** Every provider's messages, then deletes for objects the edge holds of a type nobody serves any more. */
export function resyncMessages(inventory: readonly InventoryItem[], responses: readonly SyncResponse[]): Message[] {
  const messages = responses.flatMap((r) => r.messages);
  const owned = new Set(responses.flatMap((r) => r.ownedTypes));
  if (owned.has(ANY_TYPE)) return messages;
  for (const item of inventory) {
    const type = typeOfKey(item.key);
    if (type && !owned.has(type)) messages.push(deleteOfHeld(CloudModule.cloudHub, item));
  }
  return messages;
}
