import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { useControlPlane } from '../support/harness.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CRDS = join(ROOT, 'build', 'crds');
const EXAMPLES = readdirSync(join(CRDS, 'examples'))
  .filter((f) => f.startsWith('router-'))
  .map((f) => join(CRDS, 'examples', f));

const controlPlane = useControlPlane();

/** Installs build/crds the way `npm run up` does; every test calls it, so each stands alone. */
const crds = (): Promise<void> => controlPlane().installCrds();

async function namespace(name: string): Promise<string> {
  await crds();
  await controlPlane().kubectlOk(['create', 'namespace', name]);
  return name;
}

const getJson = async (args: string[]): Promise<any> => JSON.parse(await controlPlane().kubectlOk([...args, '-o', 'json']));
const manifests = (file: string): any[] => parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS());

const endpoint = (spec: unknown): any => ({ apiVersion: 'rules.kubeedge.io/v1', kind: 'RuleEndpoint', metadata: {}, spec });
const rule = (spec: unknown): any => ({ apiVersion: 'rules.kubeedge.io/v1', kind: 'Rule', metadata: {}, spec });
const restToEventbus = { source: 'my-rest', sourceResource: { path: '/test' }, target: 'my-eventbus', targetResource: { topic: 'test' } };
const eventbusToRest = {
  source: 'my-eventbus',
  sourceResource: { topic: 'test', node_name: 'edge-node' },
  target: 'my-rest',
  targetResource: { resource: 'http://127.0.0.1:8080/hello' },
};

