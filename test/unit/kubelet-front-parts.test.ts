import { describe, expect, it } from 'vitest';
import { loadCloudCoreConfig } from '../../cloudcore/config.js';
import { connectReply, parseConnectHead, parseTarget } from '../../cloudcore/streams/connect-head.js';
import { KubeletTargets, type KubeletNode } from '../../cloudcore/streams/kubelet-targets.js';
import { ConfigError } from '../../shared/errors.js';

const head = (text: string, max = 8192) => parseConnectHead(Buffer.from(text, 'latin1'), max);

describe('CONNECT head', () => {
  it("reads the egress dialer's exact head", () => {
    const h = head('CONNECT 203.0.113.2:10350 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    expect(h).toMatchObject({ state: 'done', target: '203.0.113.2:10350', host: '203.0.113.2', port: 10350 });
    expect(h.state === 'done' && h.rest.length).toBe(0);
  });

  it('waits for the end of the head, however it is cut', () => {
    const text = 'CONNECT edge-1:10350 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n';
    for (let i = 0; i < text.length; i++) expect(head(text.slice(0, i)).state).toBe('incomplete');
    expect(head(text)).toMatchObject({ state: 'done', host: 'edge-1' });
  });

  it('keeps bytes after the head and ignores extra headers', () => {
    const h = head('CONNECT Edge-1.Example:443 HTTP/1.1\r\nHost: edge-1.example:443\r\nUser-Agent: Go-http-client/1.1\r\n\r\n\x16\x03\x01');
    expect(h).toMatchObject({ state: 'done', host: 'edge-1.example', port: 443 });
    expect(h.state === 'done' && [...h.rest]).toEqual([0x16, 0x03, 0x01]);
  });

  it('reads bracketed IPv6 targets in their shortest form', () => {
    expect(head('CONNECT [2001:DB8:0:0::1]:10350 HTTP/1.1\r\n\r\n')).toMatchObject({ state: 'done', host: '2001:db8::1', port: 10350 });
  });

  it('refuses a head with no end within the limit (400)', () => {
    expect(head(`CONNECT a:1 HTTP/1.1\r\nX: ${'y'.repeat(300)}`, 256)).toMatchObject({ state: 'refused', status: 400 });
    expect(head(`CONNECT a:1 HTTP/1.1\r\nX: ${'y'.repeat(300)}\r\n\r\n`, 256)).toMatchObject({ state: 'refused', status: 400 });
  });

  it('refuses other methods (405) and malformed lines or targets (400)', () => {
    expect(head('GET / HTTP/1.1\r\n\r\n')).toMatchObject({ state: 'refused', status: 405 });
    expect(head('CONNECT edge-1:10350\r\n\r\n')).toMatchObject({ state: 'refused', status: 400 });
    expect(head('CONNECT  edge-1:10350 HTTP/1.1\r\n\r\n')).toMatchObject({ state: 'refused', status: 400 });
    expect(head('CONNECT edge-1:10350 HTTP/2\r\n\r\n')).toMatchObject({ state: 'refused', status: 400 });
    for (const bad of ['edge-1', 'edge-1:0', 'edge-1:65536', ':80', '2001:db8::1:80', '[edge]:80', 'a/b:80', 'user@edge:80', '[::1]']) {
      expect(parseTarget(bad), bad).toBeUndefined();
    }
  });

  it('answers without CR or LF in the reason phrase, and with no body after a refusal', () => {
    expect(connectReply(200, 'Connection established')).toBe('HTTP/1.1 200 Connection established\r\n\r\n');
    expect(connectReply(400, 'bad\r\ninjected: yes')).toBe('HTTP/1.1 400 bad injected: yes\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  });
});

const node = (name: string, addresses: Array<[string, string]>, port?: number): KubeletNode => ({
  metadata: { name },
  status: {
    addresses: addresses.map(([type, address]) => ({ type, address })),
    ...(port !== undefined && { daemonEndpoints: { kubeletEndpoint: { Port: port } } }),
  },
});

describe('KubeletTargets', () => {
  it('finds a node by any of its addresses at its daemon port, and by nothing else', () => {
    const t = new KubeletTargets();
    t.upsert(
      node(
        'edge-1',
        [
          ['InternalIP', '203.0.113.2'],
          ['Hostname', 'Edge-1'],
        ],
        10350,
      ),
    );
    expect(t.nodeForTarget('203.0.113.2', 10350)).toBe('edge-1');
    expect(t.nodeForTarget('edge-1', 10350)).toBe('edge-1');
    expect(t.nodeForTarget('EDGE-1', 10350)).toBe('edge-1');
    expect(t.nodeForTarget('203.0.113.2', 10250)).toBeUndefined();
    expect(t.nodeForTarget('203.0.113.3', 10350)).toBeUndefined();
    expect(t.nodesForTarget('10.0.0.1', 443)).toEqual([]);
  });

  it("uses the API server's default kubelet port when a node reports none", () => {
    const t = new KubeletTargets();
    t.upsert(node('edge-1', [['InternalIP', '203.0.113.2']]));
    t.upsert(node('edge-2', [['InternalIP', '203.0.113.3']], 0));
    expect(t.nodeForTarget('203.0.113.2', 10250)).toBe('edge-1');
    expect(t.nodeForTarget('203.0.113.3', 10250)).toBe('edge-2');
    const other = new KubeletTargets(10350);
    other.upsert(node('edge-9', [['InternalIP', '203.0.113.9']]));
    expect(other.nodeForTarget('203.0.113.9', 10350)).toBe('edge-9');
  });

  it('follows address changes and deletions', () => {
    const t = new KubeletTargets();
    t.upsert(node('edge-1', [['InternalIP', '203.0.113.2']], 10350));
    t.upsert(node('edge-1', [['InternalIP', '203.0.113.7']], 10351));
    expect(t.nodeForTarget('203.0.113.2', 10350)).toBeUndefined();
    expect(t.nodeForTarget('203.0.113.7', 10351)).toBe('edge-1');
    t.remove('edge-1');
    expect(t.nodeForTarget('203.0.113.7', 10351)).toBeUndefined();
    expect(t.size).toBe(0);
  });

  it('reports every node sharing an address, and names none of them as the one', () => {
    const t = new KubeletTargets();
    t.upsert(
      node(
        'edge-b',
        [
          ['Hostname', 'gateway'],
          ['InternalIP', '203.0.113.5'],
        ],
        10350,
      ),
    );
    t.upsert(
      node(
        'edge-a',
        [
          ['Hostname', 'gateway'],
          ['InternalIP', '203.0.113.4'],
        ],
        10350,
      ),
    );
    expect(t.nodesForTarget('gateway', 10350)).toEqual(['edge-a', 'edge-b']);
    expect(t.nodeForTarget('gateway', 10350)).toBeUndefined();
    expect(t.nodeForTarget('203.0.113.4', 10350)).toBe('edge-a');
    t.remove('edge-a');
    expect(t.nodeForTarget('gateway', 10350)).toBe('edge-b');
  });

  it('compares IPv6 addresses in one form', () => {
    const t = new KubeletTargets();
    t.upsert(node('edge-6', [['InternalIP', '2001:DB8:0::10']], 10350));
    expect(t.nodeForTarget('2001:db8::10', 10350)).toBe('edge-6');
  });
});

describe('modules.streams config', () => {
  it('is off by default and needs clientCAFile when enabled', () => {
    expect(loadCloudCoreConfig({}).modules.streams).toMatchObject({
      enable: false,
      connect: { port: 10003 },
      direct: { enable: false, port: 10350 },
      maxStreamsPerNode: 64,
      directDial: true,
    });
    const load = () => loadCloudCoreConfig({ overrides: { modules: { streams: { enable: true, servingCaCertFile: '/x.crt' } } } });
    expect(load).toThrow(ConfigError);
    try {
      load();
    } catch (err) {
      expect((err as ConfigError).problems).toEqual([
        'modules.streams.clientCAFile: required when modules.streams.enable is true',
        'modules.streams.servingCaCertFile and servingCaKeyFile: set both or neither',
      ]);
    }
  });

  it('refuses the direct listener without the module', () => {
    const load = () => loadCloudCoreConfig({ overrides: { modules: { streams: { direct: { enable: true } } } } });
    expect(load).toThrow(ConfigError);
    try {
      load();
    } catch (err) {
      expect((err as ConfigError).problems).toEqual(['modules.streams.direct.enable: needs modules.streams.enable']);
    }
  });
});
