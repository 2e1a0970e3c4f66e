#!/usr/bin/env node
// Copies the .proto files next to the compiled code: dist/shared/channel/codec.js loads ../../proto/*.proto,
// which resolves to dist/proto when compiled and to proto/ when the TypeScript runs directly (tests).
// Also cloudcore's OpenSSL config (no TLS 1.3 session tickets), which the installed command loads.
import { cpSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
cpSync(join(root, 'proto'), join(root, 'dist', 'proto'), { recursive: true });
cpSync(join(root, 'cloudcore', 'openssl.cnf'), join(root, 'dist', 'cloudcore', 'openssl.cnf'));
