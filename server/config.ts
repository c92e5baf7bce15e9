import { ConfigError, type AuthMode, type Parser } from './config/parse.js';
import { read, SETTINGS, type Env, type Setting } from './config/settings.js';

export { ConfigError, parseBytes, type AuthMode, type LogLevel } from './config/parse.js';

type Value<S> = S extends { parse: Parser<infer T> } ? (S extends { default: unknown } ? T : T | undefined) : never;

/**
 * Validated server configuration, grouped as {@link SETTINGS} is (`config.workspace.dir`,
 * `config.access.mode`): each setting's meaning is its `doc` there. Built once at boot by
 * {@link loadConfig}.
 */
export type Config = {
  readonly [G in keyof typeof SETTINGS]: { readonly [K in keyof (typeof SETTINGS)[G]]: Value<(typeof SETTINGS)[G][K]> };
};

function parseSetting(env: Env, setting: Setting<unknown>): unknown {
  const fallback = typeof setting.default === 'function' ? setting.default(env) : setting.default;
  const raw = read(env, setting.env) ?? fallback;
  return raw === undefined ? undefined : setting.parse(raw, setting.env);
}

/**
 * Reads and validates the configuration. Throws a {@link ConfigError} naming the offending
 * variable, so that a bad deployment fails at boot rather than on the first request.
 */
export function loadConfig(env: Env = process.env): Config {
  const groups: Record<string, Record<string, unknown>> = {};
  for (const [group, settings] of Object.entries(SETTINGS)) {
    const values: Record<string, unknown> = {};
    for (const [key, setting] of Object.entries(settings)) values[key] = parseSetting(env, setting as Setting<unknown>);
    groups[group] = values;
  }
  const config = groups as Config;
  checkTogether(config);
  return config;
}

/** The rules that tie settings to each other. */
function checkTogether({ access, metrics, execution }: Config): void {
  const mode: AuthMode = access.mode;
  if (mode === 'token' && !access.token) throw new ConfigError('AUTH_MODE=token needs ACCESS_TOKEN to be set');
  if (mode === 'none' && access.token) throw new ConfigError('ACCESS_TOKEN is set but AUTH_MODE=none would ignore it');
  if (mode === 'claim' && access.token) throw new ConfigError('AUTH_MODE=claim issues its own token: unset ACCESS_TOKEN');

  if (metrics.token !== undefined && metrics.public) throw new ConfigError('METRICS_TOKEN is set but METRICS_PUBLIC=true would ignore it');
  if (metrics.token !== undefined && mode === 'none') {
    throw new ConfigError('METRICS_TOKEN is set but AUTH_MODE=none leaves /metrics open to anyone: set ACCESS_TOKEN or AUTH_MODE=claim');
  }

  // Without a token to check, a cross-site page may only call this server if it is allowed.
  if (access.corsOrigins.includes('*') && mode !== 'token') {
    throw new ConfigError(
      `CORS_ORIGINS=* needs ACCESS_TOKEN: with AUTH_MODE=${mode} any web page could ${mode === 'claim' ? 'claim the server' : 'run code'}; list the origins instead`,
    );
  }

  if (execution.maxTimeoutSeconds > 0 && (execution.timeoutSeconds === 0 || execution.timeoutSeconds > execution.maxTimeoutSeconds)) {
    throw new ConfigError('EXECUTION_TIMEOUT must be set and at most MAX_EXECUTION_TIMEOUT when MAX_EXECUTION_TIMEOUT is set');
  }
  if (execution.bufferTotalBytes < execution.bufferBytes) {
    throw new ConfigError('EXECUTION_BUFFER_TOTAL_BYTES must be at least EXECUTION_BUFFER_BYTES');
  }
}
