import type { CoreV1Api, V1ConfigMap } from '@kubernetes/client-node';
import type { ReplicaReport, ReplicaReportStore, StoredReport } from '../contracts/replica-reports.js';
import { formatReport } from '../contracts/replica-reports.js';
import { apiStatus } from './kube-client.js';

const NAMESPACE = 'kubeedge';
export const REPLICA_REPORT_LABEL = 'kubeedge-ts.io/cloudcore-replica-report';
const KEY = 'report';
const MAX_ATTEMPTS = 5;

/**
 * Replica reports as one ConfigMap per replica in namespace kubeedge (`cloudcore-replica-<id>`, label
 * kubeedge-ts.io/cloudcore-replica-report=true, key `report`), not one shared ConfigMap: each replica writes
 * only its own object every few seconds, so replicas never conflict with each other; a shared object would
 * make every report a read-modify-write racing N-1 others. A dead replica's object just stops changing.
 * Writes still carry the resourceVersion last seen (optimistic concurrency): a conflict means someone else
 * touched our object (an operator, a second process with our id), and the report is written again over it.
 */
export class ConfigMapReplicaReports implements ReplicaReportStore {
  readonly description = `configmaps ${NAMESPACE}/cloudcore-replica-* (label ${REPLICA_REPORT_LABEL})`;
  private resourceVersion: string | undefined;

  constructor(private readonly core: CoreV1Api) {}

  async publish(report: ReplicaReport): Promise<void> {
    const name = nameOf(report.id);
    const body = (resourceVersion?: string): V1ConfigMap => ({
      metadata: { name, namespace: NAMESPACE, labels: { [REPLICA_REPORT_LABEL]: 'true' }, ...(resourceVersion ? { resourceVersion } : {}) },
      data: { [KEY]: formatReport(report) },
    });
    for (let attempt = 1; ; attempt++) {
      try {
        const written =
          this.resourceVersion === undefined
            ? await this.core.createNamespacedConfigMap({ namespace: NAMESPACE, body: body() })
            : await this.core.replaceNamespacedConfigMap({ name, namespace: NAMESPACE, body: body(this.resourceVersion) });
        this.resourceVersion = written.metadata?.resourceVersion;
        return;
      } catch (err) {
        const status = apiStatus(err);
        if (attempt >= MAX_ATTEMPTS || (status !== 409 && status !== 404)) throw err;
        // 409: it exists (create) or changed (replace): take its version. 404: it was deleted: create it.
        this.resourceVersion = status === 409 ? await this.currentVersion(name) : undefined;
      }
    }
  }

  async list(): Promise<StoredReport[]> {
    const list = await this.core.listNamespacedConfigMap({ namespace: NAMESPACE, labelSelector: `${REPLICA_REPORT_LABEL}=true` });
    return list.items.map((cm) => ({ origin: `configmap ${NAMESPACE}/${cm.metadata?.name}`, text: cm.data?.[KEY] ?? '' }));
  }

  async remove(id: string): Promise<void> {
    try {
      await this.core.deleteNamespacedConfigMap({ name: nameOf(id), namespace: NAMESPACE });
    } catch (err) {
      if (apiStatus(err) !== 404) throw err;
    }
    this.resourceVersion = undefined;
  }

  private async currentVersion(name: string): Promise<string | undefined> {
    try {
      return (await this.core.readNamespacedConfigMap({ name, namespace: NAMESPACE })).metadata?.resourceVersion;
    } catch (err) {
      if (apiStatus(err) === 404) return undefined;
      throw err;
    }
  }
}

function nameOf(id: string): string {
  return `cloudcore-replica-${id}`;
}
