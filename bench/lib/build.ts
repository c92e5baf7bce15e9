import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { root } from '../../tests/helpers/processes.js';

/** The benchmarks run dist/: build it when it is missing or older than the sources. */
export function ensureBuild(noBuild: boolean, progress: (message: string) => void): void {
  const stale: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(file);
      else if (entry.name.endsWith('.ts')) {
        const built = path.join(root, 'dist', path.relative(root, file)).replace(/\.ts$/, '.js');
        if (!existsSync(built) || statSync(built).mtimeMs < statSync(file).mtimeMs) stale.push(path.relative(root, file));
      }
    }
  };
  walk(path.join(root, 'server'));
  if (stale.length === 0) return;
  if (noBuild) {
    throw new Error(
      `dist/ is missing or older than ${stale.slice(0, 3).join(', ')}${stale.length > 3 ? ', ...' : ''}: run \`npm run build\` first (or drop --no-build)`,
    );
  }
  progress(`dist/ is missing or stale (${stale.length} source file(s) newer): npm run build`);
  const build = spawnSync('npm', ['run', 'build'], { cwd: root, stdio: ['ignore', process.stderr, process.stderr] });
  if (build.status !== 0) throw new Error('`npm run build` failed: the benchmarks run the built server in dist/, fix the build first');
}
