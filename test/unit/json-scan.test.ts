import { describe, expect, it } from 'vitest';
import { metadataUid } from '../../edgecore/edgehub/json-scan.js';

const bytes = (v: unknown, space?: number): Buffer => Buffer.from(JSON.stringify(v, null, space));

describe('metadataUid', () => {
  it('agrees with JSON.parse on random objects of any key order, nesting and escaping', () => {
    let seed = 7;
    const rand = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const str = (): string => ['a', 'metadata', 'uid', 'x"y', 'back\\slash', 'ünï', '{[', ''][Math.floor(rand() * 8)]! + Math.floor(rand() * 100);
    const value = (depth: number): unknown => {
      const r = rand();
      if (depth > 3 || r < 0.3) return [str(), 42, -1.5e3, true, null][Math.floor(rand() * 5)];
      if (r < 0.6) return Array.from({ length: Math.floor(rand() * 4) }, () => value(depth + 1));
      return Object.fromEntries(Array.from({ length: Math.floor(rand() * 4) }, () => [str(), value(depth + 1)]));
    };
    for (let i = 0; i < 2_000; i++) {
      const before = Object.fromEntries(Array.from({ length: Math.floor(rand() * 3) }, () => [str(), value(0)]));
      const metadata = rand() < 0.9 ? { ...(value(2) as object), ...(rand() < 0.9 ? { uid: str() } : {}), annotations: { note: str() } } : undefined;
      const object = { ...before, ...(metadata ? { metadata } : {}), spec: value(0) };
      const expected = (object as { metadata?: { uid?: unknown } }).metadata?.uid;
      expect(metadataUid(bytes(object, rand() < 0.3 ? 2 : undefined))).toBe(typeof expected === 'string' ? expected : '');
    }
  });

  it('reads a Kubernetes object without looking past metadata', () => {
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'default', uid: '0b4c', labels: { a: 'b' } }, spec: { containers: [] } };
    expect(metadataUid(bytes(pod))).toBe('0b4c');
    // Bytes after metadata need not even be scanned: a truncated spec is not this function's concern.
    expect(metadataUid(Buffer.concat([bytes(pod).subarray(0, -1), Buffer.from(',"x":')]))).toBe('0b4c');
  });

  it('rejects bytes that are not a JSON object with ERR_INVALID_MESSAGE', () => {
    for (const bad of ['', '[1,2]', '{"metadata":{"uid":"x"', '{"a" 1}', '{"a":1,,}', '"str"']) {
      expect(() => metadataUid(Buffer.from(bad)), bad).toThrow(expect.objectContaining({ code: 'ERR_INVALID_MESSAGE' }));
    }
  });
});
