// KubeEdge's rules.kubeedge.io/v1 Rule and RuleEndpoint (pkg/apis/rules/v1), and which Rule a request matches.
// Pure: the Router feeds it from its informers.

import type { EdgeRule } from '../../shared/service-call.js';

export const RULE_API_GROUP = 'rules.kubeedge.io';
export const RULE_API_VERSION = 'v1';

export type EndpointType = 'rest' | 'eventbus' | 'servicebus';

export interface RuleEndpoint {
  metadata?: { name?: string; namespace?: string };
  spec?: { ruleEndpointType?: string; properties?: Record<string, string> };
}

export interface Rule {
  metadata?: { name?: string; namespace?: string; uid?: string; resourceVersion?: string };
  spec?: { source?: string; sourceResource?: Record<string, string>; target?: string; targetResource?: Record<string, string> };
  status?: { successMessages?: number; failMessages?: number; errors?: string[] };
}

/** What a request to the REST listener resolves to. */
export interface RestMatch {
  rule: Rule;
  /** `<namespace>/<name>` */
  ruleKey: string;
  target: { type: EndpointType; endpoint: RuleEndpoint; resource: Record<string, string> };
  /** The request path past the rule's source path ('' or '/…'): appended to the target path or topic. */
  extra: string;
}

const key = (o: { metadata?: { name?: string; namespace?: string } }): string => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

/** `/a/b/` → `/a/b`; `a` → `/a`. */
export function normalizePath(path: string): string {
  const p = `/${path}`.replace(/\/+/g, '/');
  return p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p;
}

export class RuleTable {
  private readonly rules = new Map<string, Rule>();
  private readonly endpoints = new Map<string, RuleEndpoint>();

  upsertRule(rule: Rule): void {
    this.rules.set(key(rule), rule);
  }

  deleteRule(rule: Rule): void {
    this.rules.delete(key(rule));
  }

  upsertEndpoint(endpoint: RuleEndpoint): void {
    this.endpoints.set(key(endpoint), endpoint);
  }

  deleteEndpoint(endpoint: RuleEndpoint): void {
    this.endpoints.delete(key(endpoint));
  }

  rule(ruleKey: string): Rule | undefined {
    return this.rules.get(ruleKey);
  }

  /** The type of a Rule's source or target endpoint, when the endpoint exists and has a known type. */
  endpointType(rule: Rule, side: 'source' | 'target'): EndpointType | undefined {
    const type = this.endpoint(rule.metadata?.namespace ?? '', rule.spec?.[side])?.spec?.ruleEndpointType;
    return type === 'rest' || type === 'eventbus' || type === 'servicebus' ? type : undefined;
  }

  /**
   * Per node, the Rules whose source is on it (eventbus or servicebus, `sourceResource.node_name`) and whose
   * target is rest: what that edge must hold to subscribe to the topic or allow the URL.
   */
  edgeRules(): Map<string, EdgeRule[]> {
    const byNode = new Map<string, EdgeRule[]>();
    for (const rule of this.rules.values()) {
      const sourceType = this.endpointType(rule, 'source');
      const node = rule.spec?.sourceResource?.node_name;
      if ((sourceType !== 'eventbus' && sourceType !== 'servicebus') || !node || this.endpointType(rule, 'target') !== 'rest') continue;
      const { name = '', namespace = '', uid = '', resourceVersion = '' } = rule.metadata ?? {};
      const list = byNode.get(node) ?? [];
      list.push({ metadata: { name, namespace, uid, resourceVersion }, spec: rule.spec ?? {}, sourceType });
      byNode.set(node, list);
    }
    return byNode;
  }

  private endpoint(namespace: string, name: string | undefined): RuleEndpoint | undefined {
    return name ? this.endpoints.get(`${namespace}/${name}`) : undefined;
  }

  /**
   * The rest-source Rule in `namespace` whose source path is `path` or a prefix of it at a segment boundary;
   * the longest such path wins. A Rule whose endpoints are missing matches nothing.
   */
  matchRest(namespace: string, path: string): RestMatch | undefined {
    const wanted = normalizePath(path);
    let best: RestMatch | undefined;
    let bestLength = -1;
    for (const [ruleKey, rule] of this.rules) {
      if (rule.metadata?.namespace !== namespace) continue;
      const source = this.endpoint(namespace, rule.spec?.source);
      if (source?.spec?.ruleEndpointType !== 'rest') continue;
      const sourcePath = rule.spec?.sourceResource?.path;
      if (!sourcePath) continue;
      const p = normalizePath(sourcePath);
      const under = p === '/' ? wanted : wanted === p ? '' : wanted.startsWith(`${p}/`) ? wanted.slice(p.length) : undefined;
      if (under === undefined || p.length <= bestLength) continue;
      const target = this.endpoint(namespace, rule.spec?.target);
      const type = target?.spec?.ruleEndpointType;
      if (!target || (type !== 'rest' && type !== 'eventbus' && type !== 'servicebus')) continue;
      best = {
        rule,
        ruleKey,
        target: { type, endpoint: target, resource: rule.spec?.targetResource ?? {} },
        extra: p === '/' ? (wanted === '/' ? '' : wanted) : under,
      };
      bestLength = p.length;
    }
    return best;
  }
}
