// Lint: typescript-eslint's type-aware rules on every TypeScript file, so that a promise nobody
// awaits, a promise handed where a callback is expected, or an `any` that leaks into typed code
// is caught before review. Formatting is prettier's job (`npm run format`); eslint-config-prettier
// comes last and turns off every stylistic rule that would argue with it.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import prettier from 'eslint-config-prettier';
import tseslint from 'typescript-eslint';

export default defineConfig(
  {
    ignores: [
      'dist/',
      'coverage/',
      'node_modules/',
      '.bench-tmp/',
      'server/transports/connect/gen/',
      'clients/typescript/dist/',
      'clients/typescript/src/generated/',
    ],
  },
  js.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        // Each file is checked with the tsconfig.json that includes it; the few JavaScript files
        // outside it (this config, scripts/, examples/) get a default project of their own.
        projectService: {
          allowDefaultProject: ['*.js', 'scripts/*.mjs', 'examples/*.mjs', 'playground/vite.config.ts'],
        },
        tsconfigRootDir: import.meta.dirname,
      },
    },
  },
  {
    rules: {
      // Spelled out although recommendedTypeChecked has them: they are the reason for linting.
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unsafe-argument': 'error',
      '@typescript-eslint/no-unsafe-assignment': 'error',
      '@typescript-eslint/no-unsafe-call': 'error',
      '@typescript-eslint/no-unsafe-member-access': 'error',
      '@typescript-eslint/no-unsafe-return': 'error',
      // Off: here an async function without await is a contract, not a slip. Fastify's async
      // plugins, hooks and handlers (FastifyPluginAsync; a throw becomes the answer), the serial
      // queue's tasks and injected lookups are asked for a promise; all 54 hits were such.
      // What goes wrong with promises is caught by no-floating-promises and no-misused-promises.
      '@typescript-eslint/require-await': 'off',
      // A reason received and passed on (an abort signal's reason is `any`, a cancel reason
      // `unknown`) stays what its sender chose; a rejection with a string or a number does not pass.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingAny: true, allowThrowingUnknown: true }],
      // An empty case falls through to the next even with a comment about the group between them.
      'no-fallthrough': ['error', { allowEmptyCase: true }],
      // `_name` says "deliberately unused" (a callback's position, a destructured rest).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' }],
    },
  },
  {
    // Plain JavaScript runs in Node (the bundle script, the example client): its globals are
    // Node's, and tsc, not no-undef, is what catches a misspelt name in typed code.
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        fetch: 'readonly',
        URL: 'readonly',
        TextDecoderStream: 'readonly',
      },
    },
  },
  {
    // Plain JavaScript has no types to keep `any` out of: a JSON.parse result or a parameter is
    // `any` by nature there. The promise rules still apply to it.
    files: ['**/*.js', '**/*.mjs'],
    rules: {
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  {
    // Vitest's asymmetric matchers (expect.stringMatching, expect.any, ...) are typed `any`, so
    // each one placed in an expected object is an "unsafe assignment": 38 such hits, and none
    // other once the tests' JSON answers were typed. Member access, arguments, calls and
    // returns of `any` stay checked in tests.
    files: ['tests/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
    },
  },
  prettier,
);
