import { describe, expect, it } from 'vitest';
import { createContext, deleteContext, errorsOf, execute, stdoutOf } from '../helpers/api.js';

/**
 * Every Python kernel shares one IPython profile. With its history in the profile's SQLite file,
 * two kernels that picked the same session number collided on a (session, line) key and IPython
 * printed "ERROR! Session/line number was not unique in database…" into whatever cell was running:
 * output the code never wrote. Each kernel now keeps its history in memory.
 */
describe("IPython's input history", () => {
  it('is private to each kernel: rows another kernel writes never show up in a cell', async () => {
    const [writer, reader] = await Promise.all([createContext(), createContext()]);
    try {
      // Where the history would be: the shared profile's file, filled with every (session, line)
      // key the other kernel could use next.
      const fill = [
        'import os, sqlite3',
        'path = os.path.join(get_ipython().profile_dir.location, "history.sqlite")',
        'db = sqlite3.connect(path)',
        'db.execute("CREATE TABLE IF NOT EXISTS history (session integer, line integer, source text, source_raw text, PRIMARY KEY (session, line))")',
        'db.executemany("INSERT OR IGNORE INTO history VALUES (?, ?, ?, ?)", ((s, l, "", "") for s in range(1, 3001) for l in range(1, 41)))',
        'db.commit(); db.close()',
        'print("filled")',
      ].join('\n');
      const filled = await execute({ context_id: writer.id, code: fill });
      expect(errorsOf(filled)).toEqual([]);
      expect(stdoutOf(filled)).toBe('filled\n');

      const printed: string[] = [];
      for (let cell = 0; cell < 4; cell++) {
        const events = await execute({ context_id: reader.id, code: `import time\ntime.sleep(0.3)\nprint(${cell})` });
        expect(errorsOf(events)).toEqual([]);
        printed.push(stdoutOf(events));
      }
      expect(printed).toEqual(['0\n', '1\n', '2\n', '3\n']);
    } finally {
      await Promise.all([deleteContext(writer.id), deleteContext(reader.id)]);
    }
  });
});
