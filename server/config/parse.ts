import path from 'node:path';
import { parseKernelIds, type KernelIdentity } from '../contexts/cwd-access.js';

/** A setting that cannot be used; its message names the variable, and never repeats a secret. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Turns a variable's trimmed, non-empty text into its value, or throws a {@link ConfigError}. */
export type Parser<T> = (raw: string, name: string) => T;

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export type AuthMode = 'none' | 'token' | 'claim';

export const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

const MAX_TIMER_MS = 2 ** 31 - 1;

export const text: Parser<string> = (raw) => raw;

export const lowerCase: Parser<string> = (raw) => raw.toLowerCase();

export function oneOf<const T extends string>(values: readonly T[]): Parser<T> {
  return (raw, name) => {
    const value = raw.toLowerCase();
    if (!(values as readonly string[]).includes(value)) throw new ConfigError(`${name} must be one of ${values.join(', ')}, got "${raw}"`);
    return value as T;
  };
}

export function integer(min: number, max: number): Parser<number> {
  return (raw, name) => {
    if (!/^\d+$/.test(raw)) throw new ConfigError(`${name} must be a whole number, got "${raw}"`);
    const value = Number(raw);
    if (value < min || value > max) throw new ConfigError(`${name} must be between ${min} and ${max}, got ${value}`);
    return value;
  };
}

export const seconds: Parser<number> = (raw, name) => {
  const value = Number(raw);
  if (!/^\d+(\.\d+)?$/.test(raw) || !Number.isFinite(value)) {
    throw new ConfigError(`${name} must be a non-negative number of seconds, got "${raw}"`);
  }
  return value;
};

/** Seconds as milliseconds, for a duration that is compared with clocks, never given to a timer. */
export const milliseconds: Parser<number> = (raw, name) => Math.round(seconds(raw, name) * 1000);

/**
 * Seconds as whole milliseconds a timer can hold: a positive value is never rounded down to 0
 * (which means "none" or "at once"), and none goes past 2^31-1 ms, beyond which Node fires a
 * timer at once. `maxMs` lowers the cap for a value that a timer gets with something added.
 */
export function timerMs(maxMs = MAX_TIMER_MS): Parser<number> {
  return (raw, name) => {
    const ms = Math.ceil(seconds(raw, name) * 1000);
    if (ms > maxMs) throw new ConfigError(`${name} must be at most ${Math.floor(maxMs / 1000)} seconds`);
    return ms;
  };
}

/** Whole seconds as milliseconds (start-up.sh counts the same value in bash, which has no fractions). */
export function wholeSecondsMs(max: number): Parser<number> {
  const parse = integer(0, max);
  return (raw, name) => parse(raw, name) * 1000;
}

const UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  kib: 2 ** 10,
  mb: 1e6,
  mib: 2 ** 20,
  gb: 1e9,
  gib: 2 ** 30,
  tb: 1e12,
  tib: 2 ** 40,
};

/** Parses sizes such as `1048576`, `64MiB`, `512MB`, `2GiB`. */
export function parseBytes(raw: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib|tb|tib)?$/i.exec(raw.trim());
  if (!match) return undefined;
  const value = Number(match[1]) * UNITS[(match[2] ?? 'b').toLowerCase()]!;
  return Number.isSafeInteger(Math.floor(value)) ? Math.floor(value) : undefined;
}

/** A positive size; `min` (written as in the variable, e.g. `2MiB`) refuses smaller ones. */
export function bytes(min?: string): Parser<number> {
  const minBytes = min === undefined ? 1 : parseBytes(min)!;
  return (raw, name) => {
    const value = parseBytes(raw);
    if (value === undefined || value <= 0) throw new ConfigError(`${name} must be a size such as 1048576, 64MiB or 2GiB, got "${raw}"`);
    if (value < minBytes) throw new ConfigError(`${name} must be at least ${min}`);
    return value;
  };
}

export const boolean: Parser<boolean> = (raw, name) => {
  const value = raw.toLowerCase();
  if (value === 'true' || value === '1' || value === 'yes') return true;
  if (value === 'false' || value === '0' || value === 'no') return false;
  throw new ConfigError(`${name} must be true or false, got "${value}"`);
};

export const absolutePath: Parser<string> = (raw, name) => {
  if (!path.isAbsolute(raw)) throw new ConfigError(`${name} must be an absolute path, got "${raw}"`);
  return path.resolve(raw);
};

export const httpUrl: Parser<string> = (raw, name) => {
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(`${name} must be an http(s) URL, got "${raw}"`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new ConfigError(`${name} must be an http(s) URL, got "${raw}"`);
  }
  return parsed.href.replace(/\/+$/, '');
};

/** Tokens travel in headers: at least 16 printable ASCII characters, no spaces. */
export const token: Parser<string> = (raw, name) => {
  if (raw.length < 16) throw new ConfigError(`${name} must be at least 16 characters long`);
  // Clients send it in a header: a space would not survive `Authorization: Bearer <token>`,
  // and bytes beyond ASCII are not carried faithfully in header values.
  if (!/^[\x21-\x7e]+$/.test(raw)) throw new ConfigError(`${name} must be printable ASCII without spaces`);
  return raw;
};

export const kernelIds: Parser<KernelIdentity> = (raw, name) => {
  const identity = parseKernelIds(raw);
  if (!identity) throw new ConfigError(`${name} must be uid:gid[,gid...], as \`id -u\` and \`id -G\` print them, got "${raw}"`);
  return identity;
};

/** `python=2,r=0`: kernels kept started per language. */
export const kernelPool: Parser<ReadonlyMap<string, number>> = (raw, name) => {
  const sizes = new Map<string, number>();
  for (const part of raw.split(',').map((entry) => entry.trim())) {
    if (part === '') continue;
    const match = /^([A-Za-z][\w.+-]*)\s*=\s*(\d+)$/.exec(part);
    if (!match) throw new ConfigError(`${name} must list language=size pairs such as python=2,r=0, got "${raw}"`);
    const language = match[1]!.toLowerCase();
    const size = Number(match[2]);
    if (size > 64) throw new ConfigError(`${name}: ${language}=${size} is above 64 kernels`);
    if (sizes.has(language)) throw new ConfigError(`${name} names ${language} twice`);
    sizes.set(language, size);
  }
  return sizes;
};

function list(raw: string): string[] {
  return raw
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
}

/** Origins as browsers send them (`https://app.example.com`), or `*`. */
export const origins: Parser<readonly string[]> = (raw, name) => {
  const entries = list(raw);
  for (const origin of entries) {
    if (origin === '*') continue;
    let parsed: URL | undefined;
    try {
      parsed = new URL(origin);
    } catch {
      parsed = undefined;
    }
    if (!parsed || parsed.origin !== origin) {
      throw new ConfigError(`${name} entries must be origins such as https://app.example.com or *, got "${origin}"`);
    }
  }
  return entries;
};

const HOST_NAME = /^\.?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/;

/** Host names (`api.example.com`, `.example.com`, `*`), lower-cased, without trailing dots. */
export const hostNames: Parser<readonly string[]> = (raw, name) => {
  const hosts = list(raw)
    .map((host) => host.toLowerCase().replace(/\.$/, ''))
    .filter((host) => host !== '');
  for (const host of hosts) {
    if (host !== '*' && !HOST_NAME.test(host)) {
      throw new ConfigError(
        `${name} entries must be host names without scheme or port, such as api.example.com, .example.com or *, got "${host}"`,
      );
    }
  }
  return hosts;
};
