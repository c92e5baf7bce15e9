import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../server/config.js';
import { toResultEvent } from '../../server/runs/events.js';
import { BoundedText, ExecutionOutput, MAX_RESULT_BLOCKS, resultContent, stripAnsi } from '../../server/transports/mcp/output.js';

const marker = (cut: number) => `[${cut} cut]`;

describe('BoundedText', () => {
  it('keeps everything up to the limit', () => {
    const text = new BoundedText(10);
    text.append('0123');
    text.append('456789');
    expect(text.render(marker)).toBe('0123456789');
    expect(text.cut).toBe(0);
  });

  it('keeps the first and last halves beyond it, whatever the pieces, and counts the middle', () => {
    const pieces = ['ab', 'cdefgh', 'i', 'jklmnopqrstuvwx', 'yz'];
    const text = new BoundedText(10);
    for (const piece of pieces) text.append(piece);
    expect(text.render(marker)).toBe('abcde[16 cut]vwxyz');
    expect(text.length).toBe(26);
  });

  it('handles an odd limit', () => {
    const text = new BoundedText(5);
    text.append('abcdefghij');
    expect(text.render(marker)).toBe('abc[5 cut]ij');
  });
});

describe('resultContent', () => {
  it('gives PNG and JPEG as images', () => {
    expect(resultContent(toResultEvent({ 'image/png': 'iVBOR', 'text/plain': '<Figure size 640x480 with 1 Axes>' }, false), 100)).toEqual({
      type: 'image',
      data: 'iVBOR',
      mimeType: 'image/png',
    });
    expect(resultContent(toResultEvent({ 'image/jpeg': '/9j/' }, false), 100)).toMatchObject({ type: 'image', mimeType: 'image/jpeg' });
  });

  it('gives SVG and HTML as text, and plain text before HTML unless it is a default repr', () => {
    expect(resultContent(toResultEvent({ 'image/svg+xml': '<svg/>', 'text/plain': '<Figure size 1x1>' }, false), 100)).toEqual({
      type: 'text',
      text: '<svg/>',
    });
    expect(
      resultContent(toResultEvent({ 'text/html': '<b>x</b>', 'text/plain': '<IPython.core.display.HTML object>' }, false), 100),
    ).toEqual({
      type: 'text',
      text: '<b>x</b>',
    });
    expect(resultContent(toResultEvent({ 'text/html': '<table/>', 'text/plain': '   a\n0  1' }, true), 100)).toEqual({
      type: 'text',
      text: '   a\n0  1',
    });
  });

  it('cuts a long text result', () => {
    const content = resultContent(toResultEvent({ 'text/plain': 'x'.repeat(1000) }, true), 100) as { text: string };
    expect(content.text).toMatch(/^x{50}\n\[\.\.\. 900 characters cut \.\.\.\]\nx{50}$/);
  });
});

describe('ExecutionOutput', () => {
  it('orders stdout, stderr, results and errors, and marks errors isError', () => {
    const output = new ExecutionOutput({ maxTextChars: 1000 });
    output.add({ type: 'number_of_executions', execution_count: 3 });
    output.add({ type: 'stdout', text: 'a', timestamp: '' });
    output.add(toResultEvent({ 'text/plain': '1' }, true));
    output.add({ type: 'stderr', text: 'w', timestamp: '' });
    output.add({ type: 'stdout', text: 'b\n', timestamp: '' });
    output.add({ type: 'error', name: 'ValueError', value: 'bad', traceback: '\x1b[0;31mValueError\x1b[0m: bad' });
    output.add({ type: 'end_of_execution' });
    expect(output.toResult('see elsewhere')).toEqual({
      content: [
        { type: 'text', text: 'ab\n' },
        { type: 'text', text: '[stderr]\nw' },
        { type: 'text', text: '1' },
        { type: 'text', text: 'ValueError: bad\nValueError: bad' },
      ],
      isError: true,
    });
  });

  it('says where the full output is when it cut some, and reports what the server dropped', () => {
    const output = new ExecutionOutput({ maxTextChars: 100 });
    output.add({ type: 'stdout', text: 'y'.repeat(250), timestamp: '' });
    output.add({ type: 'output_truncated', stream_bytes_dropped: 5000, limit_bytes: 1024 });
    const [stdout, dropped] = output.toResult('GET /executions/e1/events').content as Array<{ text: string }>;
    expect(stdout!.text).toContain('150 characters of stdout cut here (the answer keeps 100). GET /executions/e1/events');
    expect(dropped!.text).toMatch(/5,000 bytes .* limit of 1,024 bytes/);
  });

  it('bounds the number of results', () => {
    const output = new ExecutionOutput({ maxTextChars: 100 });
    for (let i = 0; i < MAX_RESULT_BLOCKS + 5; i++) output.add(toResultEvent({ 'image/png': 'AAAA' }, false));
    const { content } = output.toResult('elsewhere');
    expect(content.filter((block) => block.type === 'image')).toHaveLength(MAX_RESULT_BLOCKS);
    expect(content.at(-1)).toMatchObject({ type: 'text', text: expect.stringMatching(/^\[5 more results/) });
  });

  it('says so when there is no output at all', () => {
    expect(new ExecutionOutput({ maxTextChars: 100 }).toResult('')).toEqual({ content: [{ type: 'text', text: '(no output)' }] });
  });
});

describe('stripAnsi', () => {
  it("removes IPython's colour codes", () => {
    expect(stripAnsi('\x1b[1;31mZeroDivisionError\x1b[0m: division by zero')).toBe('ZeroDivisionError: division by zero');
  });
});

describe('MCP settings', () => {
  it('has the documented defaults', () => {
    expect(loadConfig({})).toMatchObject({
      mcp: { sessionIdleMs: 30 * 60 * 1000, maxSessions: 100, maxTextChars: 20_000, maxFileBytes: 2 ** 20 },
    });
  });

  it('reads and checks them', () => {
    expect(loadConfig({ MCP_SESSION_IDLE: '90', MCP_MAX_TEXT: '5000', MCP_MAX_FILE_BYTES: '4MiB', MCP_MAX_SESSIONS: '8' })).toMatchObject({
      mcp: { sessionIdleMs: 90_000, maxSessions: 8, maxTextChars: 5000, maxFileBytes: 4 * 2 ** 20 },
    });
    expect(() => loadConfig({ MCP_SESSION_IDLE: 'soon' })).toThrow(/MCP_SESSION_IDLE/);
    expect(() => loadConfig({ MCP_MAX_TEXT: '10' })).toThrow(/MCP_MAX_TEXT/);
    expect(() => loadConfig({ MCP_MAX_SESSIONS: '0' })).toThrow(/MCP_MAX_SESSIONS/);
    expect(() => loadConfig({ MCP_MAX_FILE_BYTES: 'big' })).toThrow(/MCP_MAX_FILE_BYTES/);
  });
});
