import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { Logger } from '../../shared/logger.js';
import { MIRROR_ANNOTATION } from './object-cache.js';
import type { Pod } from './pod-types.js';

export const CONFIG_SOURCE_ANNOTATION = 'kubernetes.io/config.source';
export const CONFIG_HASH_ANNOTATION = 'kubernetes.io/config.hash';

/**
 * Static pods: manifests in a folder, run by edged without the cloud (the kubelet's file source). Each is
 * named `<name>-<node>` and gets a uid from its content, so an edited manifest is a new pod. The API sees a
 * mirror pod of each, created through the cloud.
 */
export class StaticPods {
  private pods = new Map<string, Pod>();
  private reported = new Map<string, string>();

  constructor(private readonly options: { path: string; nodeName: string; logger: Logger }) {}

  /** Reads the folder again; returns the pods now defined there (by uid). A broken file is logged and skipped. */
  scan(): Map<string, Pod> {
    const next = new Map<string, Pod>();
    const { path, logger } = this.options;
    const files = existsSync(path)
      ? readdirSync(path)
          .filter((f) => /\.(ya?ml|json)$/.test(f) && !f.startsWith('.'))
          .sort()
      : [];
    for (const file of files) {
      try {
        for (const pod of this.parse(join(path, file))) next.set(pod.metadata.uid, pod);
      } catch (err) {
        // Logged once per distinct problem, not every scan.
        const message = (err as Error).message;
        if (this.reported.get(file) !== message) logger.error({ file: join(path, file), reason: message }, 'static pod manifest refused');
        this.reported.set(file, message);
      }
    }
    this.pods = next;
    return next;
  }

  current(): Map<string, Pod> {
    return this.pods;
  }

  /** The API's copy: same spec and labels, marked as a mirror of this manifest. */
  static mirrorOf(pod: Pod): Omit<Pod, 'metadata'> & { metadata: Omit<Pod['metadata'], 'uid'> } {
    return {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: pod.metadata.name,
        namespace: pod.metadata.namespace,
        labels: pod.metadata.labels,
        annotations: { ...pod.metadata.annotations, [MIRROR_ANNOTATION]: pod.metadata.uid },
      },
      spec: pod.spec,
    };
  }

  private parse(file: string): Pod[] {
    const text = readFileSync(file, 'utf8');
    const docs = parseAllDocuments(text);
    return docs
      .filter((d) => d.contents !== null)
      .map((doc) => {
        if (doc.errors.length > 0) throw new Error(doc.errors[0]!.message);
        const pod = doc.toJS() as Pod;
        if (pod?.kind !== 'Pod' || !pod.metadata?.name || !Array.isArray(pod.spec?.containers) || pod.spec.containers.length === 0)
          throw new Error('not a Pod with a name and at least one container');
        if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(pod.metadata.name)) throw new Error(`pod name "${pod.metadata.name}" is not a DNS-1123 name`);
        for (const c of [...(pod.spec.initContainers ?? []), ...pod.spec.containers])
          if (!c.name || !c.image) throw new Error('every container needs a name and an image');
        const uid = uuidOf(createHash('sha256').update(this.options.nodeName).update(JSON.stringify(pod)).digest('hex'));
        const name = `${pod.metadata.name}-${this.options.nodeName}`;
        return {
          ...pod,
          metadata: {
            ...pod.metadata,
            name,
            namespace: pod.metadata.namespace ?? 'default',
            uid,
            annotations: { ...pod.metadata.annotations, [CONFIG_SOURCE_ANNOTATION]: 'file', [CONFIG_HASH_ANNOTATION]: uid },
          },
          spec: { ...pod.spec, nodeName: this.options.nodeName, restartPolicy: pod.spec.restartPolicy ?? 'Always' },
        };
      });
  }
}

function uuidOf(hex: string): string {
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}
