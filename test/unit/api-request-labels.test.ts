import { describe, expect, it } from 'vitest';
import { requestLabels } from '../../cloudcore/kube/keep-alive-http.js';

// cloudcore_apiserver_requests_total labels: verb and resource as the API server names them, never a name or
// a namespace (one series per node would follow).
describe('requestLabels', () => {
  const at = (method: string, path: string) => requestLabels(method, new URL(`https://10.0.0.1:6443${path}`));

  it('names core, namespaced, cluster-scoped and custom resources with their subresources', () => {
    expect(at('GET', '/api/v1/pods')).toEqual({ verb: 'list', resource: 'pods' });
    expect(at('GET', '/api/v1/pods?watch=true&resourceVersion=5')).toEqual({ verb: 'watch', resource: 'pods' });
    expect(at('GET', '/api/v1/namespaces/default/pods/web')).toEqual({ verb: 'get', resource: 'pods' });
    expect(at('PATCH', '/api/v1/namespaces/default/pods/web/status')).toEqual({ verb: 'patch', resource: 'pods/status' });
    expect(at('PUT', '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/edge-1')).toEqual({ verb: 'update', resource: 'leases' });
    expect(at('POST', '/api/v1/namespaces/default/events')).toEqual({ verb: 'create', resource: 'events' });
    expect(at('PATCH', '/api/v1/nodes/edge-1/status')).toEqual({ verb: 'patch', resource: 'nodes/status' });
    expect(at('DELETE', '/api/v1/namespaces/default/pods/web')).toEqual({ verb: 'delete', resource: 'pods' });
    expect(at('DELETE', '/api/v1/namespaces/default/pods')).toEqual({ verb: 'deletecollection', resource: 'pods' });
    expect(at('GET', '/api/v1/namespaces/kubeedge')).toEqual({ verb: 'get', resource: 'namespaces' });
    expect(at('GET', '/apis/devices.kubeedge.io/v1beta1/devicemodels')).toEqual({ verb: 'list', resource: 'devicemodels' });
    expect(at('PATCH', '/apis/devices.kubeedge.io/v1beta1/namespaces/default/devices/thermo/status')).toEqual({ verb: 'patch', resource: 'devices/status' });
  });
});
