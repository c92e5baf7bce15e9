import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The layers of server/ (docs/architecture.md), lowest first. A module may import from its own
 * folder and from folders of a lower layer, never from its own layer's other folders or from
 * above: that is what keeps the execution path readable from any door down to Jupyter.
 */
const LAYERS: readonly (readonly string[])[] = [
  // The file interface both ends share, and the queue both ends' watches use: the process host
  // implements it, sandbox-files/ (the API's end, which speaks the host's protocol) and the envd
  // doors use it.
  ['errors.ts', 'logger.ts', 'sandbox-files/types.ts'],
  ['sandbox-files/watch-queue.ts'],
  ['jupyter', 'workspace', 'egress', 'process-host', 'compile-cache.ts', 'uint8array-base64.ts'],
  ['sandbox-files'],
  ['runs'],
  ['contexts', 'schemas'],
  ['executions'],
  ['processes'],
  ['metrics'],
  ['transports', 'config'],
  ['plugins'],
  ['routes'],
  ['app.ts'],
  ['server.ts'],
  ['main.ts'],
];

/** Where the web framework may be imported: the doors and what assembles them. */
const FRAMEWORK_FOLDERS = new Set(['plugins', 'routes', 'transports', 'schemas', 'app.ts', 'server.ts']);

const root = path.resolve(import.meta.dirname, '..', '..', 'server');

function sources(directory: string): string[] {
  return readdirSync(directory, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(directory, entry.name);
    if (entry.isDirectory()) return sources(full);
    return entry.name.endsWith('.ts') ? [full] : [];
  });
}

/** Files that are units of their own, below the rest of their folder. */
const SHARED_FILES = new Set([path.join('sandbox-files', 'types.ts'), path.join('sandbox-files', 'watch-queue.ts')]);

/** The top-level folder (or file) of server/ a path belongs to. */
function unitOf(file: string): string {
  // Imports name the compiled module (`./errors.js`); the layers name the source.
  const relative = path.relative(root, file).replace(/\.js$/, '.ts');
  if (SHARED_FILES.has(relative)) return relative.split(path.sep).join('/');
  const unit = relative.split(path.sep)[0]!;
  // config.ts is loadConfig over the table in config/: one unit.
  return unit === 'config.ts' ? 'config' : unit;
}

function rankOf(unit: string): number {
  const rank = LAYERS.findIndex((layer) => layer.includes(unit));
  if (rank === -1)
    throw new Error(`server/${unit} is in no layer: add it to LAYERS in tests/unit/layers.test.ts and to docs/architecture.md`);
  return rank;
}

interface Import {
  file: string;
  specifier: string;
}

const IMPORT = /(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

function importsOf(file: string): Import[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(IMPORT)].map((match) => ({ file, specifier: (match[1] ?? match[2])! }));
}

const files = sources(root);
const imports = files.flatMap(importsOf);
const where = (item: Import) => path.relative(path.dirname(root), item.file);

describe('layers of server/', () => {
  it('finds the imports it judges', () => {
    // A guard against a pattern that matches nothing, which would make the other tests pass.
    expect(files.length).toBeGreaterThan(50);
    expect(imports.filter((item) => item.specifier.startsWith('.')).length).toBeGreaterThan(200);
  });

  it('imports run one way, down the layers', () => {
    const upward: string[] = [];
    for (const item of imports) {
      if (!item.specifier.startsWith('.')) continue;
      const from = unitOf(item.file);
      const to = unitOf(path.resolve(path.dirname(item.file), item.specifier));
      if (from === to) continue;
      if (rankOf(to) >= rankOf(from)) upward.push(`${where(item)} imports ${item.specifier} (${from} → ${to})`);
    }
    expect(upward).toEqual([]);
  });

  it('speaks Jupyter only in jupyter/', () => {
    const outside = imports.filter((item) => item.specifier.startsWith('@jupyterlab/') && unitOf(item.file) !== 'jupyter').map(where);
    expect(outside).toEqual([]);
  });

  it('keeps the web framework out of the domain folders', () => {
    const framework = /^(fastify|fastify-plugin|@fastify\/.*)$/;
    const outside = imports.filter((item) => framework.test(item.specifier) && !FRAMEWORK_FOLDERS.has(unitOf(item.file))).map(where);
    expect(outside).toEqual([]);
  });
});
