/**
 * The smallest server that does the API's job for one kernel: `node:http`, @jupyterlab/services
 * and NDJSON out, with no framework, validation, logging, queue or error handling. Run as a
 * process of its own, it prices the hop itself, so that the API's own cost is what remains.
 * Usage: node --import tsx minimal-proxy.ts <jupyterUrl> <token>; prints the port once listening.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { KernelAPI, KernelConnection, type KernelMessage } from '@jupyterlab/services';
import { ServicesKernel } from './services-kernel.js';

// The library reports connection changes on the console; stdout carries the port.
console.log = console.info = console.debug = () => undefined;

const [url, token] = process.argv.slice(2);
if (!url || !token) throw new Error('usage: minimal-proxy.ts <jupyterUrl> <token>');
const settings = ServicesKernel.settings(url, token);
const kernel = new KernelConnection({
  model: await KernelAPI.startNew({ name: 'python3' }, settings),
  serverSettings: settings,
  handleComms: false,
});
await kernel.info;

const line = (event: unknown) => `${JSON.stringify(event)}\n`;
// No error handling, as said above: a failure is an unhandled rejection, which ends the process.
const server = createServer((request, response) => void answer(request, response));
async function answer(request: IncomingMessage, response: ServerResponse): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  const { code } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { code: string };
  response.writeHead(200, { 'content-type': 'application/x-ndjson' });
  const future = kernel.requestExecute({ code, silent: false, store_history: true, allow_stdin: false, stop_on_error: false }, true);
  future.onIOPub = (msg: KernelMessage.IIOPubMessage) => {
    const content = msg.content as Record<string, unknown>;
    if (msg.header.msg_type === 'execute_input')
      response.write(line({ type: 'number_of_executions', execution_count: content.execution_count }));
    else if (msg.header.msg_type === 'stream') response.write(line({ type: content.name, text: content.text, timestamp: msg.header.date }));
    else if (msg.header.msg_type === 'execute_result') {
      response.write(line({ type: 'result', is_main_result: true, text: (content.data as Record<string, string>)['text/plain'] ?? null }));
    }
  };
  await future.done;
  future.dispose();
  response.end(line({ type: 'end_of_execution' }));
}
server.listen(0, '127.0.0.1');
await once(server, 'listening');
process.stdout.write(`${(server.address() as { port: number }).port}\n`);
process.once('SIGTERM', () => {
  void KernelAPI.shutdownKernel(kernel.id, settings).finally(() => process.exit(0));
});
