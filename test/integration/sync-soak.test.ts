import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createKubeClients } from '../../cloudcore/kube/kube-client.js';
import { eventually, tcpProxy, tempDir, useControlPlane } from '../support/harness.js';
import { cloudSetup, edgeSetup, readEdgeStore, startCloud, startEdgeInProcess } from '../support/daemons.js';
import { mqttPeer } from '../support/mqtt-peer.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const NODE = 'soak-edge';
const CONFIGMAPS = 20;
/** Total soak time; `SOAK_SECONDS=600 npx vitest run test/integration/sync-soak.test.ts` for the long run by hand. */
const SOAK_SECONDS = Number(process.env.SOAK_SECONDS ?? 45);
const WRITES_PER_S = 50;
const DEVICES = 8;

const controlPlane = useControlPlane();

/**
 * The edge store against the cluster: cuts of the edge link at random moments under a steady ConfigMap write
 * load (with deletes and recreations), each followed by a quiet period after which the edge must hold exactly
 * what the cluster holds for it, healed by the one reconnect the cut caused and no other. Devices on the node
 * report through MQTT all along, so DeviceController (the second sync provider) is busy patching their status
 * when a resync asks it, and answers well after EdgeController: the window where changes used to be lost.
 */
describe('sync soak on a real cluster', () => {
  it(
    'leaves the edge store equal to the cluster after every quiet period, whatever the moment of the cut',
    async () => {
      const cp = controlPlane();
      await cp.kubectlOk(['apply', '-f', join(ROOT, 'build', 'crds')]);
      await cp.kubectlOk(['wait', '--for=condition=Established', '--timeout=60s', 'crd/devices.devices.kubeedge.io', 'crd/devicemodels.devices.kubeedge.io']);
      const dir = tempDir();
      const setup = await cloudSetup(dir, { kubeconfig: cp.kubeconfig });
      const cloud = await startCloud(setup);
      const proxy = await tcpProxy(setup.hubPort);
      const es = edgeSetup(dir, NODE, setup, { hubPort: proxy.port, edged: { enable: true }, devices: true });
      const edge = await startEdgeInProcess(es, await cloud.token());
      await eventually(() => expect(edge.edgeHub.status).toMatchObject({ type: 'connected', synced: true }), 30_000);

      const devices = Array.from({ length: DEVICES }, (_, i) => `soak-sensor-${i}`);
      await cp.kubectlOk(
        ['apply', '-f', '-'],
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'List',
          items: [
            {
              apiVersion: 'devices.kubeedge.io/v1beta1',
              kind: 'DeviceModel',
              metadata: { name: 'soak-model', namespace: 'default' },
              spec: { protocol: 'virtual', properties: [{ name: 'level', type: 'INT', accessMode: 'ReadOnly' }] },
            },
            ...devices.map((name) => ({
              apiVersion: 'devices.kubeedge.io/v1beta1',
              kind: 'Device',
              metadata: { name, namespace: 'default' },
              spec: {
                deviceModelRef: { name: 'soak-model' },
                nodeName: NODE,
                protocol: { protocolName: 'virtual' },
                properties: [{ name: 'level', reportToCloud: true }],
              },
            })),
          ],
        }),
      );
      await eventually(() => expect([...readEdgeStore(es.dbPath).keys()].filter((k) => k.includes('/device/soak-sensor-'))).toHaveLength(DEVICES), 30_000);
      const mapper = await mqttPeer(`mqtt://127.0.0.1:${edge.eventBus!.port}`, []);
      let reports = 0;
      const reporting = setInterval(() => {
        for (const name of devices) {
          reports++;
          void mapper.publish(`$hw/events/device/default/${name}/twin/update`, {
            event_id: `r${reports}`,
            timestamp: Date.now(),
            twin: { level: { actual: { value: String(reports) }, metadata: { type: 'int' } } },
          });
        }
      }, 100);
      onTestFinished(() => clearInterval(reporting));

      const { core } = createKubeClients({ kubeconfig: cp.kubeconfig });
      const names = Array.from({ length: CONFIGMAPS }, (_, i) => `soak-${i}`);
      for (const name of names) await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name }, data: { n: '0' } } });
      // A pod bound to the edge makes its ConfigMaps the edge's to hold (nothing runs it: no runtime here).
      await cp.kubectlOk(
        ['apply', '-f', '-'],
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: 'soak', namespace: 'default' },
          spec: {
            nodeName: NODE,
            containers: [{ name: 'c', image: 'busybox:v1', envFrom: names.map((name) => ({ configMapRef: { name, optional: true } })) }],
          },
        }),
      );

      /** What the cluster says the edge must hold of those ConfigMaps: key → uid@resourceVersion. */
      const clusterView = async (): Promise<Map<string, string>> => {
        const list = await core.listNamespacedConfigMap({ namespace: 'default' });
        return new Map(
          list.items
            .filter((c) => names.includes(c.metadata!.name!))
            .map((c) => [`default/configmap/${c.metadata!.name}`, `${c.metadata!.uid}@${c.metadata!.resourceVersion}`]),
        );
      };
      const edgeView = (): Map<string, string> =>
        new Map([...readEdgeStore(es.dbPath)].filter(([k]) => k.startsWith('default/configmap/soak-')).map(([k, v]) => [k, `${v.uid}@${v.resourceVersion}`]));

      let written = 0;
      const write = async (): Promise<void> => {
        const name = names[written % CONFIGMAPS]!;
        written++;
        // Every 23rd write deletes the ConfigMap; the next write of that name creates it again (a new uid).
        if (written % 23 === 0) await core.deleteNamespacedConfigMap({ name, namespace: 'default' }).catch(() => undefined);
        else
          await core
            .replaceNamespacedConfigMap({ name, namespace: 'default', body: { metadata: { name }, data: { n: String(written) } } })
            .catch(() => core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name }, data: { n: String(written) } } }));
      };

      const sessions = (): number => cloud.logs.filter((l) => l.msg === 'edge session open').length;
      const deadline = Date.now() + SOAK_SECONDS * 1000;
      const cycles: Array<{ cycle: number; writes: number; cutAfterMs: number; convergedMs: number }> = [];
      while (cycles.length < 2 || Date.now() < deadline) {
        const before = sessions();
        const phaseMs = 4_000;
        const cutAfterMs = 500 + Math.floor(Math.random() * (phaseMs - 1_000));
        const start = Date.now();
        let cut = false;
        const writesBefore = written;
        // Writes at about WRITES_PER_S for the phase, cutting the link once, at a random moment, on the way.
        while (Date.now() - start < phaseMs) {
          if (!cut && Date.now() - start >= cutAfterMs) {
            proxy.cut();
            cut = true;
          }
          const t = Date.now();
          await write();
          await new Promise((r) => setTimeout(r, Math.max(0, 1000 / WRITES_PER_S - (Date.now() - t))));
        }
        // Quiet: the edge must converge on the session that the cut caused, with no further reconnect.
        const quietAt = Date.now();
        const want = await clusterView();
        await eventually(() => expect(edgeView()).toEqual(want), 60_000, 100);
        await eventually(() => expect(edge.edgeHub.status).toMatchObject({ type: 'connected', synced: true }), 30_000);
        expect(sessions()).toBe(before + 1);
        cycles.push({ cycle: cycles.length + 1, writes: written - writesBefore, cutAfterMs, convergedMs: Date.now() - quietAt });
      }
      clearInterval(reporting);
      const figures = { cycles: cycles.length, writes: written, deviceReports: reports, maxConvergedMs: Math.max(...cycles.map((c) => c.convergedMs)) };
      process.stdout.write(`sync soak: ${JSON.stringify(figures)}\n`);
      expect(cycles.length).toBeGreaterThanOrEqual(2);
    },
    SOAK_SECONDS * 1000 + 300_000,
  );
});
