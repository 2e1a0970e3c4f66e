/**
 * JSON with object keys sorted and empty values (undefined, null, '', {} and []) left out: the same for two
 * objects that mean the same, whatever order or shape their producer wrote them in. For digests that decide
 * whether something changed.
 */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined && v !== null && v !== '')
      .map(([k, v]) => [k, canonicalJson(v)] as const)
      .filter(([, v]) => v !== '{}' && v !== '[]')
      .sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
