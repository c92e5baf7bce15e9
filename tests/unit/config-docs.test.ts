import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { configurationDoc } from '../../server/config/document.js';
import { everySetting, LAUNCHER_SETTINGS } from '../../server/config/settings.js';

const root = path.resolve(import.meta.dirname, '../..');

describe('docs/configuration.md', () => {
  it('is what the settings table generates (run `npm run docs` after changing a setting)', () => {
    expect(readFileSync(path.join(root, 'docs/configuration.md'), 'utf8')).toBe(configurationDoc());
  });

  it('documents every variable once, with a meaning', () => {
    const settings = [...everySetting(), ...LAUNCHER_SETTINGS];
    const names = settings.map((setting) => setting.env);
    expect(new Set(names).size).toBe(names.length);
    for (const setting of settings) expect(setting.doc.length, setting.env).toBeGreaterThan(10);
    const rows = [...configurationDoc().matchAll(/^\| `([A-Z][A-Z0-9_]*)` \|/gm)].map((match) => match[1]);
    expect(rows.sort()).toEqual([...names].sort());
  });
});
