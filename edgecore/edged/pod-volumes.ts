import { chmodSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import type { Mount } from './cri/cri-types.js';
import { fieldValue, secretData, type ConfigSource, type PodAddresses } from './container-env.js';
import type { Container, KeyToPath, Pod, Volume } from './pod-types.js';
import { CoreError } from '../../shared/errors.js';

/** A volume that cannot be set up (kubelet's FailedMount): the pod waits in ContainerCreating. */
export class VolumeError extends CoreError {
  readonly reason = 'FailedMount';

  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_VOLUME', message, options);
  }
}

type Files = Map<string, { content: Buffer; mode?: number }>;

/**
 * Sets up every volume of a pod under `<podsRoot>/<uid>/volumes/` and returns where each one is on the host.
 * ConfigMap, Secret, projected and downwardAPI volumes are files written from the edge store (so they work
 * offline) and rewritten when their source changes; emptyDir is a folder; hostPath is the host's path.
 */
export function preparePodVolumes(pod: Pod, podsRoot: string, source: ConfigSource, addresses: PodAddresses): Map<string, string> {
  const paths = new Map<string, string>();
  // Secret volumes are files here: the pod's folder is root's alone. Containers are unaffected (each volume is
  // bind-mounted by itself, so only its own folder's mode counts inside the container).
  const podDir = join(podsRoot, pod.metadata.uid);
  mkdirSync(podDir, { recursive: true, mode: 0o700 });
  chmodSync(podDir, 0o700);
  const base = join(podDir, 'volumes');
  for (const volume of pod.spec.volumes ?? []) {
    const dir = join(base, volume.name);
    if (volume.hostPath) paths.set(volume.name, hostPath(volume));
    else if (volume.emptyDir) paths.set(volume.name, (mkdirSync(dir, { recursive: true, mode: 0o777 }), dir));
    else {
      const files = volumeFiles(pod, volume, source, addresses);
      writeFiles(dir, files, defaultMode(volume));
      paths.set(volume.name, dir);
    }
  }
  return paths;
}

/** The CRI mounts of a container: each volumeMount at its path, a subPath as a path inside the volume. */
export function containerMounts(container: Container, volumes: ReadonlyMap<string, string>): Mount[] {
  return (container.volumeMounts ?? []).map((m) => {
    const host = volumes.get(m.name);
    if (host === undefined) throw new VolumeError(`volumeMount "${m.name}" names no volume of the pod`);
    const sub = m.subPath ? normalize(m.subPath) : '';
    if (sub.startsWith('..') || sub.startsWith('/')) throw new VolumeError(`subPath "${m.subPath}" leaves the volume`);
    return { container_path: m.mountPath, host_path: sub ? join(host, sub) : host, readonly: m.readOnly === true };
  });
}

export function removePodVolumes(podsRoot: string, uid: string): void {
  rmSync(join(podsRoot, uid), { recursive: true, force: true });
}

function hostPath(volume: Volume): string {
  const { path, type = '' } = volume.hostPath!;
  if (type === 'DirectoryOrCreate' && !existsSync(path)) mkdirSync(path, { recursive: true, mode: 0o755 });
  if (type === 'FileOrCreate' && !existsSync(path)) (mkdirSync(dirname(path), { recursive: true }), writeFileSync(path, ''));
  if ((type === 'Directory' || type === 'File') && !existsSync(path)) throw new VolumeError(`hostPath ${path} (type ${type}) does not exist`);
  if (type === 'Directory' && !statSync(path).isDirectory()) throw new VolumeError(`hostPath ${path} is not a directory`);
  return path;
}

