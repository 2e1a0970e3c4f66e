import { Group, Operation, newMessage } from '../../shared/message.js';
import { EdgeModule } from './addresses.js';
import type { EdgeBus, QueryMessage } from './messages.js';

/**
 * Every object of a type in the edge store, all namespaces (resource `*\/<type>`), asked of MetaManager: how an
 * edge module that MetaManager announces changes to fills itself at start.
 */
export async function listStoredObjects<T>(bus: EdgeBus, source: string, type: string): Promise<T[]> {
  const query: QueryMessage = newMessage({ source, group: Group.resource, operation: Operation.query, resource: `*/${type}`, content: null });
  const reply = await bus.request(EdgeModule.metaManager, query);
  if (reply.operation === Operation.error) throw new Error(`cannot list ${type} objects from the edge store: ${JSON.stringify(reply.content)}`);
  return reply.content as T[];
}
