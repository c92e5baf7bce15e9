// Network restrictions: an egress allow-list for the code in the container, replaced while it runs.
//
//   npx tsx examples/typescript/09-firewall.ts
//
// A container is restricted only if it starts with `allowedDomains` (here the empty list: nothing
// but DNS and loopback); initFirewall() then replaces the list as often as needed.
import { ExecutionClient, ExecutionContainer } from 'code-interpreter-client';

const tag = process.env.CODE_INTERPRETER_IMAGE ?? 'code-interpreter';
await using container = await new ExecutionContainer({ tag, allowedDomains: [] }).run();
await using client = await new ExecutionClient({
  host: container.host,
  port: container.executorPort,
  accessToken: container.accessToken,
}).connect();

// What the code sees when it fetches a page: the status, or the error.
const fetchFrom = (host: string) => `
import urllib.request, urllib.error
try:
    print(urllib.request.urlopen("http://${host}/", timeout=10).status)
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode().strip()[:100])
except Exception as e:
    print(type(e).__name__, str(e)[:100])
`;

console.log(`example.com before: ${(await client.execute(fetchFrom('example.com'))).text}`); // 403 egress to example.com is not allowed

await container.initFirewall(['example.com']);
// Allowed now: the page, or whatever the network says (there may be none).
console.log(`example.com after: ${(await client.execute(fetchFrom('example.com'))).text}`);
console.log(`example.org after: ${(await client.execute(fetchFrom('example.org'))).text}`); // 403 egress to example.org is not allowed