function volumeFiles(pod: Pod, volume: Volume, source: ConfigSource, addresses: PodAddresses): Files {
  const ns = pod.metadata.namespace ?? 'default';
  if (volume.configMap) {
    const { name = '', items, optional } = volume.configMap;
    return fromData(configMapData(source, ns, name, optional), items, `configmap "${name}"`, optional);
  }
  if (volume.secret) {
    const { secretName = '', items, optional } = volume.secret;
    const secret = source.secret(ns, secretName);
    if (!secret && !optional) throw new VolumeError(`secret "${secretName}" not found`);
    return fromData(secret ? toBuffers(secretData(secret)) : undefined, items, `secret "${secretName}"`, optional);
  }
  if (volume.downwardAPI) return downward(pod, volume.downwardAPI.items ?? [], addresses);
  if (volume.projected) {
    const files: Files = new Map();
    for (const s of volume.projected.sources ?? []) {
      const add = (more: Files): void => more.forEach((v, k) => files.set(k, v));
      if (s.configMap)
        add(
          fromData(
            configMapData(source, ns, s.configMap.name ?? '', s.configMap.optional),
            s.configMap.items,
            `configmap "${s.configMap.name}"`,
            s.configMap.optional,
          ),
        );
      if (s.secret) {
        const secret = source.secret(ns, s.secret.name ?? '');
        if (!secret && !s.secret.optional) throw new VolumeError(`secret "${s.secret.name}" not found`);
        add(fromData(secret ? toBuffers(secretData(secret)) : undefined, s.secret.items, `secret "${s.secret.name}"`, s.secret.optional));
      }
      if (s.downwardAPI) add(downward(pod, s.downwardAPI.items ?? [], addresses));
      // Tokens come from the API server, which an edge may not reach; the file exists (empty) so the
      // default service-account volume of every pod mounts. Pods that call the API need a Secret instead.
      if (s.serviceAccountToken) files.set(s.serviceAccountToken.path, { content: Buffer.alloc(0) });
    }
    return files;
  }
  const kind = Object.keys(volume).find((k) => k !== 'name') ?? 'unknown';
  throw new VolumeError(`volume "${volume.name}": ${kind} volumes are not supported on this edge node`);
}

function configMapData(source: ConfigSource, ns: string, name: string, optional: boolean | undefined): Map<string, Buffer> | undefined {
  const cm = source.configMap(ns, name);
  if (!cm) {
    if (optional) return undefined;
    throw new VolumeError(`configmap "${name}" not found`);
  }
  const data = new Map(Object.entries(cm.data ?? {}).map(([k, v]) => [k, Buffer.from(v)]));
  for (const [k, v] of Object.entries(cm.binaryData ?? {})) data.set(k, Buffer.from(v, 'base64'));
  return data;
}

function toBuffers(data: Record<string, string>): Map<string, Buffer> {
  return new Map(Object.entries(data).map(([k, v]) => [k, Buffer.from(v)]));
}

function fromData(data: Map<string, Buffer> | undefined, items: KeyToPath[] | undefined, what: string, optional: boolean | undefined): Files {
  const files: Files = new Map();
  if (!data) return files;
  if (!items) {
    for (const [k, v] of data) files.set(k, { content: v });
    return files;
  }
  for (const item of items) {
    const content = data.get(item.key);
    if (content === undefined) {
      if (optional) continue;
      throw new VolumeError(`${what} has no key "${item.key}"`);
    }
    files.set(item.path, { content, mode: item.mode });
  }
  return files;
}

function downward(pod: Pod, items: Array<{ path: string; fieldRef?: { fieldPath: string }; mode?: number }>, addresses: PodAddresses): Files {
  return new Map(
    items.filter((i) => i.fieldRef).map((i) => [i.path, { content: Buffer.from(fieldValue(pod, i.fieldRef!.fieldPath, addresses)), mode: i.mode }]),
  );
}

function defaultMode(volume: Volume): number {
  return volume.configMap?.defaultMode ?? volume.secret?.defaultMode ?? volume.projected?.defaultMode ?? volume.downwardAPI?.defaultMode ?? 0o644;
}

/** Writes each file by rename (a reader never sees half a file) and removes files that are no longer there. */
function writeFiles(dir: string, files: Files, mode: number): void {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  for (const [path, file] of files) {
    const target = normalize(join(dir, path));
    if (!target.startsWith(`${dir}/`)) throw new VolumeError(`file path "${path}" leaves the volume`);
    mkdirSync(dirname(target), { recursive: true });
    const tmp = `${target}.tmp-${process.pid}`;
    writeFileSync(tmp, file.content);
    chmodSync(tmp, file.mode ?? mode);
    renameSync(tmp, target);
  }
  for (const name of readdirSync(dir))
    if (![...files.keys()].some((p) => p === name || p.startsWith(`${name}/`))) rmSync(join(dir, name), { recursive: true, force: true });
}
