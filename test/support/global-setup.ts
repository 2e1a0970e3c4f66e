import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

// Integration tests spawn the compiled daemons (dist/), exactly what a user runs; compile once per run.
// Tests that need Kubernetes run a real control plane, built from the Go module proxy once and cached
// (~12 minutes cold on 2 cores, instant afterwards; see docs/control-plane.md).
export default function setup(): void {
  if (process.env.KE_SKIP_BUILD !== '1') {
    execFileSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: 'inherit' });
  }
  const script = join(ROOT, 'build', 'control-plane', 'build-binaries.sh');
  try {
    execFileSync(script, ['--check'], { stdio: 'ignore' });
  } catch {
    process.stderr.write('global setup: building the Kubernetes control plane binaries (first run only, ~12 min)\n');
    execFileSync(script, [], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 60 * 60_000 });
  }
}
