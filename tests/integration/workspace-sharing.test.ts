import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { errorsOf, execute, request, stdoutOf } from '../helpers/api.js';

/**
 * Files round-trip between the file API and code in both directions, whatever users the API and
 * the kernels run as (in the image: different uids sharing a group).
 */
describe('the workspace shared by the file API and code', () => {
  const base = `sharing-${randomBytes(4).toString('hex')}`;
  afterAll(async () => {
    await request('DELETE', `/files/${base}`);
  });

  async function run(code: string): Promise<string> {
    const events = await execute({ code });
    expect(errorsOf(events)).toEqual([]);
    return stdoutOf(events);
  }

  it('code changes and deletes what the API wrote', async () => {
    expect((await request('PUT', `/files/${base}/api/deep/uploaded.txt`, 'from the API')).status).toBe(201);
    const out = await run(
      [
        'import os',
        `root = os.path.join(os.getcwd(), ${JSON.stringify(base)}, "api")`,
        'path = os.path.join(root, "deep", "uploaded.txt")',
        'print(open(path).read())',
        'with open(path, "a") as f: f.write(" and code")',
        'with open(os.path.join(root, "deep", "added.txt"), "w") as f: f.write("added by code")',
        'os.rename(os.path.join(root, "deep"), os.path.join(root, "moved"))',
        'os.remove(os.path.join(root, "moved", "added.txt"))',
        'print(sorted(os.listdir(os.path.join(root, "moved"))))',
      ].join('\n'),
    );
    expect(out).toBe("from the API\n['uploaded.txt']\n");
    const download = await request('GET', `/files/${base}/api/moved/uploaded.txt`);
    expect(await download.text()).toBe('from the API and code');
  });

  it('the API replaces and deletes what code wrote', async () => {
    await run(
      [
        'import os',
        `root = os.path.join(os.getcwd(), ${JSON.stringify(base)}, "code")`,
        'os.makedirs(os.path.join(root, "nested", "deeper"))',
        'with open(os.path.join(root, "nested", "made.txt"), "w") as f: f.write("by code")',
        'with open(os.path.join(root, "nested", "deeper", "x.txt"), "w") as f: f.write("x")',
      ].join('\n'),
    );
    expect(await (await request('GET', `/files/${base}/code/nested/made.txt`)).text()).toBe('by code');
    expect((await request('PUT', `/files/${base}/code/nested/made.txt`, 'replaced by the API')).status).toBe(200);
    expect((await request('PUT', `/files/${base}/code/nested/deeper/y.txt`, 'beside')).status).toBe(201);
    expect(await run(`print(open(${JSON.stringify(`${base}/code/nested/made.txt`)}).read())`)).toBe('replaced by the API\n');
    // Code can still write to the file the API replaced.
    expect(await run(`open(${JSON.stringify(`${base}/code/nested/made.txt`)}, "a").write("!")\nprint("ok")`)).toBe('ok\n');
    expect((await request('DELETE', `/files/${base}/code/nested`)).status).toBe(204);
    expect(await run(`import os\nprint(os.path.exists(${JSON.stringify(`${base}/code/nested`)}))`)).toBe('False\n');
  });
});
