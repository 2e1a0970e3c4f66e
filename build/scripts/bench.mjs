#!/usr/bin/env node
// `npm run bench -- <name> [args]`: runs dist/test/bench/<name>.js (compiled by the prebench step).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const [name, ...args] = process.argv.slice(2);
const benches = readdirSync(join(root, 'test', 'bench'))
  .filter((f) => f.endsWith('.ts') && !/support|simulator/.test(f))
  .map((f) => f.slice(0, -3));
if (!name || !benches.includes(name)) {
  console.error(`usage: npm run bench -- <${benches.join('|')}> [--only=...]`);
  process.exit(2);
}
const file = join(root, 'dist', 'test', 'bench', `${name}.js`);
if (!existsSync(file)) {
  console.error(`bench: ${file} missing; run npm run build`);
  process.exit(2);
}
const result = spawnSync(process.execPath, [file, ...args], { stdio: 'inherit' });
process.exit(result.status ?? 1);
