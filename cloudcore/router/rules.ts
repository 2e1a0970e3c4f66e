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

/** KubeEdge's flows (admit_rule.go), and servicebus → rest, which its Router serves but its webhook forgets. */
const ALLOWED_FLOWS = new Set(['rest→eventbus', 'rest→servicebus', 'eventbus→rest', 'servicebus→rest']);
const SOURCE_KEYS: Record<EndpointType, string[]> = { rest: ['path'], eventbus: ['topic', 'node_name'], servicebus: ['target_url', 'node_name'] };
const TARGET_KEYS: Record<EndpointType, string[]> = { rest: ['resource'], eventbus: ['topic'], servicebus: ['path'] };

const key = (o: { metadata?: { name?: string; namespace?: string } }): string => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

/** `/a/b/` → `/a/b`; `a` → `/a`. */
export function normalizePath(path: string): string {
  const p = `/${path}`.replace(/\/+/g, '/');
  return p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p;
}

/**
 * A rest source path's segments. A whole segment `{name}` is a placeholder matching any one non-empty segment,
 * as in KubeEdge (cloud/pkg/router/utils/path.go `URLToURLRegex`); braces inside a segment (`x{id}`) are literal.
 */
export function pathPattern(path: string): { segments: string[]; placeholders: number } {
  const segments = normalizePath(path)
    .split('/')
    .slice(1)
    .filter((s) => s !== '');
  return { segments, placeholders: segments.filter(isPlaceholder).length };
}

const isPlaceholder = (segment: string): boolean => /^\{[^{}/]+\}$/.test(segment);
/** What a Rule's path competes for: `/a/{id}` and `/a/{name}` are the same source. */
const canonicalPath = (path: string): string =>
  `/${pathPattern(path)
    .segments.map((s) => (isPlaceholder(s) ? '{}' : s))
    .join('/')}`;

export class RuleTable {
  private readonly rules = new Map<string, Rule>();
  private readonly endpoints = new Map<string, RuleEndpoint>();
  /** problems(), until the next change. */
  private checked: Map<string, string> | undefined;

  upsertRule(rule: Rule): void {
    this.checked = undefined;
    this.rules.set(key(rule), rule);
  }

  deleteRule(rule: Rule): void {
    this.checked = undefined;
    this.rules.delete(key(rule));
  }

  upsertEndpoint(endpoint: RuleEndpoint): void {
    this.checked = undefined;
    this.endpoints.set(key(endpoint), endpoint);
  }

