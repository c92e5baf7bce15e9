import { describe, expect, it } from 'vitest';
import { EventLog } from '../../server/executions/event-log.js';
import type { ManagedProcess } from '../../server/processes/process.js';
import type { OutputEvent } from '../../server/runs/events.js';
import { CommandOutput, readOutput } from '../../server/transports/mcp/command-tools.js';

/** How the MCP command tools turn a process's events into bounded answers. */
const at = '2026-01-01T00:00:00.000Z';
const out = (text: string): OutputEvent => ({ type: 'stdout', text, timestamp: at });
const err = (text: string): OutputEvent => ({ type: 'stderr', text, timestamp: at });
const texts = (result: { content: Array<{ type: string; text?: string }> }) => result.content.map((block) => block.text);

describe('CommandOutput (run_command)', () => {
  it('answers stdout, stderr and the exit code; only exit code 0 is not an error', () => {
    const output = new CommandOutput(100);
    for (const event of [out('a\n'), err('b\n'), out('c\n')]) output.add(event);
    output.add({ type: 'exit', exit_code: 0, signal: null, status: 'exit status 0' });
    const result = output.toResult('(all of it)');
    expect(texts(result)).toEqual(['a\nc\n', '[stderr]\nb\n', '[exit code 0]']);
    expect(result.isError).toBeUndefined();

    const failed = new CommandOutput(100);
    failed.add({ type: 'exit', exit_code: 1, signal: null, status: 'exit status 1' });
    expect(failed.toResult('').isError).toBe(true);
  });

  it('says a command was killed at its timeout', () => {
    const output = new CommandOutput(100);
    output.add({ type: 'exit', exit_code: null, signal: 'SIGKILL', status: 'signal: killed' });
    output.add({ type: 'error', name: 'TimeoutError', value: 'too long', traceback: '' });
    const result = output.toResult('');
    expect(texts(result)).toEqual(['[killed by SIGKILL]\nTimeoutError: too long']);
    expect(result.isError).toBe(true);
  });

  it('keeps the beginning and the end of a long output, and says where the rest is', () => {
    const output = new CommandOutput(20);
    for (let i = 0; i < 100; i++) output.add(out(`line ${i}\n`));
    output.add({ type: 'exit', exit_code: 0, signal: null, status: 'exit status 0' });
    const [stdout] = texts(output.toResult('GET /processes/x/events'));
    expect(stdout).toMatch(/^line 0\n/);
    expect(stdout).toMatch(/characters of stdout cut here .*GET \/processes\/x\/events/);
    expect(stdout!.endsWith('line 99\n')).toBe(true);
  });
});

describe('readOutput (read_command_output)', () => {
  const processWith = (events: OutputEvent[], options: { running: boolean; bufferBytes?: number }) => {
    const log = new EventLog(options.bufferBytes ?? 1 << 20);
    log.append({ type: 'process_started', process_id: 'p', pid: 42 });
    for (const event of events) log.append(event);
    return {
      log,
      isRunning: options.running,
      pid: 42,
      info: { exit_code: options.running ? null : 2, signal: null },
    } as unknown as ManagedProcess;
  };

  it('reads whole chunks from an index within the bound, and names the index to go on from', () => {
    const process = processWith([out('x'.repeat(60)), err('oops\n'), out('y'.repeat(60))], { running: true });
    expect(texts(readOutput(process, 0, 100))).toEqual([`${'x'.repeat(60)}\n[stderr] oops\n[running (pid 42); read on with from 3]`]);
    expect(texts(readOutput(process, 3, 100))).toEqual([`${'y'.repeat(60)}\n[running (pid 42); read on with from 4]`]);
    expect(texts(readOutput(process, 4, 100))).toEqual(['(no new output)\n[running (pid 42); read on with from 4]']);
  });

  it('cuts a chunk longer than the bound on its own, and says when everything was read', () => {
    const process = processWith([out('z'.repeat(150)), out('end\n')], { running: false });
    expect(texts(readOutput(process, 1, 100))).toEqual([
      `${'z'.repeat(100)}\n[... 50 characters of one chunk cut]\n[ended: exit code 2; more output: read on with from 2]`,
    ]);
    expect(texts(readOutput(process, 2, 100))).toEqual(['end\n[ended: exit code 2; all output read]']);
  });

  it('says how many chunks left the buffer before they were read', () => {
    const process = processWith([out('a'.repeat(200)), out('b'.repeat(200)), out('c\n')], { running: true, bufferBytes: 300 });
    const [answer] = texts(readOutput(process, 0, 1000));
    expect(answer).toMatch(/^\[3 earlier output chunks left the server's buffer and are lost\]c\n/);
  });
});
