// Environment variables: for every kernel of the container, or for one execution.
//
//   npx tsx examples/typescript/07-environment-variables.ts
import { ExecutionClient, ExecutionContainer } from 'code-interpreter-client';

const tag = process.env.CODE_INTERPRETER_IMAGE ?? 'code-interpreter';
await using container = await new ExecutionContainer({
  tag,
  env: { API_KEY: 'secret-key-123', DEBUG: '1' }, // seen by every kernel and command inside
}).run();
await using client = await new ExecutionClient({
  host: container.host,
  port: container.executorPort,
  accessToken: container.accessToken,
}).connect();

const code = `
import os
print(f"Using API key: {os.environ['API_KEY']}")
if os.environ.get("DEBUG") == "1":
    print("Debug mode enabled")
`;
console.log((await client.execute(code)).text);

// For one execution only: the kernel's own value is back afterwards.
const once = await client.execute('import os; print(os.environ["DEBUG"])', { envVars: { DEBUG: '0' } });
const after = await client.execute('import os; print(os.environ["DEBUG"])');
console.log(`DEBUG for one execution: ${once.text}, afterwards: ${after.text}`); // 0, afterwards: 1
