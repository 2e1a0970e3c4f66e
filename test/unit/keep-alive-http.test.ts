import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import * as k8s from '@kubernetes/client-node';
import { KeepAliveHttp } from '../../cloudcore/kube/keep-alive-http.js';

// A server that records the raw bytes of each request on one kept-alive connection and parses them the way
// Go's net/http does: a request without Content-Length or chunked encoding has no body.
function rawServer(): Promise<{ port: number; requests: string[]; close: () => void }> {
  const requests: string[] = [];
  const server = net.createServer((socket) => {
    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        const end = buffered.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buffered.subarray(0, end).toString('latin1');
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (buffered.length < end + 4 + length) return;
        requests.push(buffered.subarray(0, end + 4 + length).toString('utf8'));
        buffered = buffered.subarray(end + 4 + length);
        socket.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}');
      }
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve({ port: (server.address() as net.AddressInfo).port, requests, close: () => server.close() })),
  );
}

describe('KeepAliveHttp on the wire', () => {
  let close: (() => void) | undefined;
  afterEach(() => close?.());

  it('sends the length of every body, DELETE included, so the next request on the socket is not corrupted', async () => {
    const server = await rawServer();
    close = server.close;
    const http = new KeepAliveHttp();
    const base = `http://127.0.0.1:${server.port}`;
    const del = new k8s.RequestContext(`${base}/api/v1/namespaces/default/pods/p`, k8s.HttpMethod.DELETE);
    del.setHeaderParam('Content-Type', 'application/json');
    const options = JSON.stringify({ gracePeriodSeconds: 0, preconditions: { uid: 'ü-1' } });
    del.setBody(options);
    expect((await http.send(del)).httpStatusCode).toBe(200);
    const patch = new k8s.RequestContext(`${base}/api/v1/namespaces/default/pods/p/status`, k8s.HttpMethod.PATCH);
    patch.setBody('{"status":{}}');
    expect((await http.send(patch)).httpStatusCode).toBe(200);
    expect(server.requests).toHaveLength(2);
    expect(server.requests[0]).toMatch(/^DELETE /);
    expect(server.requests[0].endsWith(`\r\n\r\n${options}`)).toBe(true);
    expect(server.requests[1]).toMatch(/^PATCH .*\r\n\r\n\{"status":\{\}\}$/s);
  });
});
