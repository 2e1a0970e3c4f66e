import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import type { AdmissionregistrationV1Api, V1Pod, V1Toleration } from '@kubernetes/client-node';
import type { Logger } from '../../shared/logger.js';
import type { CertificateAuthority } from '../../shared/pki/certificate-authority.js';
import { apiStatus } from '../kube/kube-client.js';
import { EDGE_ROLE_LABEL } from './node-keeper.js';

export const WEBHOOK_NAME = 'kubeedge-ts-edge-pods';
export const OPT_OUT_ANNOTATION = 'kubeedge-ts.io/evict-when-unreachable';
const EVICTION_TAINTS = ['node.kubernetes.io/unreachable', 'node.kubernetes.io/not-ready'];
const PATH = '/mutate-pods';

export interface PodAutonomyOptions {
  ca: CertificateAuthority;
  /** Host the API server uses to reach this webhook (an advertise address); also the certificate's SAN. */
  host: string;
  address: string;
  port: number;
  admission: AdmissionregistrationV1Api;
  isEdgeNode(name: string): boolean;
  logger: Logger;
}

/**
 * Edge autonomy for pods. When an edge is only disconnected, its node turns NotReady and the taint
 * controller would evict its pods after the default 300 s tolerations. This mutating webhook gives every
 * pod that targets edge nodes tolerations for `unreachable` and `not-ready` without a deadline, at
 * creation. Tolerations can never be removed from a running pod, so this is the only point where it can
 * be done. The node still shows NotReady; its pods stay, and keep running on the edge from its store.
 * A pod annotated `kubeedge-ts.io/evict-when-unreachable: "true"` keeps normal eviction.
 */
export class PodAutonomyWebhook {
  private server: https.Server | undefined;

  constructor(private readonly options: PodAutonomyOptions) {}

  async start(): Promise<void> {
    const serving = await this.options.ca.issueServerCert({ hosts: [this.options.host] });
    this.server = https.createServer({ cert: serving.certPem, key: serving.keyPem, minVersion: 'TLSv1.2' }, (req, res) => void this.handle(req, res));
    this.server.listen(this.options.port, this.options.address);
    await once(this.server, 'listening');
    const port = (this.server.address() as AddressInfo).port;
    const url = `https://${this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host}:${port}${PATH}`;
    await this.register(url);
    this.options.logger.info({ url }, 'pod autonomy webhook registered');
  }

  async stop(): Promise<void> {
    if (!this.server?.listening) return;
    const closed = once(this.server, 'close');
    this.server.close();
    this.server.closeAllConnections();
    await closed;
  }

  /** Creates or replaces the MutatingWebhookConfiguration; failures never block pod creation (Ignore). */
  private async register(url: string): Promise<void> {
    const body = {
      metadata: { name: WEBHOOK_NAME },
      webhooks: [
        {
          name: 'edge-pods.kubeedge-ts.io',
          clientConfig: { url, caBundle: Buffer.from(this.options.ca.certPem).toString('base64') },
          rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] }],
          failurePolicy: 'Ignore',
          sideEffects: 'None',
          admissionReviewVersions: ['v1'],
          timeoutSeconds: 5,
        },
      ],
    };
    try {
      await this.options.admission.createMutatingWebhookConfiguration({ body });
    } catch (err) {
      if (apiStatus(err) !== 409) throw err;
      const existing = await this.options.admission.readMutatingWebhookConfiguration({ name: WEBHOOK_NAME });
      await this.options.admission.replaceMutatingWebhookConfiguration({
        name: WEBHOOK_NAME,
        body: { ...body, metadata: { ...body.metadata, resourceVersion: existing.metadata?.resourceVersion } },
      });
    }
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let review: { request?: { uid?: string; object?: V1Pod } };
    try {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      review = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof review;
    } catch (err) {
      this.options.logger.warn({ err }, 'malformed admission review');
      res.writeHead(400).end();
      return;
    }
    const uid = review.request?.uid ?? '';
    const pod = review.request?.object;
    const patch = pod ? this.patchFor(pod) : undefined;
    const response = patch
      ? { uid, allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') }
      : { uid, allowed: true };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response }));
  }

  /** The JSON patch that makes the pod tolerate disconnection, or undefined when it does not target edges. */
  patchFor(pod: V1Pod): Array<{ op: string; path: string; value: unknown }> | undefined {
    if (pod.metadata?.annotations?.[OPT_OUT_ANNOTATION] === 'true' || !this.targetsEdge(pod)) return undefined;
    const kept = (pod.spec?.tolerations ?? []).filter((t) => !(t.effect === 'NoExecute' && t.key && EVICTION_TAINTS.includes(t.key)));
    const forever: V1Toleration[] = EVICTION_TAINTS.map((key) => ({ key, operator: 'Exists', effect: 'NoExecute' }));
    return [{ op: pod.spec?.tolerations ? 'replace' : 'add', path: '/spec/tolerations', value: [...kept, ...forever] }];
  }

  private targetsEdge(pod: V1Pod): boolean {
    const spec = pod.spec;
    if (spec?.nodeName) return this.options.isEdgeNode(spec.nodeName);
    if (spec?.nodeSelector && EDGE_ROLE_LABEL in spec.nodeSelector) return true;
    const terms = spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
    // Every term must require the edge role: otherwise the pod may land on a cloud node too.
    return (
      terms.length > 0 &&
      terms.every((term) => (term.matchExpressions ?? []).some((e) => e.key === EDGE_ROLE_LABEL && (e.operator === 'Exists' || e.operator === 'In')))
    );
  }
}
