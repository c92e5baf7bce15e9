import { describe, expect, it } from 'vitest';
import { EventLog } from '../../server/execution/event-log.js';
import type { OutputEvent } from '../../server/execution/events.js';

describe('EventLog', () => {
  const texts = ['plain\n', 'café 🐍 日本\n', 'lone \ud800 surrogate', 'quote " and \\ backslash', `${'x'.repeat(100_000)}\n`];

  it('gives readers back every stream event exactly, from the line it keeps', () => {
    const log = new EventLog(64 * 1024 * 1024);
    const events: OutputEvent[] = [
      ...texts.map((text) => ({ type: 'stderr' as const, text, timestamp: 't' })),
      { type: 'result', is_main_result: true, text: 'é', html: null, markdown: null, svg: null, png: null, jpeg: null, pdf: null, latex: null, json: { a: [1] }, javascript: null },
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
