/**
 * A bare `node:http` file server: GET streams a file out, PUT streams the body into a file. Run
 * as a process of its own, it is the floor for the file API: the same bytes through Node's HTTP
 * stack and the same disk, without routing, validation, path checks or atomic replacement.
 * Usage: node --import tsx plain-file-server.ts <directory>; prints the port once listening.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';

const directory = process.argv[2];
if (!directory) throw new Error('usage: plain-file-server.ts <directory>');

const server = createServer((request, response) => {
  const file = path.join(directory, path.basename(decodeURIComponent(new URL(request.url ?? '/', 'http://x').pathname)));
  const work =
    request.method === 'PUT'
      ? pipeline(request, createWriteStream(file)).then(() => {
          response.writeHead(201, { 'content-type': 'application/json' }).end('{}');
        })
      : stat(file).then(({ size }) =>
          pipeline(createReadStream(file), response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size })),
        );
  work.catch((error: Error) => {
    if (!response.headersSent) response.writeHead(500).end(error.message);
    else response.destroy(error);
  });
});
server.listen(0, '127.0.0.1');
await once(server, 'listening');
process.stdout.write(`${(server.address() as { port: number }).port}\n`);
