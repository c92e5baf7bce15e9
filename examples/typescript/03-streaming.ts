// Streaming: get output while the code still runs, then the whole result.
//
//   npx tsx examples/typescript/03-streaming.ts
import { ExecutionClient, ExecutionContainer } from 'code-interpreter-client';

const tag = process.env.CODE_INTERPRETER_IMAGE ?? 'code-interpreter';
await using container = await new ExecutionContainer({ tag }).run();
await using client = await new ExecutionClient({
  host: container.host,
  port: container.executorPort,
  accessToken: container.accessToken,
}).connect();

const code = `
import time
for i in range(5):
    print(f"Processing step {i}")
    time.sleep(1)
`;

const started = Date.now();
const execution = client.submit(code);
for await (const chunk of execution.stream()) {
  // One line a second, as the code prints it.
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  console.log(`Received output after ${seconds} s: ${chunk.trimEnd()}`);
}

// Everything at once (the execution has ended: this returns at once).
const result = await execution.result();
console.log(`Aggregated output:\n${result.text}`);
