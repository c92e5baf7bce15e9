import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * The Connect code under server/transports/connect/gen/ is committed (builds and the image run
 * no code generator): this regenerates it from proto/ with buf.gen.yaml and compares, so the
 * .proto files and the code that serves them cannot drift apart.
 */
const root = path.resolve(import.meta.dirname, '..', '..');
const committed = path.join(root, 'server', 'transports', 'connect', 'gen');

async function filesUnder(directory: string): Promise<string[]> {
  const entries = await readdir(directory, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(directory, path.join(entry.parentPath, entry.name)))
    .sort();
}

describe('generated Connect code', () => {
  let output: string | undefined;
  afterAll(async () => {
    if (output) await rm(output, { recursive: true, force: true });
  });

  it('is what `npm run proto` generates from proto/', async () => {
    output = await mkdtemp(path.join(tmpdir(), 'proto-gen-'));
    const bin = path.join(root, 'node_modules', '.bin');
    // --output moves buf.gen.yaml's `out` under a scratch directory: the committed files stay untouched.
    execFileSync(path.join(bin, 'buf'), ['generate', '--output', output], {
      cwd: root,
      env: { ...process.env, PATH: `${bin}${path.delimiter}${process.env.PATH ?? ''}` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const generated = path.join(output, 'server', 'transports', 'connect', 'gen');
    const names = await filesUnder(generated);
    expect(names).toContain(path.join('envd', 'process', 'process_pb.ts'));
    expect(await filesUnder(committed)).toEqual(names);
    for (const name of names) {
      expect(await readFile(path.join(committed, name), 'utf8'), name).toBe(await readFile(path.join(generated, name), 'utf8'));
    }
  });
});
