/**
 * Splits a stream of bytes into NDJSON values, one per line, as the lines arrive. Blank lines are
 * skipped; a stream that ends inside a line, or a line longer than `maxLineBytes`, throws.
 */
export async function* ndjson<T = unknown>(chunks: AsyncIterable<Uint8Array>, maxLineBytes = 256 * 1024 * 1024): AsyncGenerator<T> {
  const decoder = new TextDecoder();
  let buffered = '';
  for await (const chunk of chunks) {
    buffered += decoder.decode(chunk, { stream: true });
    let start = 0;
    let newline: number;
    while ((newline = buffered.indexOf('\n', start)) !== -1) {
      const line = buffered.slice(start, newline);
      start = newline + 1;
      if (line.trim() !== '') yield JSON.parse(line) as T;
    }
    buffered = buffered.slice(start);
    if (buffered.length > maxLineBytes) throw new Error(`an NDJSON line is longer than ${maxLineBytes} bytes`);
  }
  buffered += decoder.decode();
  if (buffered.trim() !== '') throw new Error(`the stream ended inside a line: ${buffered.slice(0, 100)}`);
}
