// The contract between CloudHub and the modules that know what a node should hold (EdgeController,
// DeviceController): at every (re)connect CloudHub sends each of them the node's inventory in a `sync`
// request and each answers with the messages that bring the node up to date for the types it owns.

import type { InventoryItem } from './channel/frame.js';
import { parseEdgeResource, type Message } from './message.js';

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
