import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ProcessConnection } from '../../server/process-host/process-connection.js';
import { encodeControl, encodeFrame, FrameDecoder, FrameKind, parseHostEvent, type HostEvent } from '../../server/process-host/protocol.js';
import type { EntryInfo, SandboxFiles } from '../../server/sandbox-files/types.js';

const ENTRY: EntryInfo = {
  name: 'f',
  type: 'file',
  path: '/f',
  size: 0,
  mode: 0o644,
  permissions: '-rw-r--r--',
  owner: 'u',
  group: 'u',
  modifiedMs: 0,
};

/**
 * The host's side of a write, with a file that takes its bytes slowly: the host must stop reading
 * the socket rather than hold what the API sends faster.
 */
describe('a file connection in the host', () => {
  let server: Server | undefined;
  let dir: string | undefined;
  afterEach(() => {
    server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function hostWith(files: Partial<SandboxFiles>): Promise<Socket> {
    dir = mkdtempSync(path.join(tmpdir(), 'file-connection-'));
    const socketPath = path.join(dir, 'host.sock');
    server = createServer(
      (socket) =>
        new ProcessConnection(socket, {
          workspace: dir!,
          baseEnv: {},
          memoryLimit: null,
          files: files as SandboxFiles,
          log: () => undefined,
        }),
    );
    server.listen(socketPath);
    await once(server, 'listening');
    const client = connect(socketPath);
    await once(client, 'connect');
    return client;
  }

  it('stops reading a write that the file does not take, and answers once it did', async () => {
    let taken = 0;
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const client = await hostWith({
      async write(_path, source) {
        for await (const chunk of source) {
          taken += chunk.length;
          // The disk is stuck after the first chunk until the test lets it go.
          if (taken === chunk.length) await gate;
        }
        return ENTRY;
      },
    });
    const events: HostEvent[] = [];
    const decoder = new FrameDecoder();
    client.on('data', (chunk: Buffer) => {
      for (const frame of decoder.push(chunk)) events.push(parseHostEvent(frame.body));
    });
    client.write(encodeControl({ op: 'fs', call: 'write', path: '/f' }));
    const piece = Buffer.alloc(64 * 1024, 1);
    const total = 64 * 1024 * 1024;
    let sent = 0;
    // Send without waiting for drains: what the host does not read stays in this socket.
    while (sent < total) {
      client.write(encodeFrame(FrameKind.data, piece));
      sent += piece.length;
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    // The host holds about its high-water mark (1 MiB) plus a read or two; the socket buffers
    // between hold a few MiB more. The rest waits in the sender.
    expect(client.writableLength).toBeGreaterThan(total - 16 * 1024 * 1024);
    expect(taken).toBe(piece.length);

    release();
    client.write(encodeControl({ op: 'fs_end' }));
    await once(client, 'close');
    expect(taken).toBe(total);
    expect(events).toEqual([{ ev: 'fs_result', entry: ENTRY }]);
  }, 30_000);
});
