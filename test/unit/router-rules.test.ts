import { describe, expect, it } from 'vitest';
import { RuleTable, normalizePath, pathPattern, type Rule, type RuleEndpoint } from '../../cloudcore/router/rules.js';

const endpoint = (name: string, type: string, properties: Record<string, string> = {}, namespace = 'default'): RuleEndpoint => ({
  metadata: { name, namespace },
  spec: { ruleEndpointType: type, properties },
});
const rule = (name: string, path: string, target = 'sb', namespace = 'default'): Rule => ({
  metadata: { name, namespace },
  spec: { source: 'rest', sourceResource: { path }, target, targetResource: target === 'bus' ? { topic: 't' } : { path: '/app' } },
});

function table(): RuleTable {
  const t = new RuleTable();
  t.upsertEndpoint(endpoint('rest', 'rest'));
  t.upsertEndpoint(endpoint('sb', 'servicebus', { service_port: '8080' }));
  t.upsertEndpoint(endpoint('bus', 'eventbus'));
  return t;
}

describe('Router rule matching', () => {
  it('normalizes paths', () => {
    expect(['a', '/a/', '//a//b/', '/'].map(normalizePath)).toEqual(['/a', '/a', '/a/b', '/']);
  });

  it('matches a rest source path exactly or as a prefix at a segment boundary, the longest first, and returns the rest as extra', () => {
    const t = table();
    t.upsertRule(rule('short', '/a'));
    t.upsertRule(rule('long', '/a/b', 'bus'));
    expect(t.matchRest('default', '/a')).toMatchObject({ ruleKey: 'default/short', extra: '', target: { type: 'servicebus' } });
    expect(t.matchRest('default', '/a/x/y')).toMatchObject({ ruleKey: 'default/short', extra: '/x/y' });
    expect(t.matchRest('default', '/a/b/c')).toMatchObject({ ruleKey: 'default/long', extra: '/c', target: { type: 'eventbus' } });
    expect(t.matchRest('default', '/ab')).toBeUndefined();
    expect(t.matchRest('other', '/a')).toBeUndefined();
  });

  it('matches a {param} segment against any one segment and passes the whole path on, as KubeEdge does', () => {
    const t = table();
    t.upsertRule(rule('by-id', '/a/{id}'));
    expect(pathPattern('/a/{id}/')).toEqual({ segments: ['a', '{id}'], placeholders: 1 });
    // KubeEdge trims the rule path off as text (rest.go Forward), which a placeholder never is: the app sees 42.
    expect(t.matchRest('default', '/a/42/x')).toMatchObject({ ruleKey: 'default/by-id', extra: '/a/42/x' });
    expect(t.matchRest('default', '/a/42')).toMatchObject({ ruleKey: 'default/by-id', extra: '/a/42' });
    expect(t.matchRest('default', '/a')).toBeUndefined();
    expect(t.matchRest('default', '/a/')).toBeUndefined();
    expect(t.matchRest('default', '/b/42')).toBeUndefined();
    // Braces inside a segment are literal.
    t.upsertRule(rule('partial', '/p/x{id}'));
    expect(t.matchRest('default', '/p/x1')).toBeUndefined();
    expect(t.matchRest('default', '/p/x{id}')).toMatchObject({ ruleKey: 'default/partial', extra: '' });
  });

  it('prefers more literal segments, then more segments, then the first rule by name, whatever the order rules came in', () => {
    for (const order of [0, 1]) {
      const t = table();
      const rules = [rule('b-any', '/{kind}/{id}'), rule('c-lit', '/a/b'), rule('d-short', '/a'), rule('e-two', '/a/{id}'), rule('f-tail', '/{x}/b/c')];
      for (const r of order ? rules.reverse() : rules) t.upsertRule(r);
      expect(t.matchRest('default', '/a/b/z')).toMatchObject({ ruleKey: 'default/c-lit', extra: '/z' });
      expect(t.matchRest('default', '/a/q')).toMatchObject({ ruleKey: 'default/e-two', extra: '/a/q' });
      expect(t.matchRest('default', '/a')).toMatchObject({ ruleKey: 'default/d-short', extra: '' });
      expect(t.matchRest('default', '/z/q')).toMatchObject({ ruleKey: 'default/b-any', extra: '/z/q' });
      // Two literal segments each: /a/b (2 segments) against /{x}/b/c (3): the longer.
      expect(t.matchRest('default', '/a/b/c')).toMatchObject({ ruleKey: 'default/f-tail', extra: '/a/b/c' });
      // A true tie (one literal, two segments): the first by rule key.
      t.upsertRule(rule('a-first', '/{x}/q'));
      expect(t.matchRest('default', '/a/q')).toMatchObject({ ruleKey: 'default/a-first' });
    }
  });

  it('matches every path in the namespace for the root path /', () => {
    const t = table();
    t.upsertRule(rule('root', '/'));
    expect(t.matchRest('default', '/')).toMatchObject({ ruleKey: 'default/root', extra: '' });
    expect(t.matchRest('default', '/x/y')).toMatchObject({ ruleKey: 'default/root', extra: '/x/y' });
  });

  it('matches nothing for a rule whose endpoints are missing or not a rest source, and forgets deleted rules', () => {
    const t = table();
    t.upsertRule(rule('dangling', '/d', 'missing'));
    t.upsertRule({ ...rule('bus-source', '/e'), spec: { ...rule('x', '/e').spec, source: 'bus' } });
    expect(t.matchRest('default', '/d')).toBeUndefined();
    expect(t.matchRest('default', '/e')).toBeUndefined();
    const r = rule('gone', '/g');
    t.upsertRule(r);
    expect(t.matchRest('default', '/g')).toBeDefined();
    t.deleteRule(r);
    expect(t.matchRest('default', '/g')).toBeUndefined();
  });

  it('says why a rule is inactive: missing endpoints, a flow KubeEdge does not have, missing keys, a source another rule has', () => {
    const t = table();
    t.upsertRule(rule('a-first', '/same'));
    t.upsertRule(rule('b-second', '/same/'));
    t.upsertRule(rule('dangling', '/d', 'missing'));
    t.upsertRule(rule('c-id', '/p/{id}'));
    t.upsertRule(rule('d-name', '/p/{name}/'));
    t.upsertRule({
      metadata: { name: 'rest-rest', namespace: 'default' },
      spec: { source: 'rest', sourceResource: { path: '/r' }, target: 'rest', targetResource: { resource: 'http://x' } },
    });
    t.upsertRule({
      metadata: { name: 'no-topic', namespace: 'default' },
      spec: { source: 'rest', sourceResource: { path: '/t' }, target: 'bus', targetResource: {} },
    });
    expect(Object.fromEntries(t.problems())).toEqual({
      'default/b-second': 'rule default/a-first already has this source (rest /same)',
      'default/d-name': 'rule default/c-id already has this source (rest /p/{name})',
      'default/dangling': 'target RuleEndpoint default/missing does not exist',
      'default/rest-rest': 'a rest source cannot go to a rest target',
      'default/no-topic': 'a rest → eventbus rule needs targetResource.topic',
    });
    expect(t.matchRest('default', '/same')).toMatchObject({ ruleKey: 'default/a-first' });
    expect(t.matchRest('default', '/r')).toBeUndefined();
    t.upsertEndpoint(endpoint('missing', 'servicebus', { service_port: '1' }));
    expect(t.problems().has('default/dangling')).toBe(false);
  });
});
