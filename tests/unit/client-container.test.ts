import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bindsFor, environmentFor, SERVER_SETTINGS } from '../../clients/typescript/src/container.js';

const root = path.resolve(import.meta.dirname, '..', '..');

describe('ExecutionContainer options', () => {
  it('refuses in env exactly the variables start-up.sh keeps from the kernels', () => {
    const script = readFileSync(path.join(root, 'start-up.sh'), 'utf8');
    const list = /SERVER_ONLY_VARS=\(([^)]*)\)/.exec(script)?.[1];
    expect(list).toBeDefined();
    expect([...SERVER_SETTINGS].sort()).toEqual(list!.split(/\s+/).filter(Boolean).sort());
    expect(() => environmentFor({ PORT: '1' })).toThrow(/PORT is a setting of the server/);
    expect(environmentFor({ API_KEY: 'a=b' })).toEqual(['API_KEY=a=b']);
  });

  it('refuses in env the same variables in the Python client', () => {
    const printed = execFileSync(
      process.env.PYTHON ?? '/usr/bin/python3',
      ['-c', 'import json; from code_interpreter_client.container import SERVER_SETTINGS; print(json.dumps(SERVER_SETTINGS))'],
      { env: { ...process.env, PYTHONPATH: path.join(root, 'clients', 'python'), PYTHONDONTWRITEBYTECODE: '1' }, encoding: 'utf8' },
    );
    expect(JSON.parse(printed)).toEqual([...SERVER_SETTINGS]);
  });

  it('binds host paths, relative or absolute, under the workspace', () => {
    expect(bindsFor({ './data': 'data', '/srv/models': 'models/big/' }, '/home/me/project')).toEqual([
      '/home/me/project/data:/home/user/data',
      '/srv/models:/home/user/models/big',
    ]);
    expect(() => bindsFor({ data: '/data' })).toThrow(/must be relative to the workspace/);
    expect(() => bindsFor({ data: '../data' })).toThrow(/no "\.\."/);
    expect(() => bindsFor({ data: '.' })).toThrow(/names no directory/);
    expect(() => bindsFor({ 'a:b': 'data' }, '/tmp')).toThrow(/contains ":"/);
  });
});
