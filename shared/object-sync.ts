// The contract between CloudHub and the modules that know what a node should hold (EdgeController,
// DeviceController): at every (re)connect CloudHub sends each of them the node's inventory in a `sync`
// request and each answers with the messages that bring the node up to date for the types it owns.

import type { InventoryItem } from './channel/frame.js';
import { Operation, compareResourceVersions, newMessage, parseEdgeResource, toCloudResource, type Message } from './message.js';

export const SYNC_OPERATION = 'sync';
/** Group of the cloud modules that answer `sync` and hear `connected` / `disconnected`. */
export const CONTROLLERS_GROUP = 'controllers';
/** In `ownedTypes`: this provider owns every type no other provider claims. */
export const ANY_TYPE = '*';

export interface SyncRequest {
  nodeName: string;
  inventory: InventoryItem[];
}

export interface SyncResponse {
  /** Resource types (`pod`, `configmap` …) this provider is the source of truth for. */
  ownedTypes: string[];
  /** insert/update/delete messages with cloud resources `node/<node>/<ns>/<type>/<name>`. */
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

/** The object as a message for the node (`insert`, `update`, `delete`), from the named module. */
export function objectMessage(source: string, node: string, object: DesiredObject, operation: string): Message {
  return newMessage({ source, group: 'resource', operation, resource: toCloudResource(node, object.key), resourceVersion: object.resourceVersion, content: object.content });
}

/**
 * The messages that bring a node's inventory to what it should hold, for the types `owns` accepts: inserts
 * for what it lacks, updates for what is older or another incarnation, deletes for what it should not hold.
 */
export function diffInventory(source: string, node: string, desired: Iterable<DesiredObject>, inventory: readonly InventoryItem[], owns: (key: string) => boolean): Message[] {
  const have = new Map(inventory.map((i) => [i.key, i]));
  const messages: Message[] = [];
  const desiredKeys = new Set<string>();
  for (const object of desired) {
    desiredKeys.add(object.key);
    const edge = have.get(object.key);
    if (!edge) messages.push(objectMessage(source, node, object, Operation.insert));
    else if (edge.uid !== object.uid || compareResourceVersions(object.resourceVersion, edge.resourceVersion) > 0) messages.push(objectMessage(source, node, object, Operation.update));
  }
  for (const item of inventory) {
    if (desiredKeys.has(item.key) || !owns(item.key)) continue;
    const [namespace, , name] = item.key.split('/');
    messages.push(objectMessage(source, node, { key: item.key, uid: item.uid, resourceVersion: item.resourceVersion, content: { metadata: { uid: item.uid, name, namespace } } }, Operation.delete));
  }
  return messages;
}
