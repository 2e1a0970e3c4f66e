#!/usr/bin/env node
// Makes a fresh clone runnable: installs npm packages when they are missing or stale, then compiles to dist/.
// Run by `npm test`, `npm run up` and `npm run bench` before anything else; uses only Node built-ins because
// node_modules may not exist yet.
import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });

const marker = join(root, 'node_modules', '.package-lock.json');
const lock = join(root, 'package-lock.json');
const sqliteAddon = join(root, 'node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node');
const stale = !existsSync(marker) || statSync(marker).mtimeMs < statSync(lock).mtimeMs;
if (stale || !existsSync(sqliteAddon)) {
  console.error('prepare: installing npm packages (npm ci)');
  // better-sqlite3 has no prebuilt binary reachable offline; npm compiles it (allowScripts in package.json).
  run('npm', ['ci', '--no-audit', '--no-fund']);
}
// Debian packages the tests start for real (an external MQTT broker, containerd), and `npm run up` as root
// (containerd runs its demo pod). Installed as root with apt-get when their program is missing; elsewhere the
// tests that need them fail with the name of the package.
const TEST_PACKAGES = [
  { program: '/usr/sbin/mosquitto', pkg: 'mosquitto' },
  // mosquitto_pub/mosquitto_sub: device tests talk to edgecore with MQTT clients nobody here wrote.
  { program: '/usr/bin/mosquitto_sub', pkg: 'mosquitto-clients' },
  // containerd's CRI for edged (docs/cri.md): runtime, OCI runtime, the offline images' busybox, pod network, and
  // jq for build/cri/build-images.sh.
  { program: '/usr/bin/containerd', pkg: 'containerd' },
  { program: '/usr/sbin/runc', pkg: 'runc' },
  { program: '/bin/busybox', pkg: 'busybox-static' },
  { program: '/usr/lib/cni/bridge', pkg: 'containernetworking-plugins' },
  { program: '/usr/bin/jq', pkg: 'jq' },
  // The metrics tests scrape both daemons with a real Prometheus.
  { program: '/usr/bin/prometheus', pkg: 'prometheus' },
  // Several cloudcore replicas behind one address: a real TCP load balancer that health-checks /readyz.
  { program: '/usr/sbin/haproxy', pkg: 'haproxy' },
  // Edges in their own network namespace (test/support/netns.ts): veth pairs and a DROP of inbound connections.
  { program: '/usr/sbin/ip', pkg: 'iproute2' },
  { program: '/usr/sbin/iptables', pkg: 'iptables' },
];
if (process.argv.includes('--test-packages')) {
  const missing = TEST_PACKAGES.filter((p) => !existsSync(p.program)).map((p) => p.pkg);
  if (missing.length > 0 && process.getuid?.() === 0) {
    console.error(`prepare: installing Debian packages ${missing.join(', ')}`);
    run('apt-get', ['update', '-q']);
    execFileSync('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing], {
      cwd: root,
      stdio: 'inherit',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  } else if (missing.length > 0) {
    console.error(`prepare: tests need Debian packages ${missing.join(', ')}; install them as root (apt-get install ${missing.join(' ')})`);
  }
}
// `npm test` compiles in vitest's global setup instead, so `npx vitest` alone is enough during development.
if (!process.argv.includes('--no-build') && process.env.KE_SKIP_BUILD !== '1') {
  console.error('prepare: compiling TypeScript to dist/');
  run('npm', ['run', '--silent', 'build']);
}