describe('rules.kubeedge.io/v1 CRDs on a real kube-apiserver', () => {
  it('installs Rule and RuleEndpoint as namespaced v1 CRDs under KubeEdge names, without printer columns or status subresource', async () => {
    await crds();
    const cp = controlPlane();
    for (const [name, kind, shortNames] of [
      ['rules', 'Rule', undefined],
      ['ruleendpoints', 'RuleEndpoint', ['re']],
    ] as const) {
      const crd = await getJson(['get', 'crd', `${name}.rules.kubeedge.io`]);
      expect(crd.spec).toMatchObject({ group: 'rules.kubeedge.io', scope: 'Namespaced' });
      expect(crd.spec.names).toMatchObject({ plural: name, singular: kind.toLowerCase(), kind });
      expect(crd.spec.names.shortNames).toEqual(shortNames);
      expect(crd.spec.versions.map((v: any) => [v.name, v.served, v.storage])).toEqual([['v1', true, true]]);
      expect(crd.spec.versions[0].subresources).toBeUndefined();
      expect(crd.spec.versions[0].additionalPrinterColumns).toBeUndefined();
      const conditions = Object.fromEntries(crd.status.conditions.map((c: any) => [c.type, c.status]));
      expect(conditions).toMatchObject({ Established: 'True', NamesAccepted: 'True' });
    }
    await cp.kubectlOk(['get', 're', '-A']);
  });

  it('creates and server-side applies the example of each of the four flows unchanged, keeping every field', async () => {
    await crds();
    const cp = controlPlane();
    expect(EXAMPLES.map((f) => f.slice(f.lastIndexOf('/') + 1)).sort()).toEqual([
      'router-eventbus-to-rest.yaml',
      'router-rest-to-eventbus.yaml',
      'router-rest-to-servicebus.yaml',
      'router-servicebus-to-rest.yaml',
    ]);
    for (const file of EXAMPLES) {
      const flow = file.slice(file.lastIndexOf('/router-') + '/router-'.length, -'.yaml'.length);
      // `kubectl create -f` is how KubeEdge's page applies them; each example gets its own namespace, as they share names.
      for (const [how, args] of [
        ['create', ['create', '-f', file]],
        ['ssa', ['apply', '--server-side', '-f', file]],
      ] as const) {
        const ns = await namespace(`${flow}-${how}`);
        await cp.kubectlOk([...args, '-n', ns]);
        for (const doc of manifests(file)) {
          const stored = await getJson(['get', doc.kind, doc.metadata.name, '-n', ns]);
          expect(stored.spec, `${file}: ${doc.kind} ${doc.metadata.name}`).toEqual(doc.spec);
          expect(stored.metadata.labels).toEqual(doc.metadata.labels);
        }
      }
    }
  });

  it('keeps a status written by cloudcore through the object, as KubeEdge Router writes it', async () => {
    const ns = await namespace('status');
    const cp = controlPlane();
    await cp.kubectlOk(['apply', '-n', ns, '-f', '-'], JSON.stringify({ ...rule(restToEventbus), metadata: { name: 'counted' } }));
    const status = { successMessages: 3, failMessages: 1, errors: ['edge edge-node is offline'] };
    await cp.kubectlOk(['patch', 'rule', 'counted', '-n', ns, '--type=merge', '-p', JSON.stringify({ status })]);
    expect((await getJson(['get', 'rule', 'counted', '-n', ns])).status).toEqual(status);
  });

  // KubeEdge's admission webhook takes these (or would, had it a servicebus source); so must the CRDs.
  const accepted = [
    {
      what: 'a rest endpoint with a non-numeric service_port, which only servicebus endpoints use',
      manifest: endpoint({ ruleEndpointType: 'rest', properties: { service_port: 'http' } }),
    },
    {
      what: 'a servicebus service_port with a sign and leading zeros, as strconv.Atoi reads it',
      manifest: endpoint({ ruleEndpointType: 'servicebus', properties: { service_port: '+08080' } }),
    },
    { what: 'a servicebus service_port of 65535', manifest: endpoint({ ruleEndpointType: 'servicebus', properties: { service_port: '65535' } }) },
    { what: 'an eventbus endpoint without properties', manifest: endpoint({ ruleEndpointType: 'eventbus' }) },
    { what: 'a rest source whose path is empty', manifest: rule({ ...restToEventbus, sourceResource: { path: '' } }) },
    {
      what: 'a servicebus source (target_url and node_name) to a rest target',
      manifest: rule({ ...eventbusToRest, sourceResource: { target_url: 'http://a/b', node_name: 'edge-node' } }),
    },
    {
      what: 'a sourceResource that fits both a rest and an eventbus source, to a rest target',
      manifest: rule({ ...eventbusToRest, sourceResource: { path: '/a', topic: 't', node_name: 'n' } }),
    },
    {
      what: 'extra keys in sourceResource and targetResource',
      manifest: rule({ ...restToEventbus, sourceResource: { path: '/a', x: 'y' }, targetResource: { topic: 't', qos: '1' } }),
    },
  ].map((c, i) => ({ ...c, name: `accepted-${i}` }));

  it.each(accepted)('accepts $what, as KubeEdge does', async ({ manifest, name }) => {
    await crds();
    const cp = controlPlane();
    await cp.kubectlOk(['apply', '-n', 'default', '-f', '-'], JSON.stringify({ ...manifest, metadata: { name } }));
    expect((await getJson(['get', manifest.kind, name, '-n', 'default'])).spec).toEqual(manifest.spec);
  });

  // Each is refused by KubeEdge too (its CRD or its admission webhook); kubectl's error must name the field.
  const invalid = [
    { what: 'an unknown ruleEndpointType', error: 'spec.ruleEndpointType: Unsupported value: "mqtt"', manifest: endpoint({ ruleEndpointType: 'mqtt' }) },
    { what: 'a RuleEndpoint without ruleEndpointType', error: 'spec.ruleEndpointType: Required value', manifest: endpoint({ properties: {} }) },
    {
      what: 'a servicebus endpoint without properties',
      error: 'spec.properties[service_port]: Required value: a servicebus endpoint needs properties.service_port',
      manifest: endpoint({ ruleEndpointType: 'servicebus' }),
    },
    {
      what: 'a servicebus endpoint without service_port',
      error: 'spec.properties[service_port]: Required value',
      manifest: endpoint({ ruleEndpointType: 'servicebus', properties: { port: '8080' } }),
    },
    {
      what: 'a servicebus service_port of 0',
      error: 'spec.properties[service_port]: Invalid value: "object": properties.service_port must be a port number, 1-65535',
      manifest: endpoint({ ruleEndpointType: 'servicebus', properties: { service_port: '0' } }),
    },
    {
      what: 'a servicebus service_port above 65535',
      error: 'spec.properties[service_port]: Invalid value: "object": properties.service_port must be a port number',
      manifest: endpoint({ ruleEndpointType: 'servicebus', properties: { service_port: '65536' } }),
    },
    {
      // CEL's int() fails as strconv.Atoi does; the API server words that as an evaluation error.
      what: 'a non-numeric servicebus service_port',
      error: 'evaluating rule: properties.service_port must be a port number, 1-65535',
      manifest: endpoint({ ruleEndpointType: 'servicebus', properties: { service_port: 'http' } }),
    },
    { what: 'a Rule without spec', error: 'spec: Required value', manifest: { ...rule(undefined), spec: undefined } },
    { what: 'a Rule without source', error: 'spec.source: Required value', manifest: rule({ ...restToEventbus, source: undefined }) },
    { what: 'a Rule with an empty source', error: 'spec.source: Invalid value: ""', manifest: rule({ ...restToEventbus, source: '' }) },
    { what: 'a Rule without target', error: 'spec.target: Required value', manifest: rule({ ...restToEventbus, target: undefined }) },
    { what: 'a Rule without sourceResource', error: 'spec.sourceResource: Required value', manifest: rule({ ...restToEventbus, sourceResource: undefined }) },
    { what: 'a Rule without targetResource', error: 'spec.targetResource: Required value', manifest: rule({ ...restToEventbus, targetResource: undefined }) },
    {
      what: 'a sourceResource value that is not a string',
      error: 'spec.sourceResource.path: Invalid value: "integer"',
      manifest: rule({ ...restToEventbus, sourceResource: { path: 1 } }),
    },
    {
      what: 'a rest source without path',
      error: 'spec.sourceResource: Invalid value: "object": needs path (rest source), or topic and node_name (eventbus source)',
      manifest: rule({ ...restToEventbus, sourceResource: { url: '/test' } }),
    },
    {
      what: 'an eventbus source without node_name',
      error: 'spec.sourceResource: Invalid value: "object": needs path',
      manifest: rule({ ...eventbusToRest, sourceResource: { topic: 'test' } }),
    },
    {
      what: 'an eventbus source without topic',
      error: 'spec.sourceResource: Invalid value: "object": needs path',
      manifest: rule({ ...eventbusToRest, sourceResource: { node_name: 'edge-node' } }),
    },
    {
      what: 'a target without resource, topic or path',
      error: 'spec.targetResource: Invalid value: "object": needs resource (rest target), or topic (eventbus target), or path (servicebus target)',
      manifest: rule({ ...restToEventbus, targetResource: { url: 'http://a' } }),
    },
    {
      what: 'a rest target without resource (an eventbus source goes only to rest)',
      error: 'spec.targetResource: Invalid value: "object": an eventbus or servicebus source (sourceResource without path) goes to a rest target',
      manifest: rule({ ...eventbusToRest, targetResource: { path: '/hello' } }),
    },
    {
      what: 'a rest source to a rest target',
      error: 'spec.targetResource: Invalid value: "object": a rest source (sourceResource with path) goes to an eventbus or servicebus target',
      manifest: rule({ ...restToEventbus, target: 'other-rest', targetResource: { resource: 'http://a' } }),
    },
    {
      what: 'an eventbus source to an eventbus target',
      error: 'spec.targetResource: Invalid value: "object": an eventbus or servicebus source',
      manifest: rule({ ...eventbusToRest, target: 'other-eventbus', targetResource: { topic: 't' } }),
    },
    {
      what: 'a Rule whose source and target are the same RuleEndpoint',
      error: 'spec.target: Invalid value: "object": must name a different RuleEndpoint than source',
      manifest: rule({ ...restToEventbus, target: 'my-rest' }),
    },
    {
      what: 'a non-integer status count',
      error: 'status.successMessages: Invalid value: "string"',
      manifest: { ...rule(restToEventbus), status: { successMessages: 'many' } },
    },
  ].map((c, i) => ({ ...c, name: `invalid-${i}` }));

  it.each(invalid)('refuses $what, naming the field', async ({ manifest, error, name }) => {
    await crds();
    const cp = controlPlane();
    const r = await cp.kubectl(['apply', '-n', 'default', '-f', '-'], JSON.stringify({ ...manifest, metadata: { name } }));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(error);
    expect((await cp.kubectl(['get', manifest.kind, name, '-n', 'default'])).stderr).toContain('NotFound');
  });
});
