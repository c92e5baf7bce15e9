import type { KernelMessage } from '@jupyterlab/services';
import { describe, expect, it } from 'vitest';
import { JupyterUnavailableError } from '../../server/errors.js';
import { serializeEvent, stripOuterQuotes, textBytes, toResultEvent } from '../../server/runs/events.js';
import { toOutputEvent } from '../helpers/kernel-messages.js';
import { KernelLostError, toFailureEvent } from '../../server/runs/failures.js';

function message(msgType: string, content: Record<string, unknown>, date = '2024-01-01T00:00:00.000Z'): KernelMessage.IIOPubMessage {
  return {
    header: { msg_id: 'm', msg_type: msgType, session: 's', username: 'u', date, version: '5.3' },
    parent_header: {},
    metadata: {},
    content,
    channel: 'iopub',
  } as unknown as KernelMessage.IIOPubMessage;
}

describe('toOutputEvent', () => {
  it('maps execute_input to the execution counter', () => {
    expect(toOutputEvent(message('execute_input', { code: 'x', execution_count: 7 }))).toEqual({
      type: 'number_of_executions',
      execution_count: 7,
    });
  });

  it('maps stream messages to stdout and stderr with the kernel timestamp', () => {
    expect(toOutputEvent(message('stream', { name: 'stdout', text: 'hi\n' }))).toEqual({
      type: 'stdout',
      text: 'hi\n',
      timestamp: '2024-01-01T00:00:00.000Z',
    });
    expect(toOutputEvent(message('stream', { name: 'stderr', text: 'no' }))).toMatchObject({ type: 'stderr', text: 'no' });
  });

  it('marks execute_result as the main result and display_data as not', () => {
    expect(toOutputEvent(message('execute_result', { data: { 'text/plain': '42' }, execution_count: 1, metadata: {} }))).toMatchObject({
      type: 'result',
      is_main_result: true,
      text: '42',
    });
    expect(toOutputEvent(message('display_data', { data: { 'image/png': 'iVBOR' }, metadata: {} }))).toMatchObject({
      type: 'result',
      is_main_result: false,
      png: 'iVBOR',
      text: null,
    });
  });

  it('joins the traceback into one string', () => {
    expect(toOutputEvent(message('error', { ename: 'ValueError', evalue: 'bad', traceback: ['line 1', 'line 2'] }))).toEqual({
      type: 'error',
      name: 'ValueError',
      value: 'bad',
      traceback: 'line 1\nline 2',
    });
  });

  it('ignores status and comm messages', () => {
    expect(toOutputEvent(message('status', { execution_state: 'idle' }))).toBeUndefined();
    expect(toOutputEvent(message('comm_open', { comm_id: 'c', target_name: 't', data: {} }))).toBeUndefined();
  });
});

describe('toResultEvent', () => {
  it('fills every known field and puts other MIME types under extra', () => {
    const event = toResultEvent(
      {
        'text/plain': "'abc'",
        'text/html': '<b>x</b>',
        'text/markdown': '*x*',
        'image/svg+xml': '<svg/>',
        'image/jpeg': '/9j/',
        'application/pdf': 'JVBER',
        'text/latex': '$x$',
        'application/json': { a: [1, 2] },
        'application/javascript': 'alert(1)',
        'application/vnd.plotly.v1+json': { data: [] },
      },
      true,
    );
    expect(event).toEqual({
      type: 'result',
      is_main_result: true,
      text: 'abc',
      html: '<b>x</b>',
      markdown: '*x*',
      svg: '<svg/>',
      png: null,
      jpeg: '/9j/',
      pdf: 'JVBER',
      latex: '$x$',
      json: { a: [1, 2] },
      javascript: 'alert(1)',
      extra: { 'application/vnd.plotly.v1+json': { data: [] } },
    });
  });

  it('joins multiline strings given as arrays of lines', () => {
    expect(toResultEvent({ 'text/html': ['<p>', 'x', '</p>'] }, false).html).toBe('<p>x</p>');
  });

  it('has no extra field when every MIME type has its own', () => {
    expect(toResultEvent({ 'text/plain': '1' }, true)).not.toHaveProperty('extra');
  });

  it("gives a figure's chart its own field, beside the PNG, and no chart field to other results", () => {
    const chart = { type: 'pie', title: 'Votes', elements: [{ label: 'yes', angle: 324, radius: 1 }] };
    const event = toResultEvent({ 'image/png': 'iVBOR', 'text/plain': '<Figure>', 'e2b/chart': chart }, false);
    expect(event).toMatchObject({ png: 'iVBOR', chart });
    expect(event).not.toHaveProperty('extra');
    expect(toResultEvent({ 'image/png': 'iVBOR' }, false)).not.toHaveProperty('chart');
  });
});

describe('stripOuterQuotes', () => {
  it.each([
    ["'abc'", 'abc'],
    ['"abc"', 'abc'],
    ["'it''s'", "it''s"],
    ['\'a"', '\'a"'],
    ["'", "'"],
    ["''", ''],
    ['42', '42'],
    ["['a', 'b']", "['a', 'b']"],
  ])('%s → %s', (input, expected) => {
    expect(stripOuterQuotes(input)).toBe(expected);
  });
});

describe('serializeEvent', () => {
  it('writes one JSON object per line, escaping newlines inside strings', () => {
    const line = serializeEvent({ type: 'stdout', text: 'a\nb', timestamp: 't' }).toString('utf8');
    expect(line.endsWith('\n')).toBe(true);
    expect(line.slice(0, -1)).not.toContain('\n');
    expect(JSON.parse(line)).toEqual({ type: 'stdout', text: 'a\nb', timestamp: 't' });
  });

  it('writes UTF-8, whatever the characters: accents, emoji, a lone surrogate', () => {
    const text = 'café 🐍 \ud800 end';
    const line = serializeEvent({ type: 'stdout', text, timestamp: 't' });
    expect(line).toEqual(Buffer.from(`${JSON.stringify({ type: 'stdout', text, timestamp: 't' })}\n`, 'utf8'));
    expect(JSON.parse(line.toString('utf8'))).toMatchObject({ text });
  });
});

describe('textBytes', () => {
  it('is the UTF-8 size of the text, kept where no serializer or comparison sees it', () => {
    const event = { type: 'stdout' as const, text: 'é🐍x\ud800', timestamp: 't' };
    expect(textBytes(event)).toBe(2 + 4 + 1 + 3);
    expect(event).toEqual({ type: 'stdout', text: 'é🐍x\ud800', timestamp: 't' });
    expect(serializeEvent(event).toString()).toBe('{"type":"stdout","text":"é🐍x\\ud800","timestamp":"t"}\n');
  });
});

describe('toFailureEvent', () => {
  it('names failures like the events the server reports itself', () => {
    expect(toFailureEvent(new JupyterUnavailableError('connection refused'))).toEqual({
      type: 'error',
      name: 'JupyterUnavailable',
      value: 'Jupyter Server is unavailable: connection refused',
      traceback: '',
    });
    expect(toFailureEvent(new KernelLostError('ContextDeleted', 'The context was deleted'))).toMatchObject({ name: 'ContextDeleted' });
    // Anything else says nothing of the server's internals.
    const internal = Object.assign(new TypeError('The "path" argument must be of type string'), { code: 'ERR_INVALID_ARG_TYPE' });
    expect(toFailureEvent(internal)).toEqual({ type: 'error', name: 'ExecutionError', value: 'The execution failed', traceback: '' });
  });
});
