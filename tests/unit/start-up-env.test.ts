import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { everySetting } from '../../server/config/settings.js';

const root = path.resolve(import.meta.dirname, '../..');
const read = (file: string) => readFileSync(path.join(root, file), 'utf8');

/** The names start-up.sh keeps out of Jupyter's environment, and so out of every kernel's. */
function serverOnlyVars(): string[] {
  const match = /^SERVER_ONLY_VARS=\(([^)]*)\)/m.exec(read('start-up.sh'));
  if (!match) throw new Error('SERVER_ONLY_VARS not found in start-up.sh');
  return match[1]!.split(/\s+/).filter(Boolean);
}

describe("start-up.sh's list of variables kernels must not inherit", () => {
  it('names every variable the API reads', () => {
    // The settings table is all the API reads (server/config.ts reads nothing else).
    const read_ = everySetting().map((setting) => setting.env);
    expect(read_.length).toBeGreaterThan(10);
    expect(
      read_.filter((name) => !serverOnlyVars().includes(name)),
      'add them to SERVER_ONLY_VARS in start-up.sh',
    ).toEqual([]);
  });

  it('names every variable of the configuration tables in docs/configuration.md', () => {
    const names = [...read('docs/configuration.md').matchAll(/^\| `([A-Z][A-Z0-9_]*)`/gm)].map((match) => match[1]!);
    expect(names.length).toBeGreaterThan(10);
    expect(
      names.filter((name) => !serverOnlyVars().includes(name)),
      'add them to SERVER_ONLY_VARS in start-up.sh',
    ).toEqual([]);
  });
});
