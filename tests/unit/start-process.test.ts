import { describe, expect, it } from 'vitest';
import { InvalidRequestError } from '../../server/errors.js';
import { toStartProcess } from '../../server/transports/start-process.js';

/** The one reading of a start request that every door (HTTP, WebSocket, MCP) shares. */
describe('toStartProcess', () => {
  const ws = { kind: 'ws', id: 'socket-1' } as const;

  it('runs a command line through bash, and cmd with args as is', () => {
    expect(toStartProcess({ command: 'ls | wc -l' }, { owner: ws })).toMatchObject({ cmd: '/bin/bash', args: ['-c', 'ls | wc -l'] });
    expect(toStartProcess({ cmd: 'ls', args: ['-la'] }, { owner: ws })).toMatchObject({ cmd: 'ls', args: ['-la'] });
  });

  it('refuses neither or both of command and cmd, and args with command', () => {
    expect(() => toStartProcess({}, { owner: ws })).toThrow(InvalidRequestError);
    expect(() => toStartProcess({ command: 'a', cmd: 'b' }, { owner: ws })).toThrow(/either command or cmd/);
    expect(() => toStartProcess({ command: 'a', args: ['x'] }, { owner: ws })).toThrow(/args go with cmd/);
  });

  it('is owned by the door, or by the context it binds to, whose cwd is the default', () => {
    expect(toStartProcess({ command: 'true' }, { owner: ws })).toMatchObject({ owner: ws, cwd: undefined, onDisconnect: 'kill' });
    const context = { id: 'ctx', cwd: '/work/sub' };
    expect(toStartProcess({ command: 'true' }, { owner: ws, context })).toMatchObject({
      owner: { kind: 'context', id: 'ctx' },
      cwd: '/work/sub',
    });
    expect(toStartProcess({ command: 'true', cwd: 'other' }, { owner: ws, context }).cwd).toBe('other');
  });

  it('turns seconds into whole milliseconds, and lets a background process outlive its client', () => {
    expect(toStartProcess({ command: 'true', timeout: 0.0001 }, { owner: ws }).timeoutMs).toBe(1);
    expect(toStartProcess({ command: 'true', timeout: 2.5 }, { owner: ws }).timeoutMs).toBe(2500);
    expect(toStartProcess({ command: 'true', on_disconnect: 'kill' }, { owner: ws, background: true }).onDisconnect).toBe('continue');
    expect(toStartProcess({ command: 'true', on_disconnect: 'continue' }, { owner: ws }).onDisconnect).toBe('continue');
  });
});
