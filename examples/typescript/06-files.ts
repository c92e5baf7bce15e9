// Files: move files and whole directories in and out of the container's workspace, and copy,
// list and delete them there. Paths in the container are relative to the workspace.
//
//   npx tsx examples/typescript/06-files.ts
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ExecutionContainer, ResourceClient } from 'code-interpreter-client';

const tag = process.env.CODE_INTERPRETER_IMAGE ?? 'code-interpreter';
await using container = await new ExecutionContainer({ tag }).run();
const files = new ResourceClient({ host: container.host, port: container.resourcePort, accessToken: container.accessToken });

const local = await mkdtemp(path.join(tmpdir(), 'files-example-'));
try {
  await writeFile(path.join(local, 'data.txt'), 'Hello from the host\n');
  await mkdir(path.join(local, 'project', 'src'), { recursive: true });
  await writeFile(path.join(local, 'project', 'README.md'), '# A project\n');
  await writeFile(path.join(local, 'project', 'src', 'main.py'), 'print("main")\n');

  // A single file, then a whole directory (sent as one tar stream).
  await files.uploadFile(path.join(local, 'data.txt'), 'uploads/data.txt');
  const uploaded = await files.uploadDirectory(path.join(local, 'project'), 'project');
  console.log(`Uploaded a directory: ${uploaded.entries} entries`);

  // Copy inside the container, and look.
  await files.copy('uploads/data.txt', 'backup/data.txt');
  console.log(`backup/: ${(await files.list('backup')).map((entry) => entry.name).join(', ')}`);

  // Download a file and a directory.
  await files.downloadFile('backup/data.txt', path.join(local, 'downloaded.txt'));
  console.log(`Downloaded file: ${(await readFile(path.join(local, 'downloaded.txt'), 'utf8')).trimEnd()}`);
  await files.downloadDirectory('project', path.join(local, 'project-copy'));
  console.log(`Downloaded directory: ${(await readdir(path.join(local, 'project-copy'), { recursive: true })).sort().join(', ')}`);

  // Delete.
  await files.delete('uploads/data.txt');
  console.log(`uploads/ after the delete: [${(await files.list('uploads')).map((entry) => entry.name).join(', ')}]`);
} finally {
  await rm(local, { recursive: true, force: true });
}
