import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { useControlPlane } from '../support/harness.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CRDS = join(ROOT, 'build', 'crds');
const FIXTURES = join(ROOT, 'test', 'fixtures', 'devices');
const KUBEEDGE_EXAMPLES = readdirSync(join(FIXTURES, 'kubeedge')).map((f) => join(FIXTURES, 'kubeedge', f));
const THERMOMETER = join(FIXTURES, 'thermometer.yaml');
const OUR_EXAMPLES = [THERMOMETER, join(CRDS, 'examples', 'virtual-device.yaml')];

const controlPlane = useControlPlane();

/** Installs build/crds the way `npm run up` does; every test calls it, so each stands alone. */
const crds = (): Promise<void> => controlPlane().installCrds();

async function namespace(name: string): Promise<string> {
  await crds();
  await controlPlane().kubectlOk(['create', 'namespace', name]);
  return name;
}

const getJson = async (args: string[]): Promise<any> => JSON.parse(await controlPlane().kubectlOk([...args, '-o', 'json']));

/** kubectl's table output as rows keyed by header; cells are cut at the header's column starts, so blanks stay blank. */
function table(out: string): Record<string, string>[] {
  const [header = '', ...rows] = out.trimEnd().split('\n');
  const cols = [...header.matchAll(/\S+/g)].map((m) => ({ name: m[0], start: m.index }));
  return rows.map((row) => Object.fromEntries(cols.map((c, i) => [c.name, row.slice(c.start, cols[i + 1]?.start).trim()])));
}

/** What the API server keeps of a manifest: nulls are pruned (`configData:` with only a comment under it). */
function withoutNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutNulls);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([, v]) => v !== null)
      .map(([k, v]) => [k, withoutNulls(v)]),
  );
}

const manifests = (file: string): any[] => parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS());
const [thermometerModel, thermometer] = manifests(THERMOMETER);

