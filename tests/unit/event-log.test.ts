import { ServerConnection, type KernelMessage } from '@jupyterlab/services';
import { describe, expect, it } from 'vitest';
import { EventLog } from '../../server/executions/event-log.js';
import type { OutputEvent } from '../../server/runs/events.js';
import { toOutputEvent } from '../helpers/kernel-messages.js';
import { kernelMessageSerializer } from '../../server/jupyter/wire.js';

/** A stream message as the server decodes it from the kernel's v1 frame (see wire.test.ts). */
function decodedStream(text: string): KernelMessage.IIOPubMessage {
  const header = { msg_id: 'm', msg_type: 'stream', username: 'u', session: 's', date: '2026-11-22T00:00:00.000000Z', version: '5.3' };
  const parts = ['iopub', JSON.stringify(header), '{}', '{}', `{"name": "stdout", "text": ${JSON.stringify(text)}}`].map((part) =>
    Buffer.from(part),
  );
  const offsets = [8 * (parts.length + 2)];
  for (const part of parts) offsets.push(offsets.at(-1)! + part.length);
  const frame = Buffer.alloc(offsets.at(-1)!);
  frame.writeBigUInt64LE(BigInt(offsets.length), 0);
  offsets.forEach((offset, i) => frame.writeBigUInt64LE(BigInt(offset), 8 * (i + 1)));
  parts.forEach((part, i) => part.copy(frame, offsets[i]));
  const serializer = kernelMessageSerializer(
    ServerConnection.makeSettings({ baseUrl: 'http://localhost/', wsUrl: 'ws://localhost/' }).serializer,
  );
  return serializer.deserialize(
    frame.buffer.slice(frame.byteOffset, frame.byteOffset + frame.length),
    'v1.kernel.websocket.jupyter.org',
  ) as KernelMessage.IIOPubMessage;
}

describe('EventLog', () => {
  const texts = ['plain\n', 'café 🐍 日本\n', 'lone \ud800 surrogate', 'quote " and \\ backslash', `${'x'.repeat(100_000)}\n`];

  it('gives readers back every stream event exactly, from the line it keeps', () => {
    const log = new EventLog(64 * 1024 * 1024);
    const events: OutputEvent[] = [
      ...texts.map((text) => ({ type: 'stderr' as const, text, timestamp: 't' })),
      ...texts.slice(0, -1).map((text) => toOutputEvent(decodedStream(text))!),
      {
        type: 'result',
        is_main_result: true,
        text: 'é',
        html: null,
        markdown: null,
        svg: null,
        png: null,
        jpeg: null,
        pdf: null,
        latex: null,
        json: { a: [1] },
        javascript: null,
      },
      { type: 'end_of_execution' },
    ];
    for (const event of events) log.append(event);
    events.forEach((event, index) => {
      const entry = log.at(index)!;
      expect(entry.type).toBe(event.type);
      expect(entry.event).toEqual(event);
      expect(JSON.parse(entry.line.toString('utf8'))).toEqual(event);
    });
  });

  it('counts the bytes of the lines against its limit, and drops the oldest first', () => {
    const log = new EventLog(3.5 * 1024 * 1024);
    // 512 Ki characters, 1 MiB of UTF-8 each: three lines fit, the two oldest go.
    for (let i = 0; i < 5; i++) log.append({ type: 'stdout', text: 'é'.repeat(512 * 1024), timestamp: 't' });
    expect(log.firstIndex).toBe(2);
    expect(log.bufferedBytes).toBeLessThanOrEqual(3.5 * 1024 * 1024);
    expect(log.bufferedBytes).toBeGreaterThan(3 * 1024 * 1024);
  });
});
