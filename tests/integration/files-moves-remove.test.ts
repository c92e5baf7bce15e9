import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { del, dir, files, get, jsonOf, list, type Listing, put, python, send, sha256, useFilesContext } from '../helpers/files.js';

/** The file API: move, copy and mkdir, and a delete racing code that swaps a directory for a link. */
useFilesContext();

describe('files: move, copy, mkdir', () => {
  const action = (p: string, body: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
    send('POST', files(p), typeof body === 'string' ? body : JSON.stringify(body), headers);

  it('makes directories with their parents (201, then 200), 409 when a file is in the way', async () => {
    const made = await action(`${dir}/ops/made/deep/er`, { action: 'mkdir' });
    expect(made.status).toBe(201);
    expect(jsonOf(made)).toEqual({ path: `${dir}/ops/made/deep/er` });
    expect((await action(`${dir}/ops/made/deep/er`, { action: 'mkdir' })).status).toBe(200);
    await put(`${dir}/ops/file`, 'x');
    for (const p of [`${dir}/ops/file`, `${dir}/ops/file/sub`]) {
      const response = await action(p, { action: 'mkdir' });
      expect(response.status).toBe(409);
      expect(jsonOf(response)).toMatchObject({ code: 'ERR_ALREADY_EXISTS' });
    }
    const out = await python(`import os\nprint(os.path.isdir("${dir}/ops/made/deep/er"))`);
    expect(out.trim()).toBe('True');
  });

  it('moves and copies trees; 409 on an existing destination unless overwrite', async () => {
    const payload = randomBytes(100_000);
    await put(`${dir}/ops/src/a/bin.dat`, payload);
    await put(`${dir}/ops/src/b.txt`, 'b');
    // curl -d sends form-urlencoded: the body is read as JSON whatever the type says.
    const copied = await action(`${dir}/ops/src`, JSON.stringify({ action: 'copy', to: `${dir}/ops/copy` }), {
      'content-type': 'application/x-www-form-urlencoded',
    });
    expect(copied.status).toBe(201);
    expect(sha256((await get(`${dir}/ops/copy/a/bin.dat`)).body)).toBe(sha256(payload));
    const conflict = await action(`${dir}/ops/src/b.txt`, { action: 'move', to: `${dir}/ops/copy/b.txt` });
    expect(conflict.status).toBe(409);
    expect(jsonOf(conflict)).toMatchObject({ code: 'ERR_ALREADY_EXISTS', message: expect.stringMatching(/overwrite/) });
    const replaced = await action(`${dir}/ops/src/b.txt`, { action: 'move', to: `${dir}/ops/copy/b.txt`, overwrite: true });
    expect(replaced.status).toBe(200);
    const moved = await action(`${dir}/ops/copy`, { action: 'move', to: `${dir}/ops/renamed` });
    expect(moved.status).toBe(201);
    expect(jsonOf(moved)).toEqual({ path: `${dir}/ops/renamed` });
    expect(jsonOf<Listing>(await list(`${dir}/ops/renamed`)).entries.map((entry) => entry.name)).toEqual(['a', 'b.txt']);
    expect(jsonOf<Listing>(await list(`${dir}/ops/src`)).entries.map((entry) => entry.name)).toEqual(['a']);
  });

  it('refuses the root, a directory into itself, and destinations outside', async () => {
    await action(`${dir}/ops/self`, { action: 'mkdir' });
    const cases: Array<[string, unknown, string]> = [
      ['.', { action: 'move', to: 'elsewhere' }, 'ERR_WORKSPACE_ROOT'],
      [`${dir}/ops/self`, { action: 'move', to: `${dir}/ops/self/inner` }, 'ERR_INVALID_PATH'],
      [`${dir}/ops/self`, { action: 'copy', to: `${dir}/ops/self/inner` }, 'ERR_INVALID_PATH'],
      [`${dir}/ops/self`, { action: 'copy', to: '../escaped' }, 'ERR_PATH_OUTSIDE_WORKSPACE'],
      [`${dir}/ops/self`, { action: 'move', to: '/tmp/escaped' }, 'ERR_PATH_OUTSIDE_WORKSPACE'],
    ];
    for (const [p, body, code] of cases) {
      const response = await action(p, body);
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(jsonOf(response)).toMatchObject({ code });
    }
  });

  it('answers bodies that are not an action with 400 and a message that says why', async () => {
    const cases: Array<[unknown, RegExp]> = [
      ['{not json', /not valid JSON/],
      [{ action: 'explode' }, /action/],
      [{ action: 'move' }, /needs "to"/],
      [{ action: 'mkdir', to: 'x' }, /neither/],
      [{ action: 'copy', to: 'x', extra: 1 }, /additional/],
    ];
    for (const [body, message] of cases) {
      const response = await action(`${dir}/ops/src`, body);
      expect(response.status, String(body).slice(0, 40)).toBe(400);
      expect(jsonOf<{ message: string }>(response).message).toMatch(message);
    }
    const large = await action(`${dir}/ops/src`, 'x'.repeat(70_000));
    expect(large.status).toBe(413);
    expect(jsonOf(large)).toMatchObject({ code: 'ERR_BODY_TOO_LARGE' });
  });
});

describe('files: deleting while code swaps a directory for a link to outside', () => {
  it('never deletes anything outside the workspace', { timeout: 180_000 }, async () => {
    // The kernel exchanges a directory with a symlink to an outside directory as fast as it can
    // (renameat2 RENAME_EXCHANGE in a thread) while DELETE runs. Several rounds: a delete that
    // walks path strings escapes in about half of them (in the others it happens to unlink the
    // link first, which ends the race).
    await python(
      [
        'import ctypes, os, shutil, tempfile, threading',
        'libc = ctypes.CDLL(None, use_errno=True)',
        'outside = tempfile.mkdtemp()',
        'race = {}',
        'def start_race(tree, files=500):',
        '    for i in range(files): open(os.path.join(outside, f"f{i}"), "w").close()',
        '    os.makedirs(tree + "/d")',
        '    for i in range(files): open(os.path.join(tree, "d", f"f{i}"), "w").close()',
        '    os.symlink(outside, tree + "/l")',
        '    race["stop"] = stop = threading.Event()',
        '    a, b = os.path.abspath(tree + "/d").encode(), os.path.abspath(tree + "/l").encode()',
        '    def swap():',
        '        while not stop.is_set(): libc.renameat2(-100, a, -100, b, 2)',
        '    race["thread"] = threading.Thread(target=swap, daemon=True)',
        '    race["thread"].start()',
        'def stop_race():',
        '    race["stop"].set()',
        '    race["thread"].join()',
        '    return len(os.listdir(outside))',
      ].join('\n'),
    );
    try {
      for (let round = 0; round < 8; round++) {
        const tree = `${dir}/race-${round}`;
        await python(`start_race(${JSON.stringify(tree)})`);
        const statuses: number[] = [];
        for (let attempt = 0; attempt < 20; attempt++) {
          const response = await del(tree);
          statuses.push(response.status);
          if (response.status === 204) break;
        }
        expect((await python('print(stop_race())')).trim()).toBe('500');
        // A 409 (the path changed under the delete) is a fair answer under this race; a 500 is not.
        expect(statuses.filter((status) => status !== 204 && status !== 409)).toEqual([]);
      }
    } finally {
      await python('shutil.rmtree(outside)');
    }
  });
});
