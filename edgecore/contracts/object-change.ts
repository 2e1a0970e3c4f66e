// The contract between EdgeHub and MetaManager: object changes from the cloud, ready to commit. EdgeHub keeps
// each object's JSON text as it arrived, so the store writes it without serialising it again.

export interface ObjectChange {
  /** `<namespace>/<type>/<name>` */
  key: string;
  type: string;
  uid: string;
  resourceVersion: string;
  deleted: boolean;
  /** The object's JSON, as the bytes that arrived (empty for deletes). */
  value: Uint8Array;
}

/** applied: the store changed; stale: it already held this or a newer version. */
export type ApplyResult = 'applied' | 'stale';
