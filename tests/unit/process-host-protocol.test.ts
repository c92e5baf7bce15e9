import { describe, expect, it } from 'vitest';
import {
  FrameDecoder,
  FrameKind,
  MAX_FRAME_BYTES,
  ProtocolError,
  encodeControl,
  encodeFrame,
  parseHostEvent,
  parseHostRequest,
  utf8CompleteLength,
} from '../../server/process-host/protocol.js';

const json = (value: unknown) => Buffer.from(JSON.stringify(value));
const start = {
  op: 'start',
  id: 'p1',
  cmd: 'ls',
  args: ['-l'],
  envs: { A: 'b' },
  cwd: null,
  pty: null,
  stdin: true,
  timeout_ms: null,
};

describe('process host frames', () => {
  it('encodes length, kind and body', () => {
    const frame = encodeFrame(FrameKind.stdout, Buffer.from('hi'));
    expect([...frame]).toEqual([0, 0, 0, 3, 1, 0x68, 0x69]);
  });

  it('decodes frames cut at every byte, and several in one chunk', () => {
    const stream = Buffer.concat([
      encodeControl({ ev: 'started', pid: 42 }),
      encodeFrame(FrameKind.stderr, Buffer.from('oops')),
      encodeFrame(FrameKind.stdout, Buffer.alloc(0)),
    ]);
    const decoder = new FrameDecoder();
    const frames = [...stream].flatMap((byte) => decoder.push(Buffer.from([byte])));
    expect(frames.map((frame) => [frame.kind, frame.body.toString()])).toEqual([
      [FrameKind.control, '{"ev":"started","pid":42}'],
      [FrameKind.stderr, 'oops'],
      [FrameKind.stdout, ''],
    ]);
    expect(decoder.buffered).toBe(0);
    expect(new FrameDecoder().push(stream)).toHaveLength(3);
  });

  it('holds an incomplete frame and says so', () => {
    const decoder = new FrameDecoder();
    expect(decoder.push(encodeFrame(FrameKind.input, Buffer.from('abc')).subarray(0, 6))).toEqual([]);
    expect(decoder.buffered).toBe(6);
  });

  it('refuses a length above the limit before its body arrives', () => {
    const header = Buffer.alloc(5);
    header.writeUInt32BE(MAX_FRAME_BYTES + 1, 0);
    expect(() => new FrameDecoder().push(header)).toThrow(ProtocolError);
    header.writeUInt32BE(0, 0);
    expect(() => new FrameDecoder().push(header)).toThrow(ProtocolError);
  });

  it('refuses an unknown kind', () => {
    expect(() => new FrameDecoder().push(Buffer.from([0, 0, 0, 1, 9]))).toThrow(/kind 9/);
  });

  it('takes the largest frame and refuses to build a larger one', () => {
    const body = Buffer.alloc(MAX_FRAME_BYTES - 1, 7);
    const frames = new FrameDecoder().push(encodeFrame(FrameKind.stdout, body));
    expect(frames[0]!.body.length).toBe(MAX_FRAME_BYTES - 1);
    expect(() => encodeFrame(FrameKind.stdout, Buffer.alloc(MAX_FRAME_BYTES))).toThrow(ProtocolError);
  });
});

