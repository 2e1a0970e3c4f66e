import { describe, expect, it } from 'vitest';
import { createLogger } from '../../shared/logger.js';

const capture = (): { logger: ReturnType<typeof createLogger>; lines: Array<Record<string, unknown>> } => {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger({ name: 'test', level: 'debug', destination: { write: (s: string) => void lines.push(JSON.parse(s)) } });
  return { logger, lines };
};

describe('logger redaction', () => {
  it('hides tokens, passwords, private keys and authorization headers', () => {
    const { logger, lines } = capture();
    logger.info({ token: 'x.y.z' }, 'a');
    logger.info({ password: 'hunter2', bearer: 'jwt' }, 'b');
    logger.info({ broker: { url: 'tcp://127.0.0.1:1883', username: 'u', password: 'p' } }, 'c');
    logger.info({ req: { headers: { authorization: 'Bearer jwt', nodename: 'n1' } }, serving: { certPem: 'CERT', keyPem: 'KEY' } }, 'd');
    logger.info({ options: { method: 'POST', headers: { Authorization: 'Bearer jwt' } } }, 'e');
    expect(lines.map(({ token, password, bearer, broker, req, serving, options }) => ({ token, password, bearer, broker, req, serving, options }))).toEqual([
      { token: '[redacted]' },
      { password: '[redacted]', bearer: '[redacted]' },
      { broker: { url: 'tcp://127.0.0.1:1883', username: 'u', password: '[redacted]' } },
      { req: { headers: { authorization: '[redacted]', nodename: 'n1' } }, serving: { certPem: 'CERT', keyPem: '[redacted]' } },
      { options: { method: 'POST', headers: { Authorization: '[redacted]' } } },
    ]);
  });

  it('hides the secrets of an edgecore config logged whole, and of child bindings', () => {
    const { logger, lines } = capture();
    const config = {
      nodeName: 'n1',
      modules: {
        edgeHub: { token: 'x.y.z', keyFile: '/etc/kubeedge/certs/server.key' },
        eventBus: { internal: { username: 'u', password: 'p' }, external: { password: 'q' } },
      },
    };
    logger.info({ config }, 'config');
    logger.child({ token: 'x.y.z', module: 'edgehub' }).info('child');
    expect(lines[0]!.config).toEqual({
      nodeName: 'n1',
      modules: {
        edgeHub: { token: '[redacted]', keyFile: '/etc/kubeedge/certs/server.key' },
        eventBus: { internal: { username: 'u', password: '[redacted]' }, external: { password: '[redacted]' } },
      },
    });
    expect(lines[1]).toMatchObject({ token: '[redacted]', module: 'edgehub', msg: 'child' });
    // The caller's objects are left as they were.
    expect(config.modules.edgeHub.token).toBe('x.y.z');
  });

  it('hides secrets carried by a logged error, not its message', () => {
    const { logger, lines } = capture();
    logger.warn({ err: Object.assign(new Error('refused'), { code: 'ERR_AUTH', headers: { authorization: 'Bearer jwt' } }) }, 'f');
    expect(lines[0]!.err).toMatchObject({ message: 'refused', code: 'ERR_AUTH', headers: { authorization: '[redacted]' } });
  });

  it('keeps paths and object keys visible', () => {
    const { logger, lines } = capture();
    logger.info(
      {
        keyFile: '/etc/kubeedge/certs/server.key',
        caKeyFile: '/etc/kubeedge/ca/rootCA.key',
        key: 'ns/pod/web',
        resource: 'ns/pod/web',
        jti: 'abc',
        tokenTtlMinutes: 60,
      },
      'g',
    );
    expect(lines[0]).toMatchObject({
      keyFile: '/etc/kubeedge/certs/server.key',
      caKeyFile: '/etc/kubeedge/ca/rootCA.key',
      key: 'ns/pod/web',
      resource: 'ns/pod/web',
      jti: 'abc',
      tokenTtlMinutes: 60,
    });
  });
});
