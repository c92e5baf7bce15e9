import { describe, expect, it } from 'vitest';
import { del, dir, get, jsonOf, list, type Listing, python, send, useFilesContext } from '../helpers/files.js';

/** The file API: names it refuses or hides, trailing slashes, and listings in pages. */
useFilesContext();

describe('files: names, trailing slashes, pages', () => {
  it('refuses PUT to a path ending in "/" instead of creating a file named like the directory', async () => {
    for (const raw of [`/files/${dir}/newdir/`, `/files/${dir}/newdir/.`]) {
      const response = await send('PUT', raw, 'x');
      expect(response.status).toBe(400);
      expect(jsonOf(response)).toMatchObject({ code: 'ERR_INVALID_PATH', message: expect.stringMatching(/mkdir/) });
    }
    expect((await get(`${dir}/newdir`)).status).toBe(404);
  });

  it('refuses names with control characters, and lists neither those nor names that are not UTF-8', async () => {
    const response = await send('PUT', `/files/${dir}/names/tab%09name`, 'x');
    expect(response.status).toBe(400);
    expect(jsonOf(response)).toMatchObject({ code: 'ERR_INVALID_PATH', message: expect.stringMatching(/control characters/) });
    await python(
      [
        'import os',
        `d = b"${dir}/names"`,
        'os.makedirs(d, exist_ok=True)',
        'for name in [b"caf\\xe9", b"new\\nline", b"esc\\x1b[31m", "fin\u00e9.txt".encode()]: open(d + b"/" + name, "w").close()',
      ].join('\n'),
    );
    const listing = jsonOf<Listing & { omitted: number }>(await list(`${dir}/names`));
    expect(listing.entries.map((entry) => entry.name)).toEqual(['fin\u00e9.txt']);
    expect(listing.omitted).toBe(3);
    expect((await del(`${dir}/names`)).status).toBe(204);
  });

  it('pages a listing with limit and cursor', async () => {
    await python(`import os\nos.makedirs("${dir}/many")\nfor i in range(120): open(f"${dir}/many/{i:03}", "w").close()`);
    const names: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query = `path=${encodeURIComponent(`${dir}/many`)}&limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const response = await send('GET', `/files?${query}`);
      expect(response.status, response.body.toString()).toBe(200);
      const page = jsonOf<Listing & { next_cursor: string | null }>(response);
      names.push(...page.entries.map((entry) => entry.name));
      cursor = page.next_cursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(names).toEqual(Array.from({ length: 120 }, (_, i) => String(i).padStart(3, '0')));
    for (const query of ['limit=0', 'limit=10001', 'limit=x', 'cursor=bogus']) {
      const response = await send('GET', `/files?path=${encodeURIComponent(`${dir}/many`)}&${query}`);
      expect(response.status).toBe(400);
    }
  });
});
