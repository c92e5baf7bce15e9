// Basic usage: start a container of the image, create a kernel in it, run code, and clean up.
//
//   npx tsx examples/typescript/01-basic-usage.ts
//
// The image is `code-interpreter` (`docker build -t code-interpreter .` in the repository);
// CODE_INTERPRETER_IMAGE names another.
import { ExecutionClient, ExecutionContainer, TimeoutError } from 'code-interpreter-client';

const tag = process.env.CODE_INTERPRETER_IMAGE ?? 'code-interpreter';

// The container is created and started here, and removed when the block ends, however it ends.
await using container = await new ExecutionContainer({ tag }).run();

// A kernel (a context on the server) for this client, deleted when the block ends.
await using client = await new ExecutionClient({
  host: container.host,
  port: container.executorPort,
  accessToken: container.accessToken,
}).connect();

const result = await client.execute('print("Hello, world!")');
console.log(`Output: ${result.text}`); // Output: Hello, world!

// `timeout` is in seconds (default 120): the server interrupts the code, the call throws.
try {
  await client.execute('import time; time.sleep(30)', { timeout: 1 });
} catch (error) {
  if (!(error instanceof TimeoutError)) throw error;
  console.log(`Timed out: ${error.message}`);
}
// The kernel is still there, with its state.
console.log(`Still running: ${(await client.execute('print(1 + 1)')).text}`); // Still running: 2