  deleteEndpoint(endpoint: RuleEndpoint): void {
    this.checked = undefined;
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
   * Why each inactive Rule is inactive, by rule key: what KubeEdge's admission webhook checks across objects,
   * which no CRD rule can (docs/router.md, "Checked by cloudcore's Router at runtime"). Two rest-source Rules
   * with one path in a namespace (placeholder names aside: `/a/{id}` and `/a/{name}` are one path), or two
   * eventbus-source Rules with one topic and node: the first by name acts.
   */
  problems(): Map<string, string> {
    if (this.checked) return this.checked;
    const problems = (this.checked = new Map<string, string>());
    const taken = new Map<string, string>();
    for (const [ruleKey, rule] of [...this.rules].sort(([a], [b]) => a.localeCompare(b))) {
      const ns = rule.metadata?.namespace ?? '';
      const source = this.endpointType(rule, 'source');
      const target = this.endpointType(rule, 'target');
      const from = rule.spec?.sourceResource ?? {};
      const to = rule.spec?.targetResource ?? {};
      let problem: string | undefined;
      if (!source) problem = `source RuleEndpoint ${ns}/${rule.spec?.source ?? ''} does not exist`;
      else if (!target) problem = `target RuleEndpoint ${ns}/${rule.spec?.target ?? ''} does not exist`;
      else if (!ALLOWED_FLOWS.has(`${source}→${target}`)) problem = `a ${source} source cannot go to a ${target} target`;
      else {
        const missing = [
          ...SOURCE_KEYS[source].filter((k) => !from[k]).map((k) => `sourceResource.${k}`),
          ...TARGET_KEYS[target].filter((k) => !to[k]).map((k) => `targetResource.${k}`),
        ];
        if (missing.length > 0) problem = `a ${source} → ${target} rule needs ${missing.join(' and ')}`;
        else {
          const slot =
            source === 'rest'
              ? `${ns} rest ${canonicalPath(from.path!)}`
              : source === 'eventbus'
                ? `${ns} eventbus ${from.topic} ${from.node_name}`
                : undefined;
          const holder = slot && taken.get(slot);
          const what = source === 'rest' ? `rest ${normalizePath(from.path!)}` : slot?.split(' ').slice(1).join(' ');
          if (holder) problem = `rule ${holder} already has this source (${what})`;
          else if (slot) taken.set(slot, ruleKey);
        }
      }
      if (problem) problems.set(ruleKey, problem);
    }
    return problems;
  }

  /**
   * Per node, the Rules whose source is on it (eventbus or servicebus, `sourceResource.node_name`) and whose
   * target is rest: what that edge must hold to subscribe to the topic or allow the URL.
   */
  edgeRules(): Map<string, EdgeRule[]> {
    const byNode = new Map<string, EdgeRule[]>();
    const problems = this.problems();
    for (const [ruleKey, rule] of this.rules) {
      if (problems.has(ruleKey)) continue;
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
   * The rest-source Rule in `namespace` whose source path matches `path` (the request path past
   * `/{node}/{namespace}`): segment by segment from the start, a `{name}` segment matching any one segment, the
   * request possibly longer. Of several, the most specific wins: more literal segments, then more segments, then
   * the first by rule key. KubeEdge's match is an unanchored regex against the whole URI (listener/http.go
   * `matchedPath`), so its `/test` also matches `/testing` and `/x/test`, and its ties are random; both are bugs
   * no YAML needs. A Rule whose endpoints are missing matches nothing.
   */
  matchRest(namespace: string, path: string): RestMatch | undefined {
    const wanted = normalizePath(path)
      .split('/')
      .slice(1)
      .filter((s) => s !== '');
    let best: { match: RestMatch; rank: [number, number] } | undefined;
    const problems = this.problems();
    for (const [ruleKey, rule] of this.rules) {
      if (rule.metadata?.namespace !== namespace || problems.has(ruleKey)) continue;
      if (this.endpoint(namespace, rule.spec?.source)?.spec?.ruleEndpointType !== 'rest') continue;
      const sourcePath = rule.spec?.sourceResource?.path;
      if (!sourcePath) continue;
      const { segments, placeholders } = pathPattern(sourcePath);
      if (segments.length > wanted.length || !segments.every((s, i) => s === wanted[i] || isPlaceholder(s))) continue;
      const rank: [number, number] = [segments.length - placeholders, segments.length];
      if (best && (rank[0] - best.rank[0] || rank[1] - best.rank[1] || best.match.ruleKey.localeCompare(ruleKey)) <= 0) continue;
      const target = this.endpoint(namespace, rule.spec?.target);
      const type = target?.spec?.ruleEndpointType;
      if (!target || (type !== 'rest' && type !== 'eventbus' && type !== 'servicebus')) continue;
      // KubeEdge's suffix is the URI past `/{node}/{namespace}/` with the rule path trimmed off as text
      // (provider/rest/rest.go `Forward`, strings.TrimPrefix): a path with a placeholder is never a text prefix of
      // the request, so the whole path goes on, and the target sees the placeholders' values.
      const extra = wanted.slice(placeholders > 0 ? 0 : segments.length);
      best = {
        match: {
          rule,
          ruleKey,
          target: { type, endpoint: target, resource: rule.spec?.targetResource ?? {} },
          extra: extra.length ? `/${extra.join('/')}` : '',
        },
        rank,
      };
    }
    return best?.match;
  }
}
