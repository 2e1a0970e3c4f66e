import { serviceBusConfigSchema } from '../../edgecore/servicebus/servicebus-config.js';
import { routerConfigSchema } from '../../cloudcore/router/router-config.js';
import { streamsConfigSchema } from '../../cloudcore/streams/streams-config.js';
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../shared/config/loader.js';
import { secretFile, str } from '../../shared/config/schema.js';
import { ConfigError } from '../../shared/errors.js';
import { loadCloudCoreConfig } from '../../cloudcore/config.js';
import { cloudHubConfigSchema } from '../../cloudcore/cloudhub/cloudhub-config.js';
import { deviceControllerConfigSchema } from '../../cloudcore/devicecontroller/devicecontroller-config.js';
import { edgeControllerConfigSchema } from '../../cloudcore/edgecontroller/edgecontroller-config.js';
import { loadEdgeCoreConfig } from '../../edgecore/config.js';
import { deviceTwinConfigSchema } from '../../edgecore/devicetwin/devicetwin-config.js';
import { edgedConfigSchema } from '../../edgecore/edged/edged-config.js';
import { edgeHubConfigSchema } from '../../edgecore/edgehub/edgehub-config.js';
import { eventBusConfigSchema } from '../../edgecore/eventbus/eventbus-config.js';
import { tempDir } from '../support/harness.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Problems of a load that must fail, or a failed expectation when it loads. */
function problemsOf(load: () => unknown): readonly string[] {
  try {
    load();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  return expect.unreachable('the config loaded');
}

describe('module config slices', () => {
  it('each slice alone yields the defaults the daemon composes', () => {
    const edge = loadEdgeCoreConfig({}).modules;
    expect(loadConfig(edgedConfigSchema(), {})).toEqual(edge.edged);
    expect(loadConfig(eventBusConfigSchema(), {})).toEqual(edge.eventBus);
    expect(loadConfig(deviceTwinConfigSchema(), {})).toEqual(edge.deviceTwin);
    expect(loadConfig(edgeHubConfigSchema(), {})).toEqual(edge.edgeHub);
    expect(loadConfig(serviceBusConfigSchema(), {})).toEqual(edge.serviceBus);
    expect(Object.keys(edge)).toEqual(['edged', 'eventBus', 'serviceBus', 'deviceTwin', 'edgeHub']);

    const cloud = loadCloudCoreConfig({}).modules;
    expect(loadConfig(cloudHubConfigSchema(), {})).toEqual(cloud.cloudHub);
    expect(loadConfig(edgeControllerConfigSchema(), {})).toEqual(cloud.edgeController);
    expect(loadConfig(deviceControllerConfigSchema(), {})).toEqual(cloud.deviceController);
    expect(loadConfig(routerConfigSchema(), {})).toEqual(cloud.router);
    expect(loadConfig(streamsConfigSchema(), {})).toEqual(cloud.streams);
    expect(Object.keys(cloud)).toEqual(['cloudHub', 'edgeController', 'deviceController', 'router', 'streams']);
  });

  it("the daemon still runs the checks a slice owns, under the slice's path", () => {
    expect(
      problemsOf(() =>
        loadEdgeCoreConfig({
          overrides: { modules: { edged: { nodeLabels: ['nolabel'] }, edgeHub: { reconnectInitialDelayMs: 500, reconnectMaxDelayMs: 100 } } },
        }),
      ),
    ).toEqual(['modules.edged.nodeLabels: "nolabel" is not key=value', 'modules.edgeHub.reconnectMaxDelayMs must not be below reconnectInitialDelayMs']);
    expect(problemsOf(() => loadCloudCoreConfig({ overrides: { modules: { cloudHub: { heartbeatIntervalMs: 1_000, sessionTimeoutMs: 1_000 } } } }))).toEqual([
      'modules.cloudHub.sessionTimeoutMs (1000) must be larger than heartbeatIntervalMs (1000)',
    ]);
  });

  it("no module imports its daemon's config (only the composition files may)", () => {
    const offenders: string[] = [];
    for (const daemon of ['edgecore', 'cloudcore']) {
      const daemonConfig = join(ROOT, daemon, 'config.ts');
      for (const entry of readdirSync(join(ROOT, daemon), { withFileTypes: true, recursive: true })) {
        const file = join(entry.parentPath, entry.name);
        // Files directly in edgecore/ and cloudcore/ compose the daemon; every folder below is a module.
        if (!entry.isFile() || !file.endsWith('.ts') || entry.parentPath === join(ROOT, daemon)) continue;
        for (const [, specifier] of readFileSync(file, 'utf8').matchAll(/\bfrom\s+'(\.[^']*)'/g)) {
          if (resolve(dirname(file), specifier!.replace(/\.js$/, '.ts')) === daemonConfig) offenders.push(relative(ROOT, file));
        }
      }
    }
    expect(offenders).toEqual([]);
  });
});

