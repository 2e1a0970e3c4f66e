import { describe, expect, it } from 'vitest';
import { RuleTable, normalizePath, type Rule, type RuleEndpoint } from '../../cloudcore/router/rules.js';

const endpoint = (name: string, type: string, properties: Record<string, string> = {}, namespace = 'default'): RuleEndpoint => ({
  metadata: { name, namespace },
  spec: { ruleEndpointType: type, properties },
});
const rule = (name: string, path: string, target = 'sb', namespace = 'default'): Rule => ({
  metadata: { name, namespace },
  spec: { source: 'rest', sourceResource: { path }, target, targetResource: { path: '/app' } },
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
});
