import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { AllowListError, EgressPolicy, formatAllowList, parseAllowList } from './allow-list.js';
import { renderRuleset, resolversOf } from './firewall.js';
import { createEgressProxy } from './proxy.js';

/**
 * The egress allow-list's two halves, run by start-up.sh and by the `egress-allow` command:
 *
 *   main.js apply [--initial] LIST   (root) replace the firewall rules and the proxy's list
 *   main.js proxy                    (its own uid) serve the kernels' HTTP(S) proxy
 *
 * Environment: KERNEL_USER (whose connections are filtered), EGRESS_PROXY_PORT (3128),
 * EGRESS_STATE_DIR (/run/code-interpreter: the list in force and the proxy's pid).
 */

const stateDir = process.env.EGRESS_STATE_DIR || '/run/code-interpreter';
const listFile = path.join(stateDir, 'egress-allow');
const pidFile = path.join(stateDir, 'egress-proxy.pid');
const proxyPort = Number(process.env.EGRESS_PROXY_PORT || 3128);

class UsageError extends Error {}

function uidOf(user: string): number {
  if (/^\d+$/.test(user)) return Number(user);
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const [name, , uid] = line.split(':');
    if (name === user && uid !== undefined) return Number(uid);
  }
  throw new UsageError(`KERNEL_USER=${user}: no such user`);
}

function runningProxyPid(): number | undefined {
  try {
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

function apply(args: string[]): void {
  const initial = args[0] === '--initial';
  const text = (initial ? args.slice(1) : args).join(',');
  const list = parseAllowList(text);
  const proxy = runningProxyPid();
  if (!initial && proxy === undefined) {
    throw new UsageError(
      'egress is not restricted in this container (no egress proxy runs): start it with EGRESS_ALLOW set ' +
        '(EGRESS_ALLOW=none to start with nothing allowed) and --cap-add NET_ADMIN, then use egress-allow to change the list',
    );
  }
  const kernelUser = process.env.KERNEL_USER;
  if (!kernelUser) throw new UsageError('KERNEL_USER is not set: whose connections should be filtered?');
  const ruleset = renderRuleset(list, { kernelUid: uidOf(kernelUser), resolvers: resolversOf(readFileSync('/etc/resolv.conf', 'utf8')) });
  try {
    execFileSync('nft', ['-f', '-'], { input: ruleset, stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (error) {
    const detail = String((error as { stderr?: Buffer }).stderr ?? (error as Error).message).trim();
    const hint = /not permitted|EPERM/i.test(detail)
      ? 'the container needs the NET_ADMIN capability (docker run --cap-add NET_ADMIN)'
      : /ENOENT/.test(detail)
        ? 'the nft command (package nftables) is missing'
        : 'see the nft error above';
    throw new Error(`the firewall rules could not be applied: ${detail.split('\n')[0]}; ${hint}`);
  }
  mkdirSync(stateDir, { recursive: true, mode: 0o755 });
  const canonical = formatAllowList(list);
  const temporary = `${listFile}.${process.pid}`;
  writeFileSync(temporary, `${canonical}\n`, { mode: 0o644 });
  renameSync(temporary, listFile);
  if (proxy !== undefined) process.kill(proxy, 'SIGHUP');
  process.stdout.write(`egress allowed: ${canonical}\n`);
}

function proxy(): void {
  const logger = pino({ base: { source: 'egress-proxy' }, level: process.env.LOG_LEVEL || 'info' });
  const load = () => new EgressPolicy(parseAllowList(readFileSync(listFile, 'utf8').trim()));
  let policy = load();
  logger.info({ allowed: formatAllowList(policy.list) }, 'egress proxy: list loaded');
  process.on('SIGHUP', () => {
    try {
      policy = load();
      logger.info({ allowed: formatAllowList(policy.list) }, 'egress proxy: list reloaded');
    } catch (error) {
      logger.error({ err: error }, 'egress proxy: the new list could not be read; the previous one stays in force');
    }
  });
  const server = createEgressProxy({
    policy: () => policy,
    onDenied: (host, port) => logger.warn({ host, port }, 'egress proxy: connection refused by the allow-list'),
  });
  server.listen(proxyPort, '127.0.0.1');
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

try {
  const [command, ...args] = process.argv.slice(2);
  if (command === 'apply') apply(args);
  else if (command === 'proxy') proxy();
  else throw new UsageError('usage: egress-allow LIST   (domains, *.domains, IPs, CIDRs, comma-separated; or none)');
} catch (error) {
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`egress-allow: ${error instanceof AllowListError ? `EGRESS_ALLOW: ${message}` : message}\n`);
  process.exit(error instanceof UsageError || error instanceof AllowListError ? 2 : 1);
}