describe('secrets from files', () => {
  const secretFileOf = (text: string): string => {
    const path = join(tempDir('secret-'), 'secret');
    writeFileSync(path, text, { mode: 0o600 });
    return path;
  };
  const configFile = (yaml: string): string => {
    const path = join(tempDir('cfg-'), 'edgecore.yaml');
    writeFileSync(path, yaml);
    return path;
  };

  it('reads the secret into the key the module reads, trailing newline trimmed', () => {
    const password = secretFileOf('s3cret pass\n');
    const token = secretFileOf('abc.def\r\n');
    const config = loadEdgeCoreConfig({
      file: configFile(
        `modules:\n  eventBus:\n    internal:\n      username: u\n      passwordFile: ${password}\n    external:\n      ` +
          `passwordFile: ${password}\n  edgeHub:\n    tokenFile: ${token}\n`,
      ),
    });
    expect(config.modules.eventBus.internal.password).toBe('s3cret pass');
    expect(config.modules.eventBus.external.password).toBe('s3cret pass');
    expect(config.modules.edgeHub.token).toBe('abc.def');
    expect(config.modules.edgeHub.tokenFile).toBe(token);
  });

  it('the --token flag wins over tokenFile, which is then not read', () => {
    const config = loadEdgeCoreConfig({
      file: configFile('modules:\n  edgeHub:\n    tokenFile: /nonexistent/token\n'),
      overrides: { modules: { edgeHub: { token: 'from-flag' } } },
    });
    expect(config.modules.edgeHub.token).toBe('from-flag');
  });

  it('the secret and its file key both set is a problem naming both keys', () => {
    const path = secretFileOf('x\n');
    const problems = problemsOf(() =>
      loadEdgeCoreConfig({
        file: configFile(
          `modules:\n  edgeHub:\n    token: inline\n    tokenFile: ${path}\n  eventBus:\n    external:\n      password: inline\n      passwordFile: ${path}\n`,
        ),
      }),
    );
    expect(problems).toEqual([
      'modules.eventBus.external.password and modules.eventBus.external.passwordFile are both set; keep one',
      'modules.edgeHub.token and modules.edgeHub.tokenFile are both set; keep one',
    ]);
  });

  it('an unreadable or empty file is a problem naming the key and the path, reported with the others', () => {
    const dir = tempDir('secret-');
    const missing = join(dir, 'missing');
    const empty = secretFileOf('\n');
    const problems = problemsOf(() =>
      loadEdgeCoreConfig({
        file: configFile(
          `logLevel: loud\nmodules:\n  edgeHub:\n    tokenFile: ${missing}\n  eventBus:\n    internal:\n      ` +
            `passwordFile: ${dir}\n    external:\n      passwordFile: ${empty}\n`,
        ),
      }),
    );
    expect(problems).toEqual([
      expect.stringMatching(/^logLevel: must be one of/),
      `modules.eventBus.internal.passwordFile: cannot read ${dir}: EISDIR: illegal operation on a directory`,
      `modules.eventBus.external.passwordFile: ${empty} is empty`,
      `modules.edgeHub.tokenFile: cannot read ${missing}: ENOENT: no such file or directory`,
    ]);
  });

  it('works for any schema: the file key names its sibling', () => {
    const schema = { db: { password: str('', 'password', { allowEmpty: true }), passwordFile: secretFile('password') } };
    expect(loadConfig(schema, { overrides: { db: { passwordFile: secretFileOf('pw') } } }).db.password).toBe('pw');
    expect(() => loadConfig({ passwordFile: secretFile('password') }, {})).toThrow(/not a field next to it/);
  });
});
