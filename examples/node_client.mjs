#!/usr/bin/env node
// Runs code on a code-interpreter server and prints its stdout as it arrives (Node >= 20, no
// dependencies).
//
//   npm start                        # in the repository root, in another shell: the server
//   CODE_INTERPRETER_URL=http://localhost:49999 ACCESS_TOKEN=... node node_client.mjs 'print("hi")'
//   echo 'print("hi")' | node node_client.mjs
//
// stderr and errors go to stderr; PNG results (matplotlib figures, say) are saved as
// result-1.png, ... in OUTPUT_DIR (default: the current directory).
// Exit status: 0, 1 if the code raised an error, 2 if the request was refused.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { text } from 'node:stream/consumers';

const url = (process.env.CODE_INTERPRETER_URL ?? 'http://localhost:49999').replace(/\/+$/, '');
const token = process.env.ACCESS_TOKEN;
const outputDir = process.env.OUTPUT_DIR ?? '.';
const code = process.argv[2] ?? (await text(process.stdin));

const response = await fetch(`${url}/execute`, {
  method: 'POST',
  headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
  body: JSON.stringify({ code }),
});
if (response.status !== 200) {
  const error = await response.json(); // {statusCode, code, error, message}
  console.error(`${error.statusCode} ${error.code}: ${error.message}`);
  process.exit(2);
}

let failed = false;
let pngs = 0;
async function handle(event) {
  switch (event.type) {
    case 'stdout':
      process.stdout.write(event.text);
      break;
    case 'stderr':
      process.stderr.write(event.text);
      break;
    case 'result':
      if (event.png) {
        const name = path.join(outputDir, `result-${++pngs}.png`);
        await writeFile(name, Buffer.from(event.png, 'base64'));
        console.error(`[saved ${name}]`);
      } else if (event.is_main_result) {
        console.error(`[result] ${event.text}`);
      }
      break;
    case 'error':
      failed = true;
      console.error(`${event.name}: ${event.value}`);
      break;
  }
}

// POST /execute sends one JSON event per line (NDJSON) while the code runs: handle each line as
// soon as it is complete rather than waiting for the end of the body.
let buffered = '';
for await (const chunk of response.body.pipeThrough(new TextDecoderStream())) {
  buffered += chunk;
  let newline;
  while ((newline = buffered.indexOf('\n')) !== -1) {
    const line = buffered.slice(0, newline);
    buffered = buffered.slice(newline + 1);
    if (line.trim() !== '') await handle(JSON.parse(line));
  }
}
process.exitCode = failed ? 1 : 0;
