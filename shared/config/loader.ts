import { readFileSync } from 'node:fs';
import { parseDocument, stringify } from 'yaml';
import { ConfigError } from '../errors.js';
import { isField, isSecretFile, type ConfigOf, type Schema } from './schema.js';

export interface ConfigSources {
  /** Path of the YAML file, if any. */
  file?: string;
  /** Values from flags, shaped like the file; they win over the file. */
  overrides?: Record<string, unknown>;
}

/** Cross-field checks run after every field parsed; they return problems, not throw. */
export type ConfigCheck<C> = (config: C) => string[];

/**
 * Defaults, then the file, then the flags; then secrets named by `*File` keys are read into their keys. Every
 * problem (YAML syntax, unknown keys, wrong types, unreadable secret files, failed checks) is collected and
 * thrown together as one ConfigError; the result is deeply frozen.
 */
export function loadConfig<S extends Schema>(schema: S, sources: ConfigSources, check?: ConfigCheck<ConfigOf<S>>): ConfigOf<S> {
  const problems: string[] = [];
  let fromFile: unknown = {};
  if (sources.file !== undefined) {
    fromFile = readYamlFile(sources.file, problems);
  }
  const merged = resolve(schema, fromFile, sources.overrides ?? {}, '', problems);
  if (problems.length === 0 && check) problems.push(...check(merged as ConfigOf<S>));
  if (problems.length > 0) throw new ConfigError(problems);
  return deepFreeze(merged) as ConfigOf<S>;
}

function readYamlFile(path: string, problems: string[]): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    problems.push(`cannot read config file ${path}: ${(err as Error).message}`);
    return {};
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    for (const e of doc.errors) problems.push(`${path}: ${e.message.split('\n')[0]}`);
    return {};
  }
  const value: unknown = doc.toJS();
  if (value === null || value === undefined) return {};
  if (!isPlainObject(value)) {
    problems.push(`${path}: the top level must be a mapping of keys, got ${describe(value)}`);
    return {};
  }
  return value;
}

function resolve(schema: Schema, file: unknown, flags: unknown, prefix: string, problems: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const fileObj = sectionOf(file, prefix, 'config file', problems);
  const flagObj = sectionOf(flags, prefix, 'flags', problems);
  for (const key of [...Object.keys(fileObj), ...Object.keys(flagObj)]) {
    if (!(key in schema)) problems.push(`unknown key "${prefix}${key}"${suggest(key, Object.keys(schema))}`);
  }
  for (const [key, node] of Object.entries(schema)) {
    const path = `${prefix}${key}`;
    if (!isField(node)) {
      out[key] = resolve(node, fileObj[key], flagObj[key], `${path}.`, problems);
      continue;
    }
    const raw = flagObj[key] !== undefined ? flagObj[key] : fileObj[key];
    if (raw === undefined || raw === null) {
      out[key] = node.defaultValue;
      continue;
    }
    const parsed = node.parse(raw);
    if (parsed.ok) out[key] = parsed.value;
    else problems.push(`${path}: ${parsed.error}`);
  }
  for (const [key, node] of Object.entries(schema)) {
    if (isSecretFile(node)) readSecretFile(schema, key, node.secretFor, { out, file: fileObj, flags: flagObj }, prefix, problems);
  }
  return out;
}

const isGiven = (value: unknown): boolean => value !== undefined && value !== null && value !== '';

/**
 * Puts the content of the file named by `fileKey` into `secretKey`, where the module reads it. A flag giving the
 * secret itself wins over the file, which is then not read (edgecore --token); the secret written in the config
 * file next to a file key is a mistake to stop for, not to resolve silently.
 */
function readSecretFile(
  schema: Schema,
  fileKey: string,
  secretKey: string,
  section: { out: Record<string, unknown>; file: Record<string, unknown>; flags: Record<string, unknown> },
  prefix: string,
  problems: string[],
): void {
  const target = schema[secretKey];
  if (target === undefined || !isField(target)) throw new Error(`schema: ${prefix}${fileKey} names ${secretKey}, which is not a field next to it`);
  const path = section.out[fileKey];
  if (typeof path !== 'string' || path === '' || isGiven(section.flags[secretKey])) return;
  if (isGiven(section.file[secretKey])) {
    problems.push(`${prefix}${secretKey} and ${prefix}${fileKey} are both set; keep one`);
    return;
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    // Node ends the message with the call and the path again ("ENOENT: no such file or directory, open '/x'").
    problems.push(`${prefix}${fileKey}: cannot read ${path}: ${(err as Error).message.replace(/, \w+( '.*')?$/, '')}`);
    return;
  }
  const secret = text.replace(/[\r\n]+$/, '');
  if (secret === '') problems.push(`${prefix}${fileKey}: ${path} is empty`);
  else section.out[secretKey] = secret;
}

function sectionOf(value: unknown, prefix: string, where: string, problems: string[]): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  if (isPlainObject(value)) return value;
  problems.push(`${prefix.slice(0, -1) || '(top level)'} in ${where} must be a mapping, got ${describe(value)}`);
  return {};
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  return Array.isArray(value) ? 'a list' : `${typeof value} ${JSON.stringify(value)}`;
}

function suggest(key: string, known: string[]): string {
  const lower = key.toLowerCase();
  const close = known.find((k) => k.toLowerCase() === lower || editDistance(k.toLowerCase(), lower) <= 2);
  return close ? ` (did you mean "${close}"?)` : '';
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const next = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = row[j]!;
      row[j] = next;
    }
  }
  return row[b.length]!;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

/** The cross-check both daemons make on their keepalive settings. */
export function keepaliveProblems(path: string, settings: { heartbeatIntervalMs: number; sessionTimeoutMs: number }): string[] {
  return settings.sessionTimeoutMs > settings.heartbeatIntervalMs
    ? []
    : [`${path}.sessionTimeoutMs (${settings.sessionTimeoutMs}) must be larger than heartbeatIntervalMs (${settings.heartbeatIntervalMs})`];
}

/** The complete default config as YAML, each key preceded by its documentation. */
export function renderDefaultConfig(schema: Schema, header: string): string {
  const lines = header.split('\n').map((l) => `# ${l}`.trimEnd());
  lines.push('');
  render(schema, 0, lines);
  return `${lines.join('\n')}\n`;
}

function render(schema: Schema, depth: number, lines: string[]): void {
  const pad = '  '.repeat(depth);
  for (const [key, node] of Object.entries(schema)) {
    if (!isField(node)) {
      lines.push(`${pad}${key}:`);
      render(node, depth + 1, lines);
      continue;
    }
    for (const docLine of wrap(node.doc, 100 - pad.length)) lines.push(`${pad}# ${docLine}`);
    const value = stringify(node.defaultValue, { flowCollectionPadding: false, collectionStyle: 'flow' }).trimEnd();
    lines.push(`${pad}${key}: ${value}`);
  }
}

function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && line.length + word.length + 1 > width) {
      out.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) out.push(line);
  return out;
}
