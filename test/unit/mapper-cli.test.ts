import { describe, expect, it } from 'vitest';
import { loadMapperConfig } from '../../mappers/framework/mapper-cli.js';

describe('mapper CLI config', () => {
  it('defaults to KubeEdge internal broker port 1884', () => {
    expect(loadMapperConfig({ nodeName: 'edge-1' })).toEqual({
      broker: 'mqtt://127.0.0.1:1884',
      nodeName: 'edge-1',
      username: '',
      password: '',
      logLevel: 'info',
    });
  });

  it('takes every flag', () => {
    const config = loadMapperConfig({ nodeName: 'edge-1', broker: 'tcp://10.0.0.1:1883', username: 'u', password: 'p', logLevel: 'debug' });
    expect(config).toMatchObject({ broker: 'tcp://10.0.0.1:1883', username: 'u', password: 'p', logLevel: 'debug' });
  });

  it('reports every problem at once, including a missing node name', () => {
    expect(() => loadMapperConfig({ broker: 'http://x', logLevel: 'loud' })).toThrow(
      expect.objectContaining({
        code: 'ERR_CONFIG',
        problems: ['nodeName: --node-name is required', expect.stringContaining('broker: "http://x"'), expect.stringContaining('logLevel: must be one of')],
      }),
    );
    expect(() => loadMapperConfig({ nodeName: 'Edge_1' })).toThrow(
      expect.objectContaining({ problems: [expect.stringContaining('nodeName: "Edge_1" is not a DNS-1123 name')] }),
    );
  });
});
