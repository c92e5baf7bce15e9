// A container on another machine: ExecutionContainer talks to the Docker Engine that DOCKER_HOST
// names, and the clients to the port published there.
//
//   DOCKER_HOST=tcp://192.0.2.10:2375 npx tsx examples/typescript/10-remote-docker-host.ts
//
// tcp://HOST:2376 with DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH for TLS, ssh://user@host too. The
// remote daemon must have the image. Without DOCKER_HOST this runs on the local daemon.
import { ExecutionClient, ExecutionContainer } from 'code-interpreter-client';

const tag = process.env.CODE_INTERPRETER_IMAGE ?? 'code-interpreter';
await using container = await new ExecutionContainer({ tag }).run();
console.log(`Docker: ${process.env.DOCKER_HOST ?? 'the local daemon'}; the server: ${container.host}:${container.executorPort}`);

await using client = await new ExecutionClient({
  host: container.host,
  port: container.executorPort,
  accessToken: container.accessToken,
}).connect();
console.log(`Output: ${(await client.execute('import platform; print(platform.node())')).text}`);
