// A config schema is a tree of documented fields with defaults. The same tree validates a user's file,
// supplies defaults and prints the commented starting config (`--print-default-config`).

export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: string };

export interface Field<T> {
  readonly kind: 'field';
  readonly defaultValue: T;
  readonly doc: string;
  parse(value: unknown): ParseResult<T>;
}

export interface Schema {
  readonly [key: string]: Field<unknown> | Schema;
}

export type ConfigOf<S extends Schema> = {
  readonly [K in keyof S]: S[K] extends Field<infer T> ? T : S[K] extends Schema ? ConfigOf<S[K]> : never;
};

export function isField(node: Field<unknown> | Schema): node is Field<unknown> {
  return (node as Field<unknown>).kind === 'field';
}

const ok = <T>(value: T): ParseResult<T> => ({ ok: true, value });
const bad = (error: string): ParseResult<never> => ({ ok: false, error });
const show = (value: unknown): string => JSON.stringify(value) ?? String(value);

/** `expected` describes what `pattern` accepts, for the error message ("a host:port"). */
export function str(defaultValue: string, doc: string, opts: { allowEmpty?: boolean; pattern?: RegExp; expected?: string } = {}): Field<string> {
  return {
    kind: 'field',
    defaultValue,
    doc,
    parse(value) {
      if (typeof value !== 'string') return bad(`must be a string, got ${show(value)}`);
      if (!opts.allowEmpty && value.length === 0) return bad('must not be empty');
      if (opts.pattern && value.length > 0 && !opts.pattern.test(value)) return bad(`${show(value)} is not ${opts.expected ?? `matching ${opts.pattern}`}`);
      return ok(value);
    },
  };
}

export function int(defaultValue: number, doc: string, opts: { min?: number; max?: number } = {}): Field<number> {
  return {
    kind: 'field',
    defaultValue,
    doc,
    parse(value) {
      if (typeof value !== 'number' || !Number.isSafeInteger(value)) return bad(`must be an integer, got ${show(value)}`);
      if (opts.min !== undefined && value < opts.min) return bad(`must be at least ${opts.min}, got ${value}`);
      if (opts.max !== undefined && value > opts.max) return bad(`must be at most ${opts.max}, got ${value}`);
      return ok(value);
    },
  };
}

export function bool(defaultValue: boolean, doc: string): Field<boolean> {
  return {
    kind: 'field',
    defaultValue,
    doc,
    parse: (value) => (typeof value === 'boolean' ? ok(value) : bad(`must be true or false, got ${show(value)}`)),
  };
}

export function oneOf<const V extends string>(values: readonly V[], defaultValue: V, doc: string): Field<V> {
  return {
    kind: 'field',
    defaultValue,
    doc: `${doc} One of: ${values.join(', ')}.`,
    parse: (value) => (values.includes(value as V) ? ok(value as V) : bad(`must be one of ${values.join(', ')}, got ${show(value)}`)),
  };
}

export function strList(defaultValue: readonly string[], doc: string): Field<readonly string[]> {
  return {
    kind: 'field',
    defaultValue,
    doc,
    parse(value) {
      if (!Array.isArray(value)) return bad(`must be a list of strings, got ${show(value)}`);
      const wrong = value.findIndex((v) => typeof v !== 'string' || v.length === 0);
      if (wrong >= 0) return bad(`item ${wrong} must be a non-empty string, got ${show(value[wrong])}`);
      return ok(value as string[]);
    },
  };
}

/**
 * One string or a non-empty list of them, always read as a list: a setting that grew from one value to several
 * (edgeHub.server) keeps accepting the old single form. Each item is checked like `str` checks its value.
 */
export function strOrList(defaultValue: readonly string[], doc: string, opts: { pattern?: RegExp; expected?: string } = {}): Field<readonly string[]> {
  const problem = (value: unknown): string | undefined => {
    if (typeof value !== 'string' || value.length === 0) return `must be a non-empty string, got ${show(value)}`;
    if (opts.pattern && !opts.pattern.test(value)) return `${show(value)} is not ${opts.expected ?? `matching ${opts.pattern}`}`;
    return undefined;
  };
  return {
    kind: 'field',
    defaultValue,
    doc,
    parse(value) {
      if (!Array.isArray(value)) {
        const wrong = problem(value);
        return wrong ? bad(typeof value === 'string' ? wrong : `must be a string or a list of strings, got ${show(value)}`) : ok([value as string]);
      }
      if (value.length === 0) return bad('must not be an empty list');
      const wrong = value.flatMap((item, i) => (problem(item) ? [`item ${i} ${problem(item)}`] : []));
      return wrong.length > 0 ? bad(wrong.join('; ')) : ok(value as string[]);
    },
  };
}

/** A path field whose file holds the value of the sibling key `secretFor`; the loader reads it into that key. */
export interface SecretFileField extends Field<string> {
  readonly secretFor: string;
}

/**
 * `<secretKey>File`: the secret comes from a file (a mounted Kubernetes Secret, a 0600 file) instead of the
 * config file or a flag, where it would show in backups and `ps`. The module keeps reading `secretKey`.
 */
export function secretFile(secretKey: string): SecretFileField {
  const doc =
    `File holding the ${secretKey}, read at start (trailing newline trimmed); keeps the secret out of the ` +
    `config file and the process list. Set this or \`${secretKey}\`, not both.`;
  return { ...str('', doc, { allowEmpty: true }), secretFor: secretKey };
}

export function isSecretFile(node: Field<unknown> | Schema): node is SecretFileField {
  return isField(node) && typeof (node as SecretFileField).secretFor === 'string';
}
