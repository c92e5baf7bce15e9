import { Code, ConnectError, type Interceptor } from '@connectrpc/connect';

/**
 * What envd (e2b's in-sandbox daemon, written in Go) puts in an end event, where the SDK shows
 * it: `status` is Go's `ProcessState.String()` and `error` the `cmd.Wait()` error, whose text is
 * the same; `CommandExitError`'s message is that text, so it is spelled as Go spells it.
 */
export interface EndFields {
  exitCode: number;
  exited: boolean;
  status: string;
  error?: string;
}

/** Go's names of signals (`syscall.Signal.String()` on Linux), as `signal: <name>` shows them. */
const GO_SIGNAL_NAMES: Record<string, string> = {
  SIGHUP: 'hangup',
  SIGINT: 'interrupt',
  SIGQUIT: 'quit',
  SIGILL: 'illegal instruction',
  SIGTRAP: 'trace/breakpoint trap',
  SIGABRT: 'aborted',
  SIGBUS: 'bus error',
  SIGFPE: 'floating point exception',
  SIGKILL: 'killed',
  SIGUSR1: 'user defined signal 1',
  SIGSEGV: 'segmentation fault',
  SIGUSR2: 'user defined signal 2',
  SIGPIPE: 'broken pipe',
  SIGALRM: 'alarm clock',
  SIGTERM: 'terminated',
  SIGXCPU: 'CPU time limit exceeded',
  SIGXFSZ: 'file size limit exceeded',
};

/**
 * The end event of a process that exited with `exitCode`, or was ended by `signal` (a name such
 * as `SIGKILL`, as Node reports it). Killed by a signal, Go's exit code is -1 and `exited` false.
 */
export function endFields(exitCode: number | null, signal: string | null): EndFields {
  if (exitCode !== null) {
    const status = `exit status ${exitCode}`;
    return exitCode === 0 ? { exitCode, exited: true, status } : { exitCode, exited: true, status, error: status };
  }
  const status = `signal: ${GO_SIGNAL_NAMES[signal ?? ''] ?? signal ?? 'unknown'}`;
  return { exitCode: -1, exited: false, status, error: status };
}

/** envd's keepalive interval when the client names none (`internal/permissions/keepalive.go`). */
export const DEFAULT_KEEPALIVE_MS = 90_000;
/** Less often than this is no keepalive for a proxy's idle timeout; more often is only noise. */
const KEEPALIVE_BOUNDS_MS = [1_000, 3_600_000] as const;

/**
 * `Keepalive-Ping-Interval`, in seconds as envd reads it (the JS SDK sends 50): how long a
 * stream may stay silent before a keepalive event. Anything unreadable is the default.
 */
export function keepaliveMs(header: string | null): number {
  const seconds = header === null ? NaN : Number(header.trim());
  if (!Number.isFinite(seconds) || seconds <= 0) return DEFAULT_KEEPALIVE_MS;
  return Math.min(Math.max(seconds * 1000, KEEPALIVE_BOUNDS_MS[0]), KEEPALIVE_BOUNDS_MS[1]);
}

/**
 * The user an e2b SDK names with HTTP Basic auth (`Authorization: Basic base64("<user>:")`),
 * undefined without one. A Bearer token in the same header is the access token's business.
 */
export function basicAuthUser(header: string | null): string | undefined {
  const match = header === null ? null : /^Basic +([A-Za-z0-9+/=_-]+) *$/i.exec(header);
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon === -1 ? decoded : decoded.slice(0, colon);
}

/**
 * Commands and file calls run as the kernels' user, whatever the SDK asks for: a call that
 * names another user (e2b's `user: 'root'`) is refused as envd refuses a user it does not know,
 * rather than run silently as someone else. `user` is e2b's default user name.
 */
export function userCheck(allowed: readonly string[]): Interceptor {
  const names = new Set(allowed);
  return (next) => async (request) => {
    const user = basicAuthUser(request.header.get('authorization'));
    if (user !== undefined && !names.has(user)) {
      // The caller's own input, shown back as envd shows it, without control characters.
      const shown = user.slice(0, 64).replace(/[^\x20-\x7e]/g, '?');
      throw new ConnectError(`invalid username: '${shown}' (commands and files are the kernels' user's)`, Code.Unauthenticated);
    }
    return next(request);
  };
}

export const KEEPALIVE = Symbol('keepalive');

/**
 * The items of `source`, and KEEPALIVE whenever none came for `intervalMs`. The next item is
 * asked for only once the previous one has been taken, so a slow client still holds the reader back.
 */
export async function* withKeepalive<T>(source: AsyncIterator<T>, intervalMs: number): AsyncGenerator<T | typeof KEEPALIVE> {
  let pending: Promise<IteratorResult<T>> | undefined;
  try {
    for (;;) {
      pending ??= source.next();
      let timer: NodeJS.Timeout | undefined;
      const tick = new Promise<typeof KEEPALIVE>((resolve) => (timer = setTimeout(() => resolve(KEEPALIVE), intervalMs)));
      const result = await Promise.race([pending, tick]);
      clearTimeout(timer);
      if (result === KEEPALIVE) {
        yield KEEPALIVE;
        continue;
      }
      pending = undefined;
      if (result.done) return;
      yield result.value;
    }
  } finally {
    // Not awaited: a read still pending ends when the request's signal aborts, and return()
    // waits for it.
    void source.return?.(undefined);
  }
}
