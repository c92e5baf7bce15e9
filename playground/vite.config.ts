import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// The page is served by the API itself (server/routes/playground.ts) from dist/playground:
// index.html at `/`, hashed files under `/assets/`. No inline script, so that the page runs
// under a Content-Security-Policy whose script-src is 'self' alone. The build prints
// each file's gzipped size: the page is meant to stay under 300 KB gzipped (a test checks).
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/',
  build: {
    outDir: fileURLToPath(new URL('../dist/playground', import.meta.url)),
    emptyOutDir: true,
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    target: 'es2022',
  },
});
