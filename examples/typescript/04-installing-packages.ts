// Installing packages at runtime. pip installs into a virtual environment in the workspace that
// every Python kernel of the container uses, so a package installed once is there for all of them.
//
//   npx tsx examples/typescript/04-installing-packages.ts
//
// With a package index in reach it is one line: `%pip install einops`. This example installs a
// package from source that it uploads first, which works without any network too.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ExecutionClient, ExecutionContainer, ResourceClient } from 'code-interpreter-client';

const tag = process.env.CODE_INTERPRETER_IMAGE ?? 'code-interpreter';
await using container = await new ExecutionContainer({ tag }).run();
const server = { host: container.host, port: container.executorPort, accessToken: container.accessToken };

// A small package: greeting/pyproject.toml and greeting/greeting/__init__.py.
const source = await mkdtemp(path.join(tmpdir(), 'greeting-'));
try {
  await mkdir(path.join(source, 'greeting'));
  await writeFile(
    path.join(source, 'pyproject.toml'),
    '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n[project]\nname = "greeting"\nversion = "1.0.0"\n',
  );
  await writeFile(path.join(source, 'greeting', '__init__.py'), 'def hello(name):\n    return f"Hello, {name}!"\n');
  await new ResourceClient({ ...server, port: container.resourcePort }).uploadDirectory(source, 'packages/greeting');
} finally {
  await rm(source, { recursive: true, force: true });
}

await using installer = await new ExecutionClient(server).connect();
// --no-build-isolation: build with the setuptools that is there instead of fetching one.
const install = installer.submit('%pip install --no-build-isolation ./packages/greeting', { timeout: 300 });
for await (const chunk of install.stream()) process.stdout.write(chunk); // pip's progress, as it comes
await install.result();

// Another kernel imports it.
await using client = await new ExecutionClient(server).connect();
const result = await client.execute('import greeting\nprint(greeting.hello("kernel"))');
console.log(`Output: ${result.text}`); // Output: Hello, kernel!
