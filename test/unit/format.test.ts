// The tree is as prettier writes it (.prettierrc.json, 160 columns; `npm run format`), and no line is over 160
// columns: prettier leaves long strings and comments alone, so those are checked here.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SOURCES = ['cloudcore', 'edgecore', 'shared', 'mappers', 'test', 'build/up.ts', 'build/scripts'];
const MAX_COLUMNS = 160;

function trackedSources(): string[] {
  const listed = spawnSync('git', ['ls-files', '--', ...SOURCES.map((s) => `${s}`)], { cwd: ROOT, encoding: 'utf8' });
  return listed.stdout.split('\n').filter((f) => /\.(ts|mjs)$/.test(f));
}

describe('formatting', () => {
  it('formats every source file as prettier does', () => {
    const result = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'prettier', 'bin', 'prettier.cjs'), '--check', ...SOURCES], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(result.status, `${result.stdout}${result.stderr}\nrun: npm run format`).toBe(0);
  });

  it(`keeps every line within ${MAX_COLUMNS} columns`, () => {
    const files = trackedSources();
    expect(files.length).toBeGreaterThan(100);
    const long = files.flatMap((file) =>
      readFileSync(join(ROOT, file), 'utf8')
        .split('\n')
        .flatMap((line, i) => (line.length > MAX_COLUMNS ? [`${file}:${i + 1} (${line.length})`] : [])),
    );
    expect(long).toEqual([]);
  });
});
