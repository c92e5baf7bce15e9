import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseBytes } from '../../server/config.js';

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      host: '0.0.0.0',
      port: 49999,
      jupyterUrl: 'http://127.0.0.1:8888',
      jupyterToken: '',
      workspaceDir: '/home/user',
      logLevel: 'info',
      defaultLanguage: 'python',
      authMode: 'none',
      corsOrigins: [],
      keepaliveIntervalMs: 5000,
      maxOutputBytes: 64 * 2 ** 20,
    });
  });

  it('reads every variable', () => {
    const config = loadConfig({
      HOST: '127.0.0.1',
      PORT: '8080',
      JUPYTER_URL: 'http://jupyter:9999/',
      JUPYTER_TOKEN: 'abc',
      WORKSPACE_DIR: '/srv/work/',
      LOG_LEVEL: 'DEBUG',
      EXECUTION_TIMEOUT: '30',
      MAX_EXECUTION_TIMEOUT: '600',
      KEEPALIVE_INTERVAL: '2.5',
      MAX_OUTPUT_BYTES: '1MiB',
      MAX_UPLOAD_BYTES: '2GB',
    });
    expect(config).toMatchObject({
      host: '127.0.0.1',
      port: 8080,
      jupyterUrl: 'http://jupyter:9999',
      jupyterToken: 'abc',
      workspaceDir: '/srv/work',
      logLevel: 'debug',
      executionTimeoutSeconds: 30,
      maxExecutionTimeoutSeconds: 600,
      keepaliveIntervalMs: 2500,
      maxOutputBytes: 2 ** 20,
      maxUploadBytes: 2e9,
    });
  });

  it.each([
    [{ PORT: 'eighty' }, /PORT/],
    [{ PORT: '70000' }, /PORT/],
    [{ JUPYTER_URL: 'not a url' }, /JUPYTER_URL/],
    [{ JUPYTER_URL: 'ftp://x' }, /JUPYTER_URL/],
    [{ WORKSPACE_DIR: 'relative/dir' }, /WORKSPACE_DIR/],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL/],
    [{ EXECUTION_TIMEOUT: '-1' }, /EXECUTION_TIMEOUT/],
    [{ MAX_OUTPUT_BYTES: 'lots' }, /MAX_OUTPUT_BYTES/],
    [{ MAX_UPLOAD_BYTES: '0' }, /MAX_UPLOAD_BYTES/],
    [{ MAX_EXECUTION_TIMEOUT: '60', EXECUTION_TIMEOUT: '120' }, /EXECUTION_TIMEOUT/],
    [{ CORS_ORIGINS: 'example.com' }, /CORS_ORIGINS/],
  ])('refuses %j naming the variable', (env, pattern) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(pattern);
  });
});

describe('parseBytes', () => {
  it.each([
    ['1024', 1024],
    ['64MiB', 64 * 2 ** 20],
    ['1.5 KB', 1500],
    ['2gib', 2 * 2 ** 30],
  ])('%s → %d', (raw, expected) => {
    expect(parseBytes(raw)).toBe(expected);
  });

  it('refuses what is not a size', () => {
    expect(parseBytes('12 parsecs')).toBeUndefined();
    expect(parseBytes('-5')).toBeUndefined();
  });
});
