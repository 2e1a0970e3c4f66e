import http from 'node:http';
import { CoreError, asError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import { errorResponseTo, responseTo } from '../../shared/message.js';
import type { Module } from '../../shared/module-runtime.js';
import { HOP_BY_HOP, parseServiceCall, type ServiceAnswer, type ServiceCall } from '../../shared/service-call.js';
import { EdgeModule } from '../contracts/addresses.js';
import type { EdgeBus, ServiceCallMessage } from '../contracts/messages.js';
import type { ServiceBusConfig } from './servicebus-config.js';

export interface ServiceBusDeps {
  config: ServiceBusConfig;
  bus: EdgeBus;
  logger: Logger;
}

/**
 * The edge half of the Router (KubeEdge ServiceBus): calls from the cloud (rest → servicebus rules) go to an
 * app listening on this host, and its answer goes back. Each call runs on its own; the mailbox only hands
 * them out, so one slow app does not hold up the others.
 */
export class ServiceBus implements Module {
  readonly name = EdgeModule.serviceBus;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

  constructor(private readonly deps: ServiceBusDeps) {}

  async start(): Promise<void> {
    this.deps.bus.register(this.name, (m) => void this.answer(m));
  }

  async stop(): Promise<void> {
    if (this.deps.bus.has(this.name)) this.deps.bus.unregister(this.name);
    this.agent.destroy();
  }

  private async answer(message: ServiceCallMessage): Promise<void> {
    const { bus, logger } = this.deps;
    try {
      const call = parseServiceCall(message.content);
      const answer = await this.call(call);
      logger.debug({ port: call.port, method: call.method, path: call.path, status: answer.status }, 'service call answered');
      bus.respond(message, responseTo(message, this.name, answer));
    } catch (err) {
      const e = err instanceof CoreError ? err : new CoreError('ERR_CONNECTION', asError(err).message);
      logger.info({ code: e.code, reason: e.message }, 'service call failed');
      bus.respond(message, errorResponseTo(message, this.name, { code: e.code, message: e.message }));
    }
  }

  /** One HTTP call to 127.0.0.1:<port>; the answer's body is bounded by maxBodyBytes. */
  private call(call: ServiceCall): Promise<ServiceAnswer> {
    const { server, timeout, maxBodyBytes } = this.deps.config;
    const body = Buffer.from(call.body, 'base64');
    if (body.length > maxBodyBytes) throw new CoreError('ERR_MESSAGE_TOO_LARGE', `request body of ${body.length} bytes exceeds ${maxBodyBytes}`);
    const headers = Object.fromEntries(Object.entries(call.headers).filter(([k]) => !HOP_BY_HOP.has(k.toLowerCase())));
    return new Promise<ServiceAnswer>((resolve, reject) => {
      const req = http.request(
        {
          host: server,
          port: call.port,
          method: call.method,
          path: call.path,
          headers: { ...headers, 'content-length': String(body.length) },
          agent: this.agent,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > maxBodyBytes) {
              req.destroy(new CoreError('ERR_MESSAGE_TOO_LARGE', `the app's answer exceeds ${maxBodyBytes} bytes`));
              return;
            }
            chunks.push(chunk);
          });
          res.once('end', () => {
            const answerHeaders: Record<string, string> = {};
            for (const [k, v] of Object.entries(res.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) answerHeaders[k] = Array.isArray(v) ? v.join(', ') : v;
            resolve({ status: res.statusCode ?? 502, headers: answerHeaders, body: Buffer.concat(chunks).toString('base64') });
          });
          res.once('error', reject);
        },
      );
      req.setTimeout(timeout * 1000, () => req.destroy(new CoreError('ERR_TIMEOUT', `the app on ${server}:${call.port} did not answer within ${timeout} s`)));
      req.once('error', (err) => {
        if (err instanceof CoreError) return reject(err);
        const code = (err as NodeJS.ErrnoException).code;
        reject(new CoreError('ERR_CONNECTION', `the app on ${server}:${call.port} cannot be reached: ${code ?? err.message}`));
      });
      req.end(body);
    });
  }
}
