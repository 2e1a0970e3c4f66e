import type { Bus } from './bus.js';
import { Operation, newMessage } from './message.js';

// Every object of a type in the edge store, all namespaces (resource `*/<type>`), asked of MetaManager: how an
// edge module that MetaManager announces changes to fills itself at start.
export async function listStoredObjects<T>(bus: Bus, source: string, type: string): Promise<T[]> {
  const reply = await bus.request<T[]>('metamanager', newMessage({ source, group: 'meta', operation: Operation.query, resource: `*/${type}`, content: null }));
  if (reply.operation === Operation.error) throw new Error(`cannot list ${type} objects from the edge store: ${JSON.stringify(reply.content)}`);
  return reply.content;
}
