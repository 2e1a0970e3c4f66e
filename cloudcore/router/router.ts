import { X509Certificate, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { Agent, request as undiciRequest } from 'undici';
import { ConfigError, CoreError, asError } from '../../shared/errors.js';
import { readBody } from '../../shared/http-body.js';
import type { Logger } from '../../shared/logger.js';
import { Group, Operation, errorResponseTo, newMessage, responseTo, type Message } from '../../shared/message.js';
import type { Module } from '../../shared/module-runtime.js';
import type { CertificateAuthority, PemPair } from '../../shared/pki/certificate-authority.js';
import { REPLICA_CERT_MS, checkReplicaServer, isReplicaCertificate, issuedBy, replicaOf } from '../../shared/pki/replica-peers.js';
import {
  HOP_BY_HOP,
  RULE_EVENT_TYPE,
  RULE_TYPE,
  SERVICE_CALL_TYPE,
  type ServiceBusRequest,
  type ServiceBusResponse,
  type EdgeRule,
  type EventPublish,
  type RuleEvent,
  type ServiceAnswer,
  type ServiceCall,
} from '../../shared/service-call.js';
import { CloudModule } from '../contracts/addresses.js';
import type { CloudBus, ControllerMessage, NodeDelivery, QueryMessage, ReportMessage } from '../contracts/node-messages.js';
import { diffInventory, objectMessage, typeOfKey, type DesiredObject } from '../contracts/object-sync.js';
import { MERGE_PATCH, apiStatus, crdServed, kubeError, type KubeClients } from '../kube/kube-client.js';
import type { TokenBucket } from '../kube/rate-limiter.js';
import { Watched } from '../kube/watched.js';
import type { RouterConfig } from './router-config.js';
import { OrderedPoster } from './ordered-poster.js';
import { RuleStatus } from './rule-status.js';
import { RULE_API_GROUP, RULE_API_VERSION, RuleTable, type RestMatch, type Rule, type RuleEndpoint } from './rules.js';

export interface RouterDeps {
  config: RouterConfig;
  /** CloudHub reaches the Router here: resyncs (it provides the `rule` objects) and eventbus → rest reports. */
  bus: CloudBus;
  /** CloudHub: where a node's rule objects go. */
  nodes: NodeDelivery;
  clients: KubeClients;
  limiter: TokenBucket;
  /** CloudHub: a request answered by a node's edgecore, or ERR_UNAVAILABLE at once when it is not connected. */
  hub: { request(node: string, message: Message, timeoutMs: number): Promise<Message>; holds(node: string): boolean };
  /** CloudHub's CA (once started): it signs this replica's client certificate and identifies the other replicas. */
  ca: () => CertificateAuthority;
  /** This replica's client certificate for the others (one per process, shared with the kubelet front); absent, made from `ca`. */
  replicaCert?: () => Promise<PemPair>;
  /**
   * Several replicas: a request for a node whose session is on another replica is forwarded there. Absent (or
   * the replica unknown), a node not connected here is answered 503.
   */
  replicas?: {
    self: string;
    /** The replica whose session holds the node, from its owner record. */
    ownerOf(node: string): string | undefined;
    /** host:port of a live replica's Router listener, from its report. */
    routerOf(replica: string): string | undefined;
  };
  /** Whether the cluster has this edge node, from an informer cache; absent, the API server is asked. */
  knownNode?: (node: string) => boolean;
  /** The serving certificate of the listener (the hub's: same names, same CA). */
  tls: { certFile: string; keyFile: string };
  logger: Logger;
}

/** A request answered with this status and text. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** How long a token's TokenReview answer is trusted. */
const TOKEN_CACHE_MS = 10_000;
/** Where one replica's Router asks another to pass a message to a node it holds: `<prefix><node>`. No node name starts with a dot. */
const PEER_PATH = '/.replicas/v1/nodes/';
/** The answer of a replica that does not hold the node (the owner record was behind): Misdirected Request. */
const NOT_HERE = 421;

/** Who made a request: a user (bearer token or client certificate) or another replica's Router. */
interface Caller {
  name: string;
  replica: boolean;
}

/**
 * KubeEdge's Router, cloud half: Rules (rules.kubeedge.io/v1) from the cluster, and a REST listener at
 * `/{nodeName}/{namespace}/{path}` for rules whose source is a rest endpoint. Unlike KubeEdge's plain-HTTP,
 * unauthenticated listener, it serves HTTPS and takes a caller by bearer token (TokenReview) or by a client
 * certificate chaining to `clientCAFile`.
 */
export class Router implements Module {
  readonly name = CloudModule.router;
  private readonly table = new RuleTable();
  private readonly rules: Watched<Rule>;
  private readonly endpoints: Watched<RuleEndpoint>;
  private readonly status: RuleStatus;
  private server: https.Server | undefined;
  private readonly tokens = new Map<string, { user: string | undefined; untilMs: number }>();
  private readonly logger: Logger;
  /** The port the listener is on once started. */
  port = 0;
  /** The rule objects each node holds (as last delivered); recomputed after every Rule or RuleEndpoint change. */
  private placed = new Map<string, Map<string, DesiredObject>>();
  private readonly poster = new OrderedPoster();
  /** The problem last reported per inactive Rule, so each is logged and written once. */
  private reported = new Map<string, string>();
  private ready = false;
  /** Calls to other replicas' Routers, with this replica's client certificate (made by listen()). */
  private peers: Agent | undefined;
  private hubCa: X509Certificate | undefined;

  constructor(private readonly deps: RouterDeps) {
    this.logger = deps.logger;
    const { kc } = deps.clients;
    const base = `/apis/${RULE_API_GROUP}/${RULE_API_VERSION}`;
    this.rules = new Watched<Rule>({
      name: 'rules',
      kc,
      metrics: deps.clients.metrics,
      path: `${base}/rules`,
      list: () => deps.clients.rawList<Rule>(`${base}/rules`),
      logger: deps.logger,
      onAdd: (r) => (this.table.upsertRule(r), this.replace()),
      onUpdate: (r) => (this.table.upsertRule(r), this.replace()),
      onDelete: (r) => (this.table.deleteRule(r), this.status.forget(r.metadata?.namespace ?? '', r.metadata?.name ?? ''), this.replace()),
    });
    this.endpoints = new Watched<RuleEndpoint>({
      name: 'ruleendpoints',
      kc,
      metrics: deps.clients.metrics,
      path: `${base}/ruleendpoints`,
      list: () => deps.clients.rawList<RuleEndpoint>(`${base}/ruleendpoints`),
      logger: deps.logger,
      onAdd: (e) => (this.table.upsertEndpoint(e), this.replace()),
      onUpdate: (e) => (this.table.upsertEndpoint(e), this.replace()),
      onDelete: (e) => (this.table.deleteEndpoint(e), this.replace()),
    });
    this.status = new RuleStatus({
      intervalMs: deps.config.statusIntervalMs,
      logger: deps.logger,
      current: (namespace, name) => {
        const rule = this.table.rule(`${namespace}/${name}`);
        return rule && { status: rule.status, resourceVersion: rule.metadata?.resourceVersion };
      },
      patch: async (namespace, name, status, resourceVersion) => {
        await deps.limiter.acquire();
        try {
          // KubeEdge's Rule CRD has no status subresource: the status is patched on the object itself. The
          // resourceVersion makes the patch conditional, so replicas adding their counts never overwrite each other.
          await deps.clients.custom.patchNamespacedCustomObject(
            { group: RULE_API_GROUP, version: RULE_API_VERSION, namespace, plural: 'rules', name, body: { metadata: { resourceVersion }, status } },
            MERGE_PATCH,
          );
          return true;
        } catch (err) {
          // A Rule deleted meanwhile has no status to write; a Rule changed meanwhile is added to next time.
          if (apiStatus(err) === 404) return true;
          if (apiStatus(err) === 409) return false;
          throw kubeError(err);
        }
      },
    });
  }

  /**
   * On the bus before CloudHub opens (the first resyncs find the rule objects), with the Rules listed when
   * their CRDs are installed; without them it goes on, and rules sync once the CRDs are there.
   */
  async start(): Promise<void> {
    this.deps.bus.register(this.name, (m) => this.handle(m));
    const listed = Promise.all([this.rules.start(), this.endpoints.start()]).then(() => this.onReady());
    this.status.start();
    if (await crdServed(this.deps.clients, RULE_API_GROUP, RULE_API_VERSION, 'ruleendpoints')) await listed;
    else this.logger.warn({ crds: 'build/crds/router_v1_*.yaml' }, 'router CRDs not installed; rules apply once they are');
  }

  /** The REST listener, once CloudHub has issued the serving certificate it uses (CloudCore calls it after start). */
  async listen(): Promise<void> {
    const { config } = this.deps;
    const ca = this.deps.ca();
    this.hubCa = new X509Certificate(ca.certPem);
    if (this.deps.replicas) {
      // Other replicas are recognised by a certificate only the CA's holders can make (CN=cloudcore-replica), and
      // their Routers by the CA's serving certificate (CN=cloudcore), whatever address reached them.
      const own = await (this.deps.replicaCert?.() ?? ca.issueReplicaCert(this.deps.replicas.self, REPLICA_CERT_MS));
      this.peers = new Agent({
        connect: { ca: ca.certPem, cert: own.certPem, key: own.keyPem, checkServerIdentity: checkReplicaServer },
        keepAliveTimeout: 30_000,
      });
    }
    const server = https.createServer(
      {
        cert: readFileSync(this.deps.tls.certFile),
        key: readFileSync(this.deps.tls.keyFile),
        // A certificate is asked for but not required: callers may use a bearer token instead.
        ca: [ca.certPem, ...(config.clientCAFile ? [readFileSync(config.clientCAFile, 'utf8')] : [])],
        requestCert: true,
        rejectUnauthorized: false,
      },
      (req, res) => void this.serve(req, res),
    );
    server.headersTimeout = 30_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) =>
        reject(new ConfigError([`modules.router: cannot listen on ${config.address}:${config.port}: ${(err as NodeJS.ErrnoException).code ?? err.message}`])),
      );
      server.listen(config.port, config.address, () => resolve());
    });
    this.server = server;
    this.port = (server.address() as { port: number }).port;
    this.logger.info({ url: `https://${config.address}:${this.port}` }, 'router REST listener up');
  }

  async stop(): Promise<void> {
    if (this.deps.bus.has(this.name)) this.deps.bus.unregister(this.name);
    this.rules.stop();
    this.endpoints.stop();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server?.closeAllConnections();
    await this.poster.close();
    await this.peers?.destroy();
    await this.status.stop();
  }

  private onReady(): void {
    this.ready = true;
    this.replace();
    this.logger.info({ rules: this.rules.list().length, ruleEndpoints: this.endpoints.list().length }, 'router watching rules');
  }

  /** What each node should hold now, against what it was sent: the differences go down. */
  private replace(): void {
    if (!this.ready) return; // The first lists are answered by the resyncs (or onReady).
    this.reportProblems();
    const next = new Map<string, Map<string, DesiredObject>>();
    for (const [node, rules] of this.table.edgeRules()) next.set(node, new Map(rules.map((r) => [edgeKey(r), desiredOf(r)])));
    for (const node of new Set([...this.placed.keys(), ...next.keys()])) {
      const before = this.placed.get(node) ?? new Map<string, DesiredObject>();
      const after = next.get(node) ?? new Map<string, DesiredObject>();
      for (const [key, object] of after) {
        const old = before.get(key);
        if (!old) this.deps.nodes.deliver(node, objectMessage(this.name, object, Operation.insert));
        else if (old.resourceVersion !== object.resourceVersion || old.uid !== object.uid)
          this.deps.nodes.deliver(node, objectMessage(this.name, object, Operation.update));
      }
      for (const [key, object] of before) if (!after.has(key)) this.deps.nodes.deliver(node, objectMessage(this.name, object, Operation.delete));
    }
    this.placed = next;
  }

  /** An inactive Rule says why, once per problem: a warning in the log and an entry in its status errors. */
  private reportProblems(): void {
    const problems = this.table.problems();
    for (const [ruleKey, problem] of problems) {
      if (this.reported.get(ruleKey) === problem) continue;
      const [namespace = '', name = ''] = ruleKey.split('/');
      this.logger.warn({ rule: ruleKey, problem }, 'rule inactive');
      this.status.problem(namespace, name, `inactive: ${problem}`);
    }
    for (const ruleKey of this.reported.keys())
      if (!problems.has(ruleKey) && this.table.rule(ruleKey)) this.logger.info({ rule: ruleKey }, 'rule active again');
    this.reported = new Map(problems);
  }

  private async handle(message: ControllerMessage): Promise<void> {
    switch (message.operation) {
      case Operation.sync: {
        const { node } = message;
        // Not listed yet: the edge keeps what it holds, and onReady brings the differences.
        const messages = this.ready ? diffInventory(this.name, this.placed.get(node)?.values() ?? [], message.content.inventory, ownsRule) : [];
        this.deps.bus.respond(message, responseTo(message, this.name, { ownedTypes: [RULE_TYPE], messages }));
        return;
      }
      case Operation.connect:
      case Operation.disconnect:
        return;
      // Calls and events run on their own: one slow cloud URL must not hold up resyncs or other rules.
      case Operation.query:
        return void this.callCloud(message);
      default:
        return void this.forwardEvent(message);
    }
  }

  /**
   * servicebus → rest: an app on the edge asked its ServiceBus for `targetURL`; the Rule whose servicebus source
   * on that node has this `target_url` sends it to its rest target. The answer is KubeEdge's `{code, msg, body}`.
   */
  private async callCloud(message: QueryMessage): Promise<void> {
    const { node, object } = message;
    const ruleKey = `${object.namespace}/${object.name ?? ''}`;
    const rule = this.table.rule(ruleKey);
    const [namespace, name] = [object.namespace, object.name ?? ''];
    try {
      if (object.type !== SERVICE_CALL_TYPE) throw new CoreError('ERR_NOT_FOUND', `the router answers no ${object.type} queries`);
      const request = message.content as Partial<ServiceBusRequest> | null;
      if (!rule) throw new CoreError('ERR_NOT_FOUND', `rule ${ruleKey} does not exist`);
      if (
        this.table.endpointType(rule, 'source') !== 'servicebus' ||
        rule.spec?.sourceResource?.node_name !== node ||
        rule.spec?.sourceResource?.target_url !== request?.targetURL
      )
        throw new CoreError('ERR_FORBIDDEN', `rule ${ruleKey} does not allow ${String(request?.targetURL)} from node ${node}`);
      const url = rule.spec?.targetResource?.resource;
      if (!url || this.table.endpointType(rule, 'target') !== 'rest') throw new CoreError('ERR_NOT_FOUND', `rule ${ruleKey} has no rest target`);
      const method = String(request?.method ?? 'GET').toUpperCase();
      const payload = request?.payload;
      const body =
        payload === undefined || payload === null || method === 'GET' || method === 'HEAD'
          ? undefined
          : typeof payload === 'string'
            ? payload
            : JSON.stringify(payload);
      let answer: ServiceBusResponse;
      try {
        const response = await fetch(url, { method, headers: { NodeName: node }, body, signal: AbortSignal.timeout(this.deps.config.restTimeout * 1000) });
        answer = { code: response.status, msg: response.statusText, body: await response.text() };
      } catch (err) {
        throw new CoreError('ERR_UNAVAILABLE', `${method} ${url} failed: ${asError(err).message}`);
      }
      if (answer.code < 400) this.status.success(namespace, name);
      else this.status.failure(namespace, name, `${method} ${url} answered ${answer.code}`);
      this.deps.bus.respond(message, responseTo(message, this.name, answer));
    } catch (err) {
      const e = err instanceof CoreError ? err : new CoreError('ERR_UNAVAILABLE', asError(err).message);
      if (rule) this.status.failure(namespace, name, e.message);
      this.logger.info({ nodeId: node, rule: ruleKey, code: e.code, reason: e.message }, 'service call from the edge refused');
      const code = e.code === 'ERR_FORBIDDEN' ? 403 : e.code === 'ERR_NOT_FOUND' ? 404 : 502;
      this.deps.bus.respond(message, responseTo(message, this.name, { code, msg: e.message, body: '' } satisfies ServiceBusResponse));
    }
  }

  /**
   * eventbus → rest: an app's message on an eventbus-source Rule's topic, from the edge's durable outbox, is
   * POSTed to the Rule's target URL with header NodeName. Answered OK once the URL took it (2xx); a URL that
   * cannot be reached or answers 5xx leaves it on the edge, which sends it again; a 4xx drops it as refused.
   */
  private async forwardEvent(message: ReportMessage): Promise<void> {
    const { node, object } = message;
    const ruleKey = `${object.namespace}/${object.name ?? ''}`;
    const rule = this.table.rule(ruleKey);
    const { namespace, name } = { namespace: object.namespace, name: object.name ?? '' };
    try {
      if (object.type !== RULE_EVENT_TYPE || message.operation !== Operation.insert)
        throw new CoreError('ERR_INVALID_MESSAGE', `${message.operation} ${message.resource} is not a rule event`);
      if (!rule) throw new CoreError('ERR_NOT_FOUND', `rule ${ruleKey} does not exist`);
      if (this.table.endpointType(rule, 'source') !== 'eventbus' || rule.spec?.sourceResource?.node_name !== node)
        throw new CoreError('ERR_FORBIDDEN', `rule ${ruleKey} takes no events from node ${node}`);
      const url = rule.spec?.targetResource?.resource;
      if (!url || this.table.endpointType(rule, 'target') !== 'rest') throw new CoreError('ERR_NOT_FOUND', `rule ${ruleKey} has no rest target`);
      const event = message.content as Partial<RuleEvent> | null;
      if (typeof event?.payload !== 'string') throw new CoreError('ERR_INVALID_MESSAGE', 'rule event without a payload');
      let status: number;
      try {
        status = await this.poster.post(
          url,
          { NodeName: node, 'content-type': 'application/octet-stream' },
          Buffer.from(event.payload, 'base64'),
          this.deps.config.restTimeout * 1000,
        );
      } catch (err) {
        throw new CoreError('ERR_UNAVAILABLE', `POST ${url} failed: ${asError(err).message}`);
      }
      if (status >= 500) throw new CoreError('ERR_UNAVAILABLE', `POST ${url} answered ${status}`);
      if (status >= 400) throw new CoreError('ERR_FORBIDDEN', `POST ${url} answered ${status}`);
      this.status.success(namespace, name);
      this.deps.bus.respond(message, responseTo(message, this.name, 'OK'));
    } catch (err) {
      const e = err instanceof CoreError ? err : new CoreError('ERR_UNAVAILABLE', asError(err).message);
      if (rule) this.status.failure(namespace, name, e.message);
      this.logger.info({ nodeId: node, rule: ruleKey, code: e.code, reason: e.message }, 'rule event not delivered');
      this.deps.bus.respond(message, errorResponseTo(message, this.name, { code: e.code, message: e.message }));
    }
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let match: RestMatch | undefined;
    const url = new URL(req.url ?? '/', 'https://router');
    try {
      const caller = await this.authenticate(req);
      if (url.pathname.startsWith(PEER_PATH)) return await this.servePeer(caller, decodeURIComponent(url.pathname.slice(PEER_PATH.length)), req, res);
      const [, nodeName, namespace, ...rest] = url.pathname.split('/');
      if (!nodeName || !namespace || rest.length === 0) throw new HttpError(404, 'expected /{nodeName}/{namespace}/{path}');
      const path = `/${rest.join('/')}`;
      match = this.table.matchRest(namespace, path);
      if (!match) throw new HttpError(404, `no rule in namespace ${namespace} has a rest source with path ${path}`);
      const body = await readBody(req, this.deps.config.maxBodyBytes);
      if (!body) throw new HttpError(413, `request body exceeds modules.router.maxBodyBytes (${this.deps.config.maxBodyBytes})`);
      this.logger.debug({ caller: caller.name, node: nodeName, rule: match.ruleKey, method: req.method, path }, 'router request');
      const node = decodeURIComponent(nodeName);
      if (match.target.type === 'servicebus') {
        const answer = await this.callService(node, match, req, url.search, body);
        const headers = Object.fromEntries(Object.entries(answer.headers).filter(([k]) => !HOP_BY_HOP.has(k)));
        res.writeHead(answer.status, headers).end(Buffer.from(answer.body, 'base64'));
      } else if (match.target.type === 'eventbus') {
        const topic = await this.publish(node, match, body);
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end(`published on ${topic}\n`);
      } else throw new HttpError(501, `rules with a ${match.target.type} target are not served yet`);
      this.status.success(match.rule.metadata!.namespace!, match.rule.metadata!.name!);
    } catch (err) {
      const e = err instanceof HttpError ? err : this.httpError(err);
      if (match && e.status !== 401) this.status.failure(match.rule.metadata!.namespace!, match.rule.metadata!.name!, `${e.status} ${e.message}`);
      this.logger.info({ status: e.status, reason: e.message, method: req.method, path: url.pathname, rule: match?.ruleKey }, 'router request refused');
      if (!res.headersSent) {
        const headers: Record<string, string> = { 'content-type': 'text/plain; charset=utf-8' };
        if (e.status === 401) headers['www-authenticate'] = 'Bearer';
        // The caller may still be sending a body that was refused: close instead of reading it.
        if (e.status === 413) headers.connection = 'close';
        res.writeHead(e.status, headers).end(`${e.message}\n`);
      }
    }
  }

  /** rest → servicebus: the call goes to the node's ServiceBus, which makes it to 127.0.0.1:<service_port>. */
  private async callService(node: string, match: RestMatch, req: IncomingMessage, search: string, body: Buffer): Promise<ServiceAnswer> {
    const port = Number(match.target.endpoint.spec?.properties?.service_port);
    if (!Number.isInteger(port) || port < 1 || port > 65535)
      throw new HttpError(500, `rule ${match.ruleKey}: its servicebus endpoint has no valid service_port`);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      // The caller's credentials are for this listener, not for the app on the edge.
      if (v === undefined || HOP_BY_HOP.has(k) || k === 'authorization') continue;
      headers[k] = Array.isArray(v) ? v.join(', ') : v;
    }
    const targetPath = `/${match.target.resource.path ?? ''}${match.extra}`.replace(/\/+/g, '/');
    const call: ServiceCall = { port, method: req.method ?? 'GET', path: `${targetPath}${search}`, headers, body: body.toString('base64') };
    const message = newMessage({ source: CloudModule.router, group: Group.user, operation: Operation.call, resource: match.ruleKey, content: call });
    const reply = await this.ask(node, message);
    return reply.content as ServiceAnswer;
  }

  /**
   * rest → eventbus: the body is published on the target topic (plus the request's extra path) at the node's
   * broker; the answer comes once the broker has taken it.
   */
  private async publish(node: string, match: RestMatch, body: Buffer): Promise<string> {
    const base = match.target.resource.topic;
    if (!base) throw new HttpError(500, `rule ${match.ruleKey}: its targetResource has no topic`);
    const topic = `${base}${match.extra}`;
    const content: EventPublish = { topic, payload: body.toString('base64') };
    await this.ask(node, newMessage({ source: CloudModule.router, group: Group.user, operation: Operation.deliver, resource: match.ruleKey, content }));
    return topic;
  }

  /**
   * A request to the node's edgecore, through this replica or the one holding the node's session; the edge's
   * error answer becomes a CoreError with the edge's code.
   */
  private async ask(node: string, message: Message): Promise<Message> {
    const timeoutMs = this.deps.config.restTimeout * 1000;
    let reply: Message | undefined;
    if (this.deps.hub.holds(node)) reply = await this.deps.hub.request(node, message, timeoutMs);
    else {
      // Not connected here: a node the cluster does not know is the caller's mistake (404), not an outage.
      if (!(await this.nodeExists(node))) throw new HttpError(404, `node ${node} does not exist`);
      reply = await this.forward(node, message, timeoutMs);
      if (!reply) throw new CoreError('ERR_UNAVAILABLE', `node ${node} is not connected to ${this.deps.replicas ? 'any cloudcore replica' : 'cloudcore'}`);
    }
    if (reply.operation === Operation.error) {
      const { code, message: why } = reply.content as { code?: string; message?: string };
      throw new CoreError((code ?? 'ERR_UNAVAILABLE') as never, why ?? 'the edge refused');
    }
    return reply;
  }

  /**
   * The message, through the Router of the replica whose session holds the node (its owner record names it);
   * undefined when no other replica holds it. That replica passes it on and answers the edge's reply.
   */
  private async forward(node: string, message: Message, timeoutMs: number): Promise<Message | undefined> {
    const { replicas } = this.deps;
    const owner = replicas?.ownerOf(node);
    if (!replicas || !this.peers || !owner || owner === replicas.self) return undefined;
    const address = replicas.routerOf(owner);
    if (!address) throw new CoreError('ERR_UNAVAILABLE', `node ${node} is held by replica ${owner}, which is not live or reports no Router address`);
    const url = `https://${address}${PEER_PATH}${encodeURIComponent(node)}`;
    let status: number;
    let text: string;
    try {
      const response = await undiciRequest(url, {
        method: 'POST',
        dispatcher: this.peers,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ message, timeoutMs }),
        headersTimeout: timeoutMs + 5_000,
        bodyTimeout: timeoutMs + 5_000,
      });
      status = response.statusCode;
      text = await response.body.text();
    } catch (err) {
      throw new CoreError('ERR_UNAVAILABLE', `node ${node} is held by replica ${owner}, which did not answer at ${address}: ${asError(err).message}`);
    }
    if (status === NOT_HERE) return undefined;
    if (status !== 200) throw new CoreError('ERR_UNAVAILABLE', `replica ${owner} refused to pass the request to node ${node}: ${status} ${text.trim()}`);
    this.logger.debug({ node, replica: owner }, 'router request passed through the replica holding the node');
    return JSON.parse(text) as Message;
  }

  /**
   * Another replica's Router passes a message for a node whose session is here: it goes to the edge, and the
   * edge's reply (or the error, as an error reply) goes back. Never forwarded again: 421 when not held here.
   */
  private async servePeer(caller: Caller, node: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!caller.replica) throw new HttpError(403, `${PEER_PATH} is for other cloudcore replicas only`);
    if (!this.deps.hub.holds(node)) {
      res.writeHead(NOT_HERE, { 'content-type': 'text/plain; charset=utf-8' }).end(`node ${node} is not connected to this replica\n`);
      return;
    }
    // The message carries the body in base64, inside JSON.
    const text = await readBody(req, Math.ceil(this.deps.config.maxBodyBytes * 1.4) + 65_536);
    if (!text) throw new HttpError(413, 'forwarded message too large');
    let parsed: { message?: Message; timeoutMs?: number };
    try {
      parsed = JSON.parse(text.toString('utf8')) as typeof parsed;
    } catch (err) {
      throw new HttpError(400, `forwarded message is not JSON: ${asError(err).message}`);
    }
    const { message } = parsed;
    if (!message || typeof message !== 'object' || typeof message.operation !== 'string') throw new HttpError(400, 'forwarded body has no message');
    const timeoutMs = Math.min(Number(parsed.timeoutMs) || 0, this.deps.config.restTimeout * 1000) || this.deps.config.restTimeout * 1000;
    const reply = await this.deps.hub.request(node, message, timeoutMs).catch((err: unknown) => {
      const e = err instanceof CoreError ? err : new CoreError('ERR_UNAVAILABLE', asError(err).message);
      return errorResponseTo(message, this.name, { code: e.code, message: e.message });
    });
    this.logger.debug({ node, from: caller.name }, 'router request from another replica passed to the edge');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(reply));
  }

  private async nodeExists(node: string): Promise<boolean> {
    if (this.deps.knownNode) return this.deps.knownNode(node);
    try {
      await this.deps.clients.core.readNode({ name: node });
      return true;
    } catch (err) {
      return apiStatus(err) !== 404;
    }
  }

  private httpError(err: unknown): HttpError {
    const e = err as CoreError;
    switch (e.code) {
      case 'ERR_UNAVAILABLE':
        return new HttpError(503, e.message);
      case 'ERR_TIMEOUT':
        return new HttpError(408, e.message);
      case 'ERR_CONNECTION':
        return new HttpError(502, e.message);
      case 'ERR_MESSAGE_TOO_LARGE':
        return new HttpError(413, e.message);
      case 'ERR_INVALID_MESSAGE':
        return new HttpError(400, e.message);
      default:
        this.logger.warn({ err }, 'router request failed');
        return new HttpError(500, asError(err).message);
    }
  }

  /**
   * Another replica (its client certificate from the hub CA), a client certificate from clientCAFile, or a bearer
   * token the cluster's TokenReview accepts; else 401. Edges' certificates (hub CA, CN=system:node:…) are no callers.
   */
  private async authenticate(req: IncomingMessage): Promise<Caller> {
    const socket = req.socket as TLSSocket;
    if (socket.authorized) {
      const peer = socket.getPeerCertificate();
      if (this.hubCa && isReplicaCertificate(peer, this.hubCa)) return { name: `replica:${replicaOf(peer)}`, replica: true };
      const fromHub = this.hubCa !== undefined && issuedBy(peer, this.hubCa);
      if (this.deps.config.clientCAFile && !fromHub) return { name: `cert:${String(peer.subject?.CN ?? '')}`, replica: false };
    }
    const header = req.headers.authorization ?? '';
    const token = /^Bearer\s+(\S+)$/i.exec(header)?.[1];
    if (!token) throw new HttpError(401, 'a bearer token (or a client certificate) is required');
    const hash = createHash('sha256').update(token).digest('hex');
    const cached = this.tokens.get(hash);
    if (cached && cached.untilMs > Date.now()) {
      if (!cached.user) throw new HttpError(401, 'the bearer token was not accepted by the cluster');
      return { name: cached.user, replica: false };
    }
    let user: string | undefined;
    try {
      const review = await this.deps.clients.authn.createTokenReview({
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } },
      });
      user = review.status?.authenticated ? (review.status.user?.username ?? '') : undefined;
    } catch (err) {
      throw new HttpError(503, `cannot check the token with the cluster: ${kubeError(err).message}`);
    }
    if (this.tokens.size > 10_000) this.tokens.clear();
    this.tokens.set(hash, { user, untilMs: Date.now() + TOKEN_CACHE_MS });
    if (!user) throw new HttpError(401, 'the bearer token was not accepted by the cluster');
    return { name: user, replica: false };
  }
}

const ownsRule = (key: string): boolean => typeOfKey(key) === RULE_TYPE;
const edgeKey = (r: EdgeRule): string => `${r.metadata.namespace}/${RULE_TYPE}/${r.metadata.name}`;
const desiredOf = (r: EdgeRule): DesiredObject => ({ key: edgeKey(r), uid: r.metadata.uid, resourceVersion: r.metadata.resourceVersion, content: r });
