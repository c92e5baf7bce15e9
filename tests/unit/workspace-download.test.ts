import { describe, expect, it } from 'vitest';
import { lastModified, parseRange, planDownload } from '../../server/workspace/download.js';

const file = { size: 1000, mtimeMs: Date.UTC(2024, 0, 2, 3, 4, 5, 678), etag: '"abc-1"' };

describe('parseRange', () => {
  it.each([
    ['bytes=0-99', { start: 0, end: 99 }],
    ['bytes=100-', { start: 100, end: 999 }],
    ['bytes=-100', { start: 900, end: 999 }],
    ['bytes=-5000', { start: 0, end: 999 }],
    ['bytes=990-5000', { start: 990, end: 999 }],
    ['bytes=0-99999999999999999999999', { start: 0, end: 999 }],
    ['bytes=999-999', { start: 999, end: 999 }],
    ['Bytes = 5 - 9', { start: 5, end: 9 }],
  ])('%s is %j', (header, expected) => {
    expect(parseRange(header, file.size)).toEqual(expected);
  });

  it.each(['bytes=1000-', 'bytes=5000-6000', 'bytes=-0'])('%s cannot be satisfied', (header) => {
    expect(parseRange(header, file.size)).toBe('unsatisfiable');
  });

  it('cannot satisfy any range of an empty file', () => {
    expect(parseRange('bytes=0-', 0)).toBe('unsatisfiable');
    expect(parseRange('bytes=-1', 0)).toBe('unsatisfiable');
  });

  it.each(['items=0-1', 'bytes=5-1', 'bytes=-', 'bytes=a-b', 'bytes=0-1,5-9', 'bytes 0-1', ''])('ignores %j (whole file)', (header) => {
    expect(parseRange(header, file.size)).toBeUndefined();
  });
});

describe('planDownload', () => {
  it('sends the whole file without conditions', () => {
    expect(planDownload({}, file)).toEqual({ status: 200 });
  });

  it('answers 304 to a matching If-None-Match, weak or in a list, or *', () => {
    for (const ifNoneMatch of ['"abc-1"', 'W/"abc-1"', '"x", "abc-1"', '*']) {
      expect(planDownload({ ifNoneMatch }, file)).toEqual({ status: 304 });
    }
    expect(planDownload({ ifNoneMatch: '"abc-2"' }, file)).toEqual({ status: 200 });
  });

  it('answers 304 to If-Modified-Since at or after the mtime, to the second', () => {
    expect(planDownload({ ifModifiedSince: lastModified(file.mtimeMs) }, file)).toEqual({ status: 304 });
    expect(planDownload({ ifModifiedSince: new Date(file.mtimeMs + 60_000).toUTCString() }, file)).toEqual({ status: 304 });
    expect(planDownload({ ifModifiedSince: new Date(file.mtimeMs - 60_000).toUTCString() }, file)).toEqual({ status: 200 });
    expect(planDownload({ ifModifiedSince: 'not a date' }, file)).toEqual({ status: 200 });
  });

  it('lets If-None-Match win over If-Modified-Since', () => {
    expect(planDownload({ ifNoneMatch: '"other"', ifModifiedSince: lastModified(file.mtimeMs) }, file)).toEqual({ status: 200 });
  });

  it('serves a range, or 416', () => {
    expect(planDownload({ range: 'bytes=10-19' }, file)).toEqual({ status: 206, start: 10, end: 19 });
    expect(planDownload({ range: 'bytes=2000-' }, file)).toEqual({ status: 416 });
  });

  it('resumes only the same file under If-Range, and sends it whole otherwise', () => {
    expect(planDownload({ range: 'bytes=10-', ifRange: '"abc-1"' }, file)).toEqual({ status: 206, start: 10, end: 999 });
    expect(planDownload({ range: 'bytes=10-', ifRange: lastModified(file.mtimeMs) }, file)).toEqual({ status: 206, start: 10, end: 999 });
    expect(planDownload({ range: 'bytes=10-', ifRange: '"abc-0"' }, file)).toEqual({ status: 200 });
    // A weak tag never validates a range.
    expect(planDownload({ range: 'bytes=10-', ifRange: 'W/"abc-1"' }, file)).toEqual({ status: 200 });
    expect(planDownload({ range: 'bytes=10-', ifRange: new Date(0).toUTCString() }, file)).toEqual({ status: 200 });
  });

  it('formats Last-Modified as an HTTP date in whole seconds', () => {
    expect(lastModified(file.mtimeMs)).toBe('Tue, 02 Jan 2024 03:04:05 GMT');
  });
});
