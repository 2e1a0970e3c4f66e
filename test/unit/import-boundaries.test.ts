import { readdirSync, readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// Who may import whom (issue 11). A module (a folder directly under a daemon: cloudhub, edged …) talks to
// the others through the bus, never by import, so each can be reshaped alone. Library folders are what any
// module of their daemon may import.

/** Folders every module of their daemon may import, and why. Anything else under a daemon is a module. */
const LIBRARIES: Readonly<Record<string, string>> = {
  'cloudcore/kube': 'the one owner of the Kubernetes client (credentials, rate limit, informers) for every cloud module',
  'cloudcore/contracts': 'module names, message types and route tables the cloud modules agree on (may not exist yet)',
  'edgecore/contracts': 'module names, message types and route tables the edge modules agree on (may not exist yet)',
  'cloudcore/metrics': "cloudcore's Prometheus metrics, each defined once; every cloud module records into them",
  'edgecore/metrics': "edgecore's Prometheus metrics, each defined once; every edge module records into them",
  'mappers/framework': 'the mapper library (MQTT link, device runner, CLI) every protocol mapper builds on',
};

/**
 * Imports the rules forbid that the tree has today: file → imported file. Listed so the test holds the line
 * for everything else; each one is to go.
 */
const KNOWN_EXCEPTIONS: ReadonlyArray<readonly [from: string, to: string]> = [];

const DAEMONS = ['cloudcore', 'edgecore', 'mappers'] as const;
const ROOTS = ['shared', ...DAEMONS] as const;

interface SourceFile {
  /** Repo-relative, forward slashes: `edgecore/edged/pod-sync.ts`. */
  path: string;
  text: string;
}

interface Violation {
  from: string;
  to: string;
  rule: string;
}

/** What a repo path is: shared, outside the four roots, or part of a daemon as composition, library or module. */
type Area = { kind: 'shared' } | { kind: 'outside' } | { kind: 'composition' | 'library' | 'module'; daemon: string; folder: string };

function areaOf(path: string): Area {
  const [root, second, ...rest] = path.split('/');
  if (root === 'shared') return { kind: 'shared' };
  if (!(DAEMONS as readonly string[]).includes(root!)) return { kind: 'outside' };
  // A file directly in the daemon folder (main.ts, config.ts, cloudcore.ts …) composes the daemon.
  if (rest.length === 0) return { kind: 'composition', daemon: root!, folder: root! };
  const folder = `${root}/${second}`;
  return { kind: folder in LIBRARIES ? 'library' : 'module', daemon: root!, folder };
}

// Static imports and re-exports start a line (so a `// import … from` comment never matches); the clause
// between the keyword and `from` holds only names, braces, commas and `*`. Side-effect imports have no clause.
const STATIC_IMPORT = /^[ \t]*(?:import|export)\s+(?:[\w$*{}\s,]+?\bfrom\s*)?(['"])([^'"\n]+)\1/gm;
// `import('…')`, in code or in a type; skipped when the line before it is a comment.
const DYNAMIC_IMPORT = /\bimport\s*\(\s*(['"`])([^'"`\n]+)\1\s*\)/g;

/** The specifiers a file imports, re-exports or loads. */
function importSpecifiers(text: string): string[] {
  const found = [...text.matchAll(STATIC_IMPORT)].map((m) => m[2]!);
  for (const m of text.matchAll(DYNAMIC_IMPORT)) {
    const lineStart = text.lastIndexOf('\n', m.index) + 1;
    const before = text.slice(lineStart, m.index);
    if (before.includes('//') || /^\s*(\*|\/\*)/.test(before)) continue;
    found.push(m[2]!);
  }
  return found;
}

/** The repo path of a relative specifier (`../x.js` → `shared/x.ts`); undefined for packages and node: modules. */
function resolve(from: string, specifier: string): string | undefined {
  if (!specifier.startsWith('./') && !specifier.startsWith('../')) return undefined;
  return posix.normalize(posix.join(posix.dirname(from), specifier)).replace(/\.js$/, '.ts');
}

/** Why `from` may not import `to`, or undefined when it may. */
function broken(from: string, to: string): string | undefined {
  const a = areaOf(from);
  const b = areaOf(to);
  if (b.kind === 'outside') return undefined;
  if (a.kind === 'shared') return b.kind === 'shared' ? undefined : 'shared/ imports no daemon';
  if (a.kind === 'outside' || b.kind === 'shared') return undefined;
  if (a.daemon !== b.daemon) return `${a.daemon} imports no other daemon`;
  if (a.kind === 'composition') return undefined;
  if (b.folder === a.folder) return undefined;
  if (b.kind === 'library') return undefined;
  if (a.kind === 'library') return b.kind === 'module' ? 'a library imports no module' : 'a library imports no composition file';
  return b.kind === 'module' ? 'a module imports no other module' : 'a module imports no composition file';
}

/** Every import across the rules, known exceptions included. */
function findViolations(files: readonly SourceFile[]): Violation[] {
  const violations: Violation[] = [];
  for (const file of files) {
    for (const specifier of importSpecifiers(file.text)) {
      const to = resolve(file.path, specifier);
      const rule = to === undefined ? undefined : broken(file.path, to);
      if (to !== undefined && rule !== undefined) violations.push({ from: file.path, to, rule });
    }
  }
  return violations;
}

const REPO = fileURLToPath(new URL('../..', import.meta.url));

function sourceFiles(): SourceFile[] {
  const files: SourceFile[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(posix.join(REPO, dir), { withFileTypes: true })) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory() && !['node_modules', 'dist', 'test'].includes(entry.name)) walk(path);
      else if (entry.isFile() && entry.name.endsWith('.ts')) files.push({ path, text: readFileSync(posix.join(REPO, path), 'utf8') });
    }
  };
  for (const root of ROOTS) walk(root);
  return files;
}

const known = (v: Violation): boolean => KNOWN_EXCEPTIONS.some(([from, to]) => v.from === from && v.to === to);
const describeAll = (vs: readonly Violation[]): string => vs.map((v) => `${v.from} → ${v.to} (${v.rule})`).join('\n');

describe('import boundaries', () => {
  const files = sourceFiles();
  const violations = findViolations(files);

  it('reads the whole tree', () => {
    expect(files.length).toBeGreaterThan(100);
    expect(files.flatMap((f) => importSpecifiers(f.text)).filter((s) => s.startsWith('.')).length).toBeGreaterThan(200);
  });

  it('keeps shared/, each daemon and each module to its own imports', () => {
    expect(describeAll(violations.filter((v) => !known(v)))).toBe('');
  });

  it('lists no known exception the tree no longer has', () => {
    const stale = KNOWN_EXCEPTIONS.filter(([from, to]) => !violations.some((v) => v.from === from && v.to === to));
    expect(stale.map(([from, to]) => `${from} → ${to}`).join('\n')).toBe('');
  });

  it('catches every kind of violation (self-check on files in memory)', () => {
    const synthetic: SourceFile[] = [
      { path: 'shared/a.ts', text: "import { x } from '../edgecore/edged/x.js';\n" },
      { path: 'cloudcore/cloudhub/a.ts', text: "import {\n  type Y,\n  z,\n} from '../../edgecore/edgehub/y.js';\n" },
      { path: 'edgecore/edged/a.ts', text: "export * from '../metamanager/m.js';\nconst m = await import('../edgehub/h.js');\n" },
      { path: 'edgecore/edged/b.ts', text: "type C = typeof import('../config.js');\nimport './../devicetwin/side-effect.js';\n" },
      { path: 'edgecore/contracts/a.ts', text: "import type { P } from '../edged/pod-types.js';\n" },
      { path: 'mappers/modbus/a.ts', text: "import { V } from '../virtual/v.js';\n" },
      { path: 'mappers/framework/a.ts', text: "import { cli } from '../../cloudcore/main.js';\n" },
      // Allowed: own folder at any depth, a library, shared/, packages, composition, comments.
      {
        path: 'cloudcore/edgecontroller/a.ts',
        text: [
          "import { k } from '../kube/kube-client.js';",
          "import { c } from '../contracts/routes.js';",
          "import { s } from '../../shared/bus.js';",
          "import { d } from './deep/d.js';",
          "import { pino } from 'pino';",
          "// import { h } from '../cloudhub/h.js';",
          " * see import('../cloudhub/h.js')",
        ].join('\n'),
      },
      { path: 'cloudcore/cloudcore.ts', text: "import { h } from './cloudhub/cloudhub.js';\n" },
      { path: 'mappers/modbus/b.ts', text: "import { f } from '../framework/mapper.js';\n" },
    ];
    expect(describeAll(findViolations(synthetic)).split('\n')).toEqual([
      'shared/a.ts → edgecore/edged/x.ts (shared/ imports no daemon)',
      'cloudcore/cloudhub/a.ts → edgecore/edgehub/y.ts (cloudcore imports no other daemon)',
      'edgecore/edged/a.ts → edgecore/metamanager/m.ts (a module imports no other module)',
      'edgecore/edged/a.ts → edgecore/edgehub/h.ts (a module imports no other module)',
      'edgecore/edged/b.ts → edgecore/devicetwin/side-effect.ts (a module imports no other module)',
      'edgecore/edged/b.ts → edgecore/config.ts (a module imports no composition file)',
      'edgecore/contracts/a.ts → edgecore/edged/pod-types.ts (a library imports no module)',
      'mappers/modbus/a.ts → mappers/virtual/v.ts (a module imports no other module)',
      'mappers/framework/a.ts → cloudcore/main.ts (mappers imports no other daemon)',
    ]);
  });
});
