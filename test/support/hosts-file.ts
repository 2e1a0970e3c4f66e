import { writeFileSync } from 'node:fs';

/**
 * `argv` prefixed to run in a private mount namespace where `hostsFile` is bind-mounted over /etc/hosts. Go's
 * resolver (kube-apiserver, metrics-server) reads /etc/hosts, so a test can give names to addresses for those
 * processes alone: the machine's /etc/hosts, shared with every other test running, is never written, and nothing
 * is left behind when a run crashes (the namespace goes with its last process). unshare and sh exec without
 * forking, so the pid spawned stays the program's. Needs root (CAP_SYS_ADMIN).
 */
export function withHostsFile(hostsFile: string, argv: readonly string[]): string[] {
  return ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" /etc/hosts && exec "$@"', hostsFile, ...argv];
}

/** Writes a hosts file mapping each name to its address, after localhost. */
export function writeHostsFile(path: string, names: Readonly<Record<string, string>>): string {
  const lines = ['127.0.0.1 localhost', '::1 localhost', ...Object.entries(names).map(([name, address]) => `${address} ${name}`)];
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}
