import { describe, expect, it } from 'vitest';
import { kubeError } from '../../cloudcore/kube/kube-client.js';

const apiError = (code: number, body: unknown): unknown => Object.assign(new Error(`HTTP-Code: ${code}`), { code, body });

describe('API failures as stable codes', () => {
  it('drops what the API machinery refuses, retries what never reached it', () => {
    const status = (code: number, reason: string): string =>
      JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message: reason });
    expect(kubeError(apiError(422, status(422, 'Invalid'))).code).toBe('ERR_INVALID_MESSAGE');
    expect(kubeError(apiError(409, status(409, 'AlreadyExists'))).code).toBe('ERR_INVALID_MESSAGE');
    expect(kubeError(apiError(404, status(404, 'NotFound'))).code).toBe('ERR_NOT_FOUND');
    expect(kubeError(apiError(403, status(403, 'Forbidden'))).code).toBe('ERR_FORBIDDEN');
    expect(kubeError(apiError(429, status(429, 'TooManyRequests'))).code).toBe('ERR_UNAVAILABLE');
    expect(kubeError(apiError(503, 'unavailable')).code).toBe('ERR_UNAVAILABLE');
    // Go's HTTP server on a request it could not parse: plain text, connection closed.
    expect(kubeError(apiError(400, '400 Bad Request')).code).toBe('ERR_UNAVAILABLE');
    expect(kubeError(new Error('socket hang up')).code).toBe('ERR_UNAVAILABLE');
  });
});