describe('devices.kubeedge.io/v1beta1 CRDs on a real kube-apiserver', () => {
  it('installs Device and DeviceModel as namespaced v1beta1 CRDs that become Established under KubeEdge names', async () => {
    await crds();
    const cp = controlPlane();
    for (const [name, kind, shortName, hasStatus] of [
      ['devices', 'Device', 'dev', true],
      ['devicemodels', 'DeviceModel', 'devm', false],
    ] as const) {
      const crd = await getJson(['get', 'crd', `${name}.devices.kubeedge.io`]);
      expect(crd.spec).toMatchObject({ group: 'devices.kubeedge.io', scope: 'Namespaced' });
      expect(crd.spec.names).toMatchObject({ plural: name, singular: kind.toLowerCase(), kind, shortNames: [shortName] });
      expect(crd.spec.versions.map((v: any) => [v.name, v.served, v.storage])).toEqual([['v1beta1', true, true]]);
      expect(Boolean(crd.spec.versions[0].subresources?.status)).toBe(hasStatus);
      const conditions = Object.fromEntries(crd.status.conditions.map((c: any) => [c.type, c.status]));
      expect(conditions).toMatchObject({ Established: 'True', NamesAccepted: 'True' });
      await cp.kubectlOk(['get', shortName, '-A']);
    }
  });

  it("applies KubeEdge's documented v1beta1 examples and this project's examples unchanged, keeping every field", async () => {
    await crds();
    const cp = controlPlane();
    for (const file of KUBEEDGE_EXAMPLES) expect(readFileSync(file, 'utf8')).toMatch(/^# Source: https:\/\/github\.com\/kubeedge\/\S+/);
    for (const file of [...KUBEEDGE_EXAMPLES, ...OUR_EXAMPLES]) {
      await cp.kubectlOk(['apply', '-f', file]);
      for (const doc of manifests(file)) {
        const stored = await getJson(['get', doc.kind, doc.metadata.name, '-n', doc.metadata.namespace ?? 'default']);
        expect(stored.spec, `${file}: ${doc.kind} ${doc.metadata.name}`).toEqual(withoutNulls(doc.spec));
        // A manifest's status is ignored on create, as with any status subresource: only cloudcore writes it.
        expect(stored.status).toBeUndefined();
      }
    }
  });

  it('shows node, model, protocol and state columns in kubectl get devices, and the protocol in get devicemodels', async () => {
    const ns = await namespace('columns');
    const cp = controlPlane();
    await cp.kubectlOk(['apply', '-n', ns, '-f', THERMOMETER]);
    const row = { NAME: 'thermometer-1', NODE: 'edge-1', MODEL: 'thermometer-model', PROTOCOL: 'modbus' };
    expect(table(await cp.kubectlOk(['get', 'devices', '-n', ns]))).toEqual([{ ...row, STATE: '', AGE: expect.stringMatching(/^\d+[smh]/) }]);
    await cp.kubectlOk(['patch', 'device', 'thermometer-1', '-n', ns, '--subresource=status', '--type=merge', '-p', '{"status":{"state":"online"}}']);
    expect(table(await cp.kubectlOk(['get', 'devices', '-n', ns]))).toEqual([{ ...row, STATE: 'online', AGE: expect.any(String) }]);
    expect(table(await cp.kubectlOk(['get', 'devicemodels', '-n', ns]))).toEqual([{ NAME: 'thermometer-model', PROTOCOL: 'modbus', AGE: expect.any(String) }]);
  });

  it('keeps reports written through the status subresource when the spec is edited or re-applied', async () => {
    const ns = await namespace('status');
    const cp = controlPlane();
    const device = ['device', 'thermometer-1', '-n', ns];
    await cp.kubectlOk(['apply', '-n', ns, '-f', THERMOMETER]);
    // The pre-v1.23 KubeEdge layout, timestamps as epoch-millisecond strings (docs/devices.md §2).
    const status = {
      twins: [
        { propertyName: 'temperature', reported: { value: '21.5', metadata: { timestamp: '1796094000000', type: 'float' } } },
        {
          propertyName: 'setpoint',
          reported: { value: '20', metadata: { timestamp: '1796094000000', type: 'int' } },
          observedDesired: { value: '22', metadata: { timestamp: '1796093990000', type: 'int' } },
        },
      ],
      state: 'online',
      lastOnlineTime: '2026-12-01T03:00:00Z',
    };
    await cp.kubectlOk(['patch', ...device, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })]);
    expect((await getJson(['get', ...device])).status).toEqual(status);

    // A desired value set by a user, and an attempt to write status through the main resource.
    await cp.kubectlOk(['patch', ...device, '--type=json', '-p', '[{"op":"add","path":"/spec/properties/1/desired","value":{"value":"22"}}]']);
    await cp.kubectlOk(['patch', ...device, '--type=merge', '-p', '{"status":{"state":"offline"}}']);
    let stored = await getJson(['get', ...device]);
    expect(stored.spec.properties[1].desired).toEqual({ value: '22' });
    expect(stored.status).toEqual(status);

    await cp.kubectlOk(['apply', '-n', ns, '-f', THERMOMETER]);
    stored = await getJson(['get', ...device]);
    expect(stored.spec).toEqual(thermometer.spec);
    expect(stored.status).toEqual(status);

    // The other way round: a write to /status cannot change the spec.
    const both = '{"spec":{"nodeName":"edge-9"},"status":{"state":"offline"}}';
    await cp.kubectlOk(['patch', ...device, '--subresource=status', '--type=merge', '-p', both]);
    stored = await getJson(['get', ...device]);
    expect(stored.spec.nodeName).toBe('edge-1');
    expect(stored.status).toEqual({ ...status, state: 'offline' });
  });

  it('refuses a status report with a non-string value or timestamp, or a property twice, and keeps the old status', async () => {
    const ns = await namespace('bad-status');
    const cp = controlPlane();
    const device = ['device', 'thermometer-1', '-n', ns];
    await cp.kubectlOk(['apply', '-n', ns, '-f', THERMOMETER]);
    await cp.kubectlOk(['patch', ...device, '--subresource=status', '--type=merge', '-p', '{"status":{"state":"online"}}']);
    const cases: [unknown, string][] = [
      [[{ propertyName: 'temperature', reported: { value: 21.5 } }], 'status.twins[0].reported.value: Invalid value: "number"'],
      [
        [{ propertyName: 'temperature', reported: { value: '21.5', metadata: { timestamp: 1796094000000 } } }],
        'status.twins[0].reported.metadata.timestamp: Invalid value: "integer"',
      ],
      [[{ propertyName: 'temperature' }, { propertyName: 'temperature' }], 'status.twins[1]: Duplicate value'],
    ];
    for (const [twins, error] of cases) {
      const r = await cp.kubectl(['patch', ...device, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { twins } })]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(error);
    }
    expect((await getJson(['get', ...device])).status).toEqual({ state: 'online' });
  });

  // Each case breaks one thing in the thermometer example; kubectl's error must name the field.
  const model = (edit: (spec: any) => void): any => broken(thermometerModel, edit);
  const dev = (edit: (spec: any) => void): any => broken(thermometer, edit);
  const invalid = [
    { what: 'an unknown property type', error: 'spec.properties[0].type: Unsupported value: "LONG"', manifest: model((s) => (s.properties[0].type = 'LONG')) },
    {
      what: 'an unknown access mode',
      error: 'spec.properties[1].accessMode: Unsupported value: "WriteOnly"',
      manifest: model((s) => (s.properties[1].accessMode = 'WriteOnly')),
    },
    { what: 'a model property without a name', error: 'spec.properties[1].name: Required value', manifest: model((s) => delete s.properties[1].name) },
    { what: 'a model property named twice', error: 'spec.properties[1]: Duplicate value', manifest: model((s) => (s.properties[1].name = 'temperature')) },
    {
      what: 'a numeric desired value',
      error: 'spec.properties[1].desired.value: Invalid value: "integer"',
      manifest: dev((s) => (s.properties[1].desired = { value: 22 })),
    },
    {
      what: 'a desired without a value',
      error: 'spec.properties[1].desired.value: Required value',
      manifest: dev((s) => (s.properties[1].desired = { metadata: {} })),
    },
    { what: 'a negative collectCycle', error: 'spec.properties[0].collectCycle: Invalid value: -1', manifest: dev((s) => (s.properties[0].collectCycle = -1)) },
    {
      what: 'a negative reportCycle',
      error: 'spec.properties[1].reportCycle: Invalid value: -1000',
      manifest: dev((s) => (s.properties[1].reportCycle = -1000)),
    },
    { what: 'a device property named twice', error: 'spec.properties[1]: Duplicate value', manifest: dev((s) => (s.properties[1].name = 'temperature')) },
    {
      what: 'a property name that cannot be a twin key',
      error: 'spec.properties[0].name: Invalid value: "room temp"',
      manifest: dev((s) => (s.properties[0].name = 'room temp')),
    },
    { what: 'a node name that is not a DNS-1123 subdomain', error: 'spec.nodeName: Invalid value: "Edge_1"', manifest: dev((s) => (s.nodeName = 'Edge_1')) },
    {
      what: 'an MQTT QoS above 2',
      error: 'spec.properties[0].pushMethod.mqtt.qos: Invalid value: 3',
      manifest: dev((s) => (s.properties[0].pushMethod = { mqtt: { qos: 3 } })),
    },
    { what: 'a v1alpha2 field', error: 'unknown field "spec.propertyVisitors"', manifest: dev((s) => (s.propertyVisitors = [])) },
  ].map((c, i) => ({ ...c, name: `invalid-${i}` }));

  // KubeEdge's CRDs take these; cloudcore then says in the status why mappers cannot serve the device.
  const acceptedAsKubeEdgeDoes = [
    {
      what: 'a model property without a type',
      manifest: model((s) => delete s.properties[0].type),
      stored: (spec: any) => expect(spec.properties[0].type).toBeUndefined(),
    },
    {
      what: 'a device without deviceModelRef',
      manifest: dev((s) => delete s.deviceModelRef),
      stored: (spec: any) => expect(spec.deviceModelRef).toBeUndefined(),
    },
    {
      what: 'a deviceModelRef without a name',
      manifest: dev((s) => (s.deviceModelRef = {})),
      stored: (spec: any) => expect(spec.deviceModelRef).toEqual({ name: '' }),
    },
    {
      what: 'an empty deviceModelRef name',
      manifest: dev((s) => (s.deviceModelRef.name = '')),
      stored: (spec: any) => expect(spec.deviceModelRef).toEqual({ name: '' }),
    },
  ].map((c, i) => ({ ...c, name: `accepted-${i}` }));

  it.each(acceptedAsKubeEdgeDoes)('accepts $what, as KubeEdge does', async ({ manifest, stored, name }) => {
    await crds();
    const cp = controlPlane();
    await cp.kubectlOk(['apply', '-n', 'default', '-f', '-'], JSON.stringify({ ...manifest, metadata: { name } }));
    stored((await getJson(['get', manifest.kind, name, '-n', 'default'])).spec);
  });

  it.each(invalid)('rejects $what, naming the field', async ({ manifest, error, name }) => {
    await crds();
    const cp = controlPlane();
    const r = await cp.kubectl(['apply', '-n', 'default', '-f', '-'], JSON.stringify({ ...manifest, metadata: { name } }));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(error);
    expect((await cp.kubectl(['get', manifest.kind, name, '-n', 'default'])).stderr).toContain('NotFound');
  });
});

function broken(manifest: any, edit: (spec: any) => void): any {
  const copy = structuredClone(manifest);
  edit(copy.spec);
  return copy;
}
