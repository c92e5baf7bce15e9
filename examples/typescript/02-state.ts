// Stateful execution: executions of one client share its kernel's state; another client has a
// kernel of its own.
//
//   npx tsx examples/typescript/02-state.ts
import { ExecutionClient, ExecutionContainer, ExecutionError } from 'code-interpreter-client';

const tag = process.env.CODE_INTERPRETER_IMAGE ?? 'code-interpreter';
await using container = await new ExecutionContainer({ tag }).run();
const server = { host: container.host, port: container.executorPort, accessToken: container.accessToken };

await using first = await new ExecutionClient(server).connect();
await first.execute('x = 1');
console.log(`x in the first kernel: ${(await first.execute('print(x + 1)')).text}`); // 2

await using second = await new ExecutionClient(server).connect();
try {
  await second.execute('print(x)');
} catch (error) {
  if (!(error instanceof ExecutionError)) throw error;
  // Kernels share no memory (they do share the workspace's files).
  console.log(`x in the second kernel: ${error.name}: ${error.value}`); // NameError: name 'x' is not defined
}
