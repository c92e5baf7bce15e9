// What the server adds: answers to input(), other languages, interrupting an execution, and
// reading an execution again by its id.
//
//   npx tsx examples/typescript/11-more.ts
import { ExecutionClient, ExecutionContainer, ExecutionError } from 'code-interpreter-client';

const tag = process.env.CODE_INTERPRETER_IMAGE ?? 'code-interpreter';
await using container = await new ExecutionContainer({ tag }).run();
const server = { host: container.host, port: container.executorPort, accessToken: container.accessToken };
await using client = await new ExecutionClient(server).connect();

// input() and getpass() are answered by onInput, which is given the prompt.
const greeted = await client.execute('name = input("Your name? ")\nprint(f"Hello, {name}!")', {
  onInput: ({ prompt }) => {
    console.log(`Asked: ${prompt}`); // Asked: Your name?
    return 'Ada';
  },
});
console.log(`Answered input: ${greeted.text}`); // Answered input: Hello, Ada!

// Kernels of R, JavaScript (Deno) and TypeScript, beside Python.
await using r = await new ExecutionClient({ ...server, language: 'r' }).connect();
console.log(`R: ${(await r.execute('cat(sum(1:10))')).text}`); // R: 55

// Interrupt one execution; the kernel keeps its state.
const long = client.submit('import time\nfor i in range(60):\n    print(i, flush=True)\n    time.sleep(1)');
for await (const chunk of long.stream()) {
  if (chunk.includes('2')) break;
}
await long.interrupt();
try {
  await long.result();
} catch (error) {
  if (!(error instanceof ExecutionError)) throw error;
  console.log(`Interrupted: ${error.name}`); // Interrupted: KeyboardInterrupt
}

// Every execution has an id; its events can be read again (after a lost connection, say).
const first = client.submit('print("once")');
await first.result();
const again = await client.attach(first.id!).result();
console.log(`Read again by id: ${again.text}`); // Read again by id: once
