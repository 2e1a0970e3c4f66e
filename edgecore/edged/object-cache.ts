import type { ConfigSource } from './container-env.js';
import type { ConfigMap, Pod, Secret } from './pod-types.js';

/** Annotation of the API's copy of a static pod; the static pod itself is what runs. */
export const MIRROR_ANNOTATION = 'kubernetes.io/config.mirror';

type Kind = 'pod' | 'configmap' | 'secret';

/**
 * edged's view of the edge store: the pods bound to this node and the ConfigMaps and Secrets they use. It is
 * filled from MetaManager at start and kept current by its announcements, so it answers offline.
 */
export class ObjectCache implements ConfigSource {
  private readonly pods = new Map<string, Pod>();
  private readonly uidByKey = new Map<string, string>();
  private readonly configMaps = new Map<string, ConfigMap>();
  private readonly secrets = new Map<string, Secret>();
  private staticPods = new Map<string, Pod>();

  constructor(private readonly nodeName: string) {}

  /** Applies one object (or its deletion); returns the uids of pods it concerns. */
  apply(kind: Kind, key: string, object: unknown | null): string[] {
    const [namespace, , name] = key.split('/') as [string, string, string];
    if (kind === 'configmap' || kind === 'secret') {
      const map = kind === 'configmap' ? this.configMaps : this.secrets;
      if (object) map.set(`${namespace}/${name}`, object as ConfigMap);
      else map.delete(`${namespace}/${name}`);
      // Pods of the namespace re-sync: their volumes and (on restart) environment read the new content.
      return [...this.pods.values(), ...this.staticPods.values()].filter((p) => (p.metadata.namespace ?? 'default') === namespace).map((p) => p.metadata.uid);
    }
    const previous = this.uidByKey.get(key);
    const pod = object as Pod | null;
    const mine = pod && pod.spec?.nodeName === this.nodeName && !pod.metadata.annotations?.[MIRROR_ANNOTATION];
    if (previous && previous !== pod?.metadata.uid) this.pods.delete(previous);
    if (mine) {
      this.pods.set(pod.metadata.uid, pod);
      this.uidByKey.set(key, pod.metadata.uid);
    } else {
      if (previous) this.pods.delete(previous);
      this.uidByKey.delete(key);
    }
    return [...new Set([previous, mine ? pod.metadata.uid : undefined].filter((u): u is string => Boolean(u)))];
  }

  /** Replaces the static pods (from manifests); returns the uids that came or went. */
  setStatic(pods: ReadonlyMap<string, Pod>): string[] {
    const changed = [...pods.keys(), ...this.staticPods.keys()].filter((uid) => pods.has(uid) !== this.staticPods.has(uid));
    this.staticPods = new Map(pods);
    return changed;
  }

  pod(uid: string): Pod | undefined {
    return this.pods.get(uid) ?? this.staticPods.get(uid);
  }

  podUids(): string[] {
    return [...this.pods.keys(), ...this.staticPods.keys()];
  }

  configMap(namespace: string, name: string): ConfigMap | undefined {
    return this.configMaps.get(`${namespace}/${name}`);
  }

  secret(namespace: string, name: string): Secret | undefined {
    return this.secrets.get(`${namespace}/${name}`);
  }
}
