import { hostname } from 'node:os';
import { describe, expect, it } from 'vitest';
import { loadEdgeCoreConfig } from '../../edgecore/config.js';
import { nodeFacts, type NodeFactsOptions } from '../../edgecore/edged/node-facts.js';
import { ConfigError } from '../../shared/errors.js';

const options = (o: Partial<NodeFactsOptions> = {}): NodeFactsOptions => ({
  nodeIP: '203.0.113.2',
  hostnameOverride: '',
  kubeletPort: 10350,
  maxPods: 110,
  kubeletVersion: 'v1.33.13-test',
  labels: {},
  ...o,
});

describe('node facts edged reports', () => {
  it('reports the configured InternalIP and the hostname override as the Hostname address', () => {
    expect(nodeFacts(options({ hostnameOverride: 'edge-1' })).addresses).toEqual([
      { type: 'InternalIP', address: '203.0.113.2' },
      { type: 'Hostname', address: 'edge-1' },
    ]);
  });

  it('normalises the Hostname address as the kubelet does (trimmed, lower-case), from the machine without an override', () => {
    expect(nodeFacts(options({ hostnameOverride: ' Edge-1 ' })).addresses[1]).toEqual({ type: 'Hostname', address: 'edge-1' });
    expect(nodeFacts(options()).addresses[1]).toEqual({ type: 'Hostname', address: hostname().trim().toLowerCase() });
  });

  it('gives two edges on one machine distinct addresses when each has its own nodeIP and override', () => {
    const a = nodeFacts(options({ nodeIP: '203.0.113.2', hostnameOverride: 'edge-a' })).addresses;
    const b = nodeFacts(options({ nodeIP: '203.0.113.6', hostnameOverride: 'edge-b' })).addresses;
    const shared = a.filter((x) => b.some((y) => y.address === x.address));
    expect(shared).toEqual([]);
  });

  it('reports the kubelet port as status.daemonEndpoints.kubeletEndpoint.Port', () => {
    expect(nodeFacts(options({ kubeletPort: 10350 })).daemonEndpoints).toEqual({ kubeletEndpoint: { Port: 10350 } });
    expect(nodeFacts(options({ kubeletPort: 20350 })).daemonEndpoints.kubeletEndpoint.Port).toBe(20350);
  });
});

describe('edged config for the node addresses', () => {
  it("defaults to KubeEdge's port 10350 and no hostname override", () => {
    const edged = loadEdgeCoreConfig({}).modules.edged;
    expect(edged.kubeletPort).toBe(10350);
    expect(edged.hostnameOverride).toBe('');
  });

  it('refuses a hostname override that is not a DNS name and a port out of range, naming both fields', () => {
    let problems: readonly string[] = [];
    try {
      loadEdgeCoreConfig({ overrides: { modules: { edged: { hostnameOverride: 'Edge_1', kubeletPort: 70000 } } } });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      problems = (err as ConfigError).problems;
    }
    expect(problems).toEqual([expect.stringContaining('modules.edged.hostnameOverride'), expect.stringContaining('modules.edged.kubeletPort')]);
  });
});
