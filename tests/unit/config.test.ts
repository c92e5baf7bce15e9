import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseBytes, type Config } from '../../server/config.js';

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      server: { host: '0.0.0.0', port: 49999, logLevel: 'info', requestTimeoutMs: 60_000, maxConnections: 1000 },
      jupyter: { url: 'http://127.0.0.1:8888', token: '' },
      workspace: { dir: '/home/user' },
      contexts: { defaultLanguage: 'python' },
      access: { mode: 'none', corsOrigins: [], allowedHosts: undefined },
      execution: { keepaliveIntervalMs: 5000, maxOutputBytes: 64 * 2 ** 20 },
    });
  });

  it.each([
    ['INTERRUPT_GRACE', (config: Config) => config.execution.interruptGraceMs, 2147483],
    ['KEEPALIVE_INTERVAL', (config: Config) => config.execution.keepaliveIntervalMs, 2147483],
    ['MCP_SESSION_IDLE', (config: Config) => config.mcp.sessionIdleMs, 2147483],
    ['SHUTDOWN_GRACE', (config: Config) => config.server.shutdownGraceMs, 2147478],
  ] as const)('%s is a duration a timer can hold: tiny values round up, values past the cap are refused', (name, field, maxSeconds) => {
    expect(field(loadConfig({ [name]: '0.0001' }))).toBe(1);
    expect(field(loadConfig({ [name]: '2.5' }))).toBe(2500);
    expect(field(loadConfig({ [name]: String(maxSeconds) }))).toBe(maxSeconds * 1000);
    expect(() => loadConfig({ [name]: String(maxSeconds + 1) })).toThrow(new RegExp(`${name} must be at most ${maxSeconds} seconds`));
  });

  it('reads REQUEST_TIMEOUT (never rounded down to no limit) and MAX_CONNECTIONS', () => {
    expect(loadConfig({ REQUEST_TIMEOUT: '2.5', MAX_CONNECTIONS: '64' })).toMatchObject({
      server: { requestTimeoutMs: 2500, maxConnections: 64 },
    });
    expect(loadConfig({ REQUEST_TIMEOUT: '0.0001' }).server.requestTimeoutMs).toBe(1);
    expect(loadConfig({ REQUEST_TIMEOUT: '0' }).server.requestTimeoutMs).toBe(0);
    expect(() => loadConfig({ REQUEST_TIMEOUT: '1e9' })).toThrow(/REQUEST_TIMEOUT/);
    expect(() => loadConfig({ REQUEST_TIMEOUT: '3000000' })).toThrow(/REQUEST_TIMEOUT must be at most 2147483 seconds/);
    expect(() => loadConfig({ MAX_CONNECTIONS: '0' })).toThrow(/MAX_CONNECTIONS/);
  });

  it('reads KERNEL_POOL as language=size pairs; python=1 when unset', () => {
    expect([...loadConfig({}).contexts.kernelPool]).toEqual([['python', 1]]);
    expect([...loadConfig({ KERNEL_POOL: ' python=2, R = 1 ,javascript=0,' }).contexts.kernelPool]).toEqual([
      ['python', 2],
      ['r', 1],
      ['javascript', 0],
    ]);
    expect([...loadConfig({ KERNEL_POOL: 'python=0' }).contexts.kernelPool]).toEqual([['python', 0]]);
    for (const bad of ['python', 'python=-1', 'python=1.5', '=2', 'python=1;r=1', 'py thon=1']) {
      expect(() => loadConfig({ KERNEL_POOL: bad }), bad).toThrow(/KERNEL_POOL must list language=size pairs such as python=2,r=0/);
    }
    expect(() => loadConfig({ KERNEL_POOL: 'python=65' })).toThrow(/KERNEL_POOL: python=65 is above 64 kernels/);
    expect(() => loadConfig({ KERNEL_POOL: 'python=1,Python=2' })).toThrow(/KERNEL_POOL names python twice/);
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
      server: { host: '127.0.0.1', port: 8080, logLevel: 'debug' },
      jupyter: { url: 'http://jupyter:9999', token: 'abc' },
      workspace: { dir: '/srv/work', maxUploadBytes: 2e9 },
      execution: { timeoutSeconds: 30, maxTimeoutSeconds: 600, keepaliveIntervalMs: 2500, maxOutputBytes: 2 ** 20 },
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

describe('loadConfig: access control', () => {
  const TOKEN = 'sixteen-chars-at-least-0123';

  it('is off without ACCESS_TOKEN or AUTH_MODE', () => {
    expect(loadConfig({})).toMatchObject({ access: { mode: 'none', token: undefined } });
    expect(loadConfig({ ACCESS_TOKEN: '  ', AUTH_MODE: '' })).toMatchObject({ access: { mode: 'none', token: undefined } });
  });

  it('takes ACCESS_TOKEN alone as token mode', () => {
    expect(loadConfig({ ACCESS_TOKEN: TOKEN })).toMatchObject({ access: { mode: 'token', token: TOKEN } });
    expect(loadConfig({ ACCESS_TOKEN: TOKEN, AUTH_MODE: 'Token' })).toMatchObject({ access: { mode: 'token', token: TOKEN } });
  });

  it('takes AUTH_MODE=claim without a token', () => {
    expect(loadConfig({ AUTH_MODE: 'claim' })).toMatchObject({ access: { mode: 'claim', token: undefined } });
  });

  it.each([
    [{ AUTH_MODE: 'token' }, /AUTH_MODE=token needs ACCESS_TOKEN/],
    [{ AUTH_MODE: 'none', ACCESS_TOKEN: TOKEN }, /ACCESS_TOKEN is set but AUTH_MODE=none/],
    [{ AUTH_MODE: 'claim', ACCESS_TOKEN: TOKEN }, /AUTH_MODE=claim issues its own token/],
    [{ AUTH_MODE: 'password' }, /AUTH_MODE must be one of none, token, claim/],
    [{ ACCESS_TOKEN: 'short-secret' }, /at least 16 characters/],
    [{ ACCESS_TOKEN: 'has a space inside it' }, /printable ASCII without spaces/],
    [{ ACCESS_TOKEN: 'überlange-geheimnisse' }, /printable ASCII without spaces/],
  ])('refuses %j', (env, pattern) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(pattern);
  });

  it('never repeats the token in its errors', () => {
    for (const env of [
      { ACCESS_TOKEN: 'short-secret' },
      { ACCESS_TOKEN: 'has a space inside it' },
      { ACCESS_TOKEN: TOKEN, AUTH_MODE: 'none' },
    ]) {
      let message = '';
      try {
        loadConfig(env);
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).not.toBe('');
      expect(message).not.toContain(env.ACCESS_TOKEN);
    }
  });

  it('reads CORS_ORIGINS as a comma-separated allow-list of origins, * included', () => {
    expect(loadConfig({ CORS_ORIGINS: 'https://app.example.com, http://localhost:5173' }).access.corsOrigins).toEqual([
      'https://app.example.com',
      'http://localhost:5173',
    ]);
    expect(loadConfig({ CORS_ORIGINS: '*', ACCESS_TOKEN: 'a-test-token-0123456789' }).access.corsOrigins).toEqual(['*']);
    expect(loadConfig({ CORS_ORIGINS: ' , ' }).access.corsOrigins).toEqual([]);
  });

  it.each([{}, { AUTH_MODE: 'claim' }])('refuses CORS_ORIGINS=* without a token (%o): any page could drive the server', (env) => {
    expect(() => loadConfig({ CORS_ORIGINS: '*', ...env })).toThrow(/CORS_ORIGINS=\* needs ACCESS_TOKEN/);
  });

  it('reads ALLOWED_HOSTS as host names, lower-cased, without trailing dots; unset is undefined', () => {
    expect(loadConfig({}).access.allowedHosts).toBeUndefined();
    expect(loadConfig({ ALLOWED_HOSTS: 'API.example.com., .internal, *' }).access.allowedHosts).toEqual([
      'api.example.com',
      '.internal',
      '*',
    ]);
  });

  it.each(['https://api.example.com', 'api.example.com:8080', 'api.example.com/x', '[::1]', 'a b'])('refuses ALLOWED_HOSTS=%s', (hosts) => {
    expect(() => loadConfig({ ALLOWED_HOSTS: hosts })).toThrow(/ALLOWED_HOSTS/);
  });

  it.each(['https://app.example.com/', 'https://app.example.com/path', 'app.example.com', 'https://APP.example.com', 'null'])(
    'refuses CORS_ORIGINS=%s, which is not an origin as browsers send it',
    (origin) => {
      expect(() => loadConfig({ CORS_ORIGINS: origin })).toThrow(/CORS_ORIGINS/);
    },
  );
});
