// Without `await using`: run() and kill() by hand, connect() and disconnect() likewise.
//
//   npx tsx examples/typescript/08-manual-lifecycle.ts
import { ExecutionClient, ExecutionContainer } from 'code-interpreter-client';

const tag = process.env.CODE_INTERPRETER_IMAGE ?? 'code-interpreter';
const container = new ExecutionContainer({ tag });
await container.run();
try {
  console.log(`Container ${container.id!.slice(0, 12)} serves on ${container.host}:${container.executorPort}`);
  const client = new ExecutionClient({ host: container.host, port: container.executorPort, accessToken: container.accessToken });
  await client.connect();
  try {
    console.log(`Output: ${(await client.execute('print(2 ** 10)')).text}`); // Output: 1024
  } finally {
    await client.disconnect();
  }
} finally {
  await container.kill(); // the container is removed, not only stopped
}
console.log('Container removed');
