/** A scrape in Prometheus's text format, as `name{labels}` → value. */
export type Samples = Map<string, number>;

/** Parses the text format's sample lines; label values stay as written (quoted, escaped). */
export function parseSamples(text: string): Samples {
  const samples: Samples = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return samples;
}

/** `name{a="1",b="2"}` with the labels in the order given, as prom-client writes them. */
export function key(name: string, labels: Record<string, string> = {}): string {
  const entries = Object.entries(labels);
  return entries.length === 0 ? name : `${name}{${entries.map(([label, value]) => `${label}="${value}"`).join(',')}}`;
}

/** The difference `after - before` of every sample that changed (a sample new in `after` counts from 0). */
export function changes(before: Samples, after: Samples, prefix = ''): Record<string, number> {
  const moved: Record<string, number> = {};
  for (const [name, value] of after) {
    if (!name.startsWith(prefix)) continue;
    const delta = value - (before.get(name) ?? 0);
    if (delta !== 0) moved[name] = delta;
  }
  return moved;
}
