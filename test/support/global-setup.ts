import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Runs a cached build script (`--check` prints where it is; without it, builds): builds only on a cold cache. */
function ensureBuilt(script: string, what: string): void {
  try {
    execFileSync(script, ['--check'], { stdio: 'ignore' });
  } catch {
    process.stderr.write(`global setup: building ${what}\n`);
    execFileSync(script, [], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 60 * 60_000 });
  }
}

// Integration tests spawn the compiled daemons (dist/), exactly what a user runs; compile once per run.
// Tests that need Kubernetes run a real control plane, built from the Go module proxy once and cached
// (~12 minutes cold on 2 cores, instant afterwards; see docs/control-plane.md). metrics-server, for kubectl top
// (test/integration/metrics-server.test.ts), is built and cached the same way (2-6 minutes cold).
export default function setup(): void {
  if (process.env.KE_SKIP_BUILD !== '1') {
    execFileSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: 'inherit' });
  }
  ensureBuilt(join(ROOT, 'build', 'control-plane', 'build-binaries.sh'), 'the Kubernetes control plane binaries (first run only, ~12 min)');
  ensureBuilt(join(ROOT, 'build', 'metrics-server', 'build.sh'), 'metrics-server (first run only, 2-6 min)');
}