describe('process host control messages', () => {
  it('accepts the requests of the protocol', () => {
    expect(parseHostRequest(json(start))).toEqual(start);
    const withPty = { ...start, pty: { cols: 80, rows: 24 }, cwd: 'sub', timeout_ms: 1000, stdin: false };
    expect(parseHostRequest(json(withPty))).toEqual(withPty);
    expect(parseHostRequest(json({ op: 'signal', signal: 'SIGTERM' }))).toEqual({ op: 'signal', signal: 'SIGTERM' });
    expect(parseHostRequest(json({ op: 'resize', cols: 100, rows: 30 }))).toEqual({ op: 'resize', cols: 100, rows: 30 });
    expect(parseHostRequest(json({ op: 'close_stdin' }))).toEqual({ op: 'close_stdin' });
    expect(parseHostRequest(json({ op: 'ping' }))).toEqual({ op: 'ping' });
  });

  it.each([
    ['not JSON', Buffer.from('{')],
    ['an array', json([])],
    ['an unknown op', json({ op: 'exec' })],
    ['an empty cmd', json({ ...start, cmd: '' })],
    ['an empty id', json({ ...start, id: '' })],
    ['an id too long for an environment marker', json({ ...start, id: 'x'.repeat(201) })],
    ['a number in args', json({ ...start, args: [1] })],
    ['a number in envs', json({ ...start, envs: { A: 1 } })],
    ['a NUL in an argument', json({ ...start, args: ['a\0b'] })],
    ['a NUL in an env name', json({ ...start, envs: { 'A\0': 'b' } })],
    ['a missing stdin', json({ ...start, stdin: undefined })],
    ['a pty of size 0', json({ ...start, pty: { cols: 0, rows: 24 } })],
    ['a pty that is a number', json({ ...start, pty: 3 })],
    ['a negative timeout', json({ ...start, timeout_ms: -1 })],
    ['an unknown signal', json({ op: 'signal', signal: 'SIGSTOP' })],
    ['a fractional resize', json({ op: 'resize', cols: 1.5, rows: 2 })],
  ])('refuses %s', (_name, body) => {
    expect(() => parseHostRequest(body)).toThrow(ProtocolError);
  });

  it('accepts the events of the protocol', () => {
    expect(parseHostEvent(json({ ev: 'started', pid: 7 }))).toEqual({ ev: 'started', pid: 7 });
    expect(parseHostEvent(json({ ev: 'exit', exit_code: 3, signal: null }))).toEqual({ ev: 'exit', exit_code: 3, signal: null });
    expect(parseHostEvent(json({ ev: 'exit', exit_code: null, signal: 'SIGKILL', timed_out: true }))).toEqual({
      ev: 'exit',
      exit_code: null,
      signal: 'SIGKILL',
      timed_out: true,
    });
    expect(parseHostEvent(json({ ev: 'error', code: 'ENOENT', message: 'no such file' }))).toEqual({
      ev: 'error',
      code: 'ENOENT',
      message: 'no such file',
    });
    expect(parseHostEvent(json({ ev: 'pong', pid: 1 }))).toEqual({ ev: 'pong', pid: 1 });
  });

  it.each([
    ['a pid of 0', json({ ev: 'started', pid: 0 })],
    ['both an exit code and a signal', json({ ev: 'exit', exit_code: 0, signal: 'SIGKILL' })],
    ['neither', json({ ev: 'exit', exit_code: null, signal: null })],
    ['an exit code above 255', json({ ev: 'exit', exit_code: 256, signal: null })],
    ['a signal that is not a name', json({ ev: 'exit', exit_code: null, signal: '<script>' })],
    ['an unknown error code', json({ ev: 'error', code: 'EWHAT', message: '' })],
    ['an unknown event', json({ ev: 'stdout' })],
  ])('refuses an event with %s', (_name, body) => {
    expect(() => parseHostEvent(body)).toThrow(ProtocolError);
  });
});

describe('utf8CompleteLength', () => {
  it('holds back the start of a character cut at the end', () => {
    const euro = Buffer.from('a€', 'utf8'); // 61 e2 82 ac
    expect(utf8CompleteLength(euro)).toBe(4);
    expect(utf8CompleteLength(euro.subarray(0, 3))).toBe(1);
    expect(utf8CompleteLength(euro.subarray(0, 2))).toBe(1);
    const emoji = Buffer.from('😀', 'utf8'); // 4 bytes
    for (let cut = 1; cut < 4; cut++) expect(utf8CompleteLength(emoji.subarray(0, cut))).toBe(0);
    expect(utf8CompleteLength(emoji)).toBe(4);
  });

  it('passes bytes that are not UTF-8 as they are', () => {
    expect(utf8CompleteLength(Buffer.from([0x80, 0x80, 0x80, 0x80]))).toBe(4);
    expect(utf8CompleteLength(Buffer.from([0x61, 0xff]))).toBe(2);
    expect(utf8CompleteLength(Buffer.alloc(0))).toBe(0);
  });
});
