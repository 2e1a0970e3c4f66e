// The contract between CloudHub and the modules that know what a node should hold (EdgeController,
// DeviceController): at every (re)connect CloudHub sends each of them the node's inventory in a `sync`
// request and each answers with the messages that bring the node up to date for the types it owns.

import type { InventoryItem } from '../../shared/channel/frame.js';
import { Group, Operation, compareResourceVersions, newMessage, parseEdgeResource, type Message } from '../../shared/message.js';

/** In `ownedTypes`: this provider owns every type no other provider claims. */
export const ANY_TYPE = '*';

export interface SyncRequest {
  nodeName: string;
  inventory: InventoryItem[];
}

export interface SyncResponse {
  /** Resource types (`pod`, `configmap` …) this provider is the source of truth for. */
  ownedTypes: string[];
  /** insert/update/delete messages for the node (edge resources `<ns>/<type>/<name>`). */
  messages: Message[];
}

export interface ConnectionEvent {
  nodeName: string;
  sessionId: string;
  peer: string;
}

/** The Kubernetes object shape the channel relies on: identity and version live in metadata. */
export interface ObjectMeta {
  metadata?: { uid?: string; name?: string; namespace?: string; resourceVersion?: string; [k: string]: unknown };
  [k: string]: unknown;
}

export function typeOfKey(key: string): string | undefined {
  try {
    return parseEdgeResource(key).type;
  } catch {
    return undefined;
  }
}

export function uidOf(content: unknown): string {
  const uid = (content as ObjectMeta | undefined)?.metadata?.uid;
  return typeof uid === 'string' ? uid : '';
}

/** One object a node should hold, keyed as the edge sees it (`<namespace>/<type>/<name>`). */
export interface DesiredObject {
  key: string;
  uid: string;
  resourceVersion: string;
  /** The object as sent to the edge (Kubernetes JSON). */
  content: unknown;
}

export type ObjectOperation = typeof Operation.insert | typeof Operation.update | typeof Operation.delete;

/** The object as a message for its node (`insert`, `update`, `delete`), from the named module. */
export function objectMessage(source: string, object: DesiredObject, operation: ObjectOperation): Message {
  return newMessage({ source, group: Group.resource, operation, resource: object.key, resourceVersion: object.resourceVersion, content: object.content });
}

/** A delete for an object the edge holds and should not: only its identity is known, from the inventory. */
export function deleteOfHeld(source: string, item: InventoryItem): Message {
  const [namespace, , name] = item.key.split('/');
  return objectMessage(
    source,
    { key: item.key, uid: item.uid, resourceVersion: item.resourceVersion, content: { metadata: { uid: item.uid, name, namespace } } },
    Operation.delete,
  );
}

/**
 * The messages that bring a node's inventory to what it should hold, for the types `owns` accepts: inserts
 * for what it lacks, updates for what is older or another incarnation, deletes for what it should not hold.
 */
export function diffInventory(
  source: string,
  desired: Iterable<DesiredObject>,
  inventory: readonly InventoryItem[],
  owns: (key: string) => boolean,
): Message[] {
  const have = new Map(inventory.map((i) => [i.key, i]));
  const messages: Message[] = [];
  const desiredKeys = new Set<string>();
  for (const object of desired) {
    desiredKeys.add(object.key);
    const edge = have.get(object.key);
    if (!edge) messages.push(objectMessage(source, object, Operation.insert));
    else if (edge.uid !== object.uid || compareResourceVersions(object.resourceVersion, edge.resourceVersion) > 0)
      messages.push(objectMessage(source, object, Operation.update));
  }
  for (const item of inventory) {
    if (!desiredKeys.has(item.key) && owns(item.key)) messages.push(deleteOfHeld(source, item));
  }
  return messages;
}
