import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

// Integration tests spawn the compiled daemons (dist/), exactly what a user runs; compile once per run.
export default function setup(): void {
  if (process.env.KE_SKIP_BUILD === '1') return;
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: fileURLToPath(new URL('../..', import.meta.url)), stdio: 'inherit' });
}
