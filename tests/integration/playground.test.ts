import { mkdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accessToken, baseUrl, request } from '../helpers/api.js';
import { root } from '../helpers/processes.js';
import { startServer, type StartedServer } from '../helpers/start-server.js';

// Debian's Chromium (scripts/dev-debian-packages.txt). No sandbox: CI runs as root in a container.
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = path.join(root, 'test-results', 'playground');

let browser: Browser;
let context: BrowserContext;
let page: Page;
/** Console errors and CSP violations: the page must cause none. */
const problems: string[] = [];

async function openPage(target: Page, url: string, token: string): Promise<void> {
  await target.goto(`${url}/`);
  if (token) {
    await target.getByLabel('Access token', { exact: true }).fill(token);
    await target.getByRole('button', { name: 'Connect' }).click();
  }
  await target.getByRole('status').getByText('Connected').waitFor();
}

/** Runs code in a new cell with Shift+Enter; answers that cell. */
async function run(code: string): Promise<Locator> {
  await page.getByRole('button', { name: 'Add cell' }).click();
  const cell = page.locator('article.cell').last();
  await cell.getByRole('textbox', { name: 'Code' }).click();
  // insertText: typing would let the editor auto-indent the lines.
  await page.keyboard.insertText(code);
  await page.keyboard.press('Shift+Enter');
  return cell;
}

beforeAll(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update'],
  });
  context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1200, height: 800 } });
  page = await context.newPage();
  page.on('console', (message) => {
    // Chromium's own note that the sandboxed HTML result's script did not run is what is wanted.
    if (message.type() === 'error' && !/sandboxed and the 'allow-scripts'/.test(message.text())) problems.push(message.text());
  });
  page.on('pageerror', (error) => problems.push(error.message));
  await openPage(page, baseUrl, accessToken);
}, 60_000);

afterAll(async () => {
  await browser?.close();
});

describe('the playground page', () => {
  it('is served with a strict Content-Security-Policy, small, its assets cached for good', async () => {
    const response = await fetch(`${baseUrl}/`);
    expect(response.status).toBe(200);
    const csp = response.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toMatch(/script-src 'self'(;|$)/);
    expect(response.headers.get('cache-control')).toBe('no-cache');
    const html = await response.text();
    // No inline script: every <script> has a src.
    expect(html.match(/<script(?![^>]*\bsrc=)[^>]*>/g)).toBeNull();
    let gzipped = 0;
    for (const [, asset] of html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)) {
      const answer = await fetch(`${baseUrl}${asset}`);
      expect(answer.status).toBe(200);
      expect(answer.headers.get('cache-control')).toContain('immutable');
      gzipped += gzipSync(Buffer.from(await answer.arrayBuffer())).length;
    }
    console.log(`playground: ${(gzipped / 1024).toFixed(1)} KiB gzipped`);
    expect(gzipped).toBeGreaterThan(10_000);
    expect(gzipped).toBeLessThan(300 * 1024);
  });

  it('runs print(1) and shows 1, with the execution count', async () => {
    const cell = await run('print(1)');
    await cell.getByRole('region', { name: 'Output' }).getByText('1', { exact: true }).waitFor();
    await cell.getByText(/^\[\d+\]$/).waitFor();
  });

  it('shows a matplotlib plot as an image, and saves a screenshot of the cell', async () => {
    const cell = await run('import matplotlib.pyplot as plt\nplt.plot([1, 3, 2, 4])\nplt.title("playground")\nplt.show()');
    const image = cell.getByRole('region', { name: 'Output' }).getByRole('img', { name: 'Plot' });
    await image.waitFor();
    expect(await image.evaluate((node) => (node as unknown as { naturalWidth: number }).naturalWidth)).toBeGreaterThan(100);
    await mkdir(ARTIFACTS, { recursive: true });
    await cell.screenshot({ path: path.join(ARTIFACTS, 'plot-cell.png') });
    expect((await stat(path.join(ARTIFACTS, 'plot-cell.png'))).size).toBeGreaterThan(1000);
  });

  it('puts HTML in a sandboxed frame whose scripts do not run', async () => {
    const cell = await run(
      'from IPython.display import HTML\nHTML("<b id=x>bold</b><script>parent.document.title = \'reached\'</script>")',
    );
    const frame = cell.locator('iframe');
    await frame.waitFor();
    expect(await frame.getAttribute('sandbox')).toBe('');
    await cell.frameLocator('iframe').getByText('bold').waitFor();
    expect(await page.title()).not.toBe('reached');
  });

  it('answers an input() prompt in place', async () => {
    const cell = await run('name = input("Name? ")\nprint("hello", name)');
    const answer = cell.getByRole('textbox', { name: 'Name?' });
    await answer.fill('Ada');
    await answer.press('Enter');
    await cell.getByText('hello Ada').waitFor();
  });

  it('interrupts a time.sleep(60)', async () => {
    const started = Date.now();
    const cell = await run('import time\nprint("sleeping", flush=True)\ntime.sleep(60)');
    await cell.getByRole('region', { name: 'Output' }).getByText('sleeping').waitFor();
    await cell.getByRole('button', { name: 'Interrupt' }).click();
    await cell
      .getByText(/KeyboardInterrupt/)
      .first()
      .waitFor();
    expect(Date.now() - started).toBeLessThan(30_000);
  });

  it('uploads a file by the file chooser, lists it, and downloads the same bytes', async () => {
    const name = `upload-${Date.now()}.bin`;
    const bytes = Buffer.from(Array.from({ length: 70_000 }, (_, index) => (index * 7) % 256));
    try {
      await page.getByLabel('Upload files').setInputFiles({ name, mimeType: 'application/octet-stream', buffer: bytes });
      const entry = page.getByRole('list', { name: 'Files' }).getByRole('button', { name, exact: true });
      await entry.waitFor();
      const [download] = await Promise.all([page.waitForEvent('download'), entry.click()]);
      expect(download.suggestedFilename()).toBe(name);
      expect(Buffer.compare(await readFile(await download.path()), bytes)).toBe(0);
    } finally {
      await request('DELETE', `/files/${name}`);
    }
  });

  it('makes a folder, takes a dropped file into it, downloads the folder as .tar.gz and deletes it', async () => {
    const folder = `folder-${Date.now()}`;
    try {
      await page.getByLabel('New folder').fill(folder);
      await page.getByRole('button', { name: 'Create folder' }).click();
      const files = page.getByRole('list', { name: 'Files' });
      await files.getByRole('button', { name: `${folder}/` }).click();
      await page.getByRole('navigation', { name: 'Folder' }).getByRole('button', { name: folder }).waitFor();
      // What a drag from the desktop delivers: a drop event whose DataTransfer holds the file.
      // (Page-side code as text: this file is type-checked without the DOM's types.)
      const drop = await page.evaluateHandle(
        "(() => { const transfer = new DataTransfer(); transfer.items.add(new File(['dropped bytes'], 'dropped.txt')); return transfer; })()",
      );
      await page.locator('#drop-zone').dispatchEvent('drop', { dataTransfer: drop });
      await files.getByRole('button', { name: 'dropped.txt', exact: true }).waitFor();
      const [archive] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: /Download folder/ }).click()]);
      expect(archive.suggestedFilename()).toBe(`${folder}.tar.gz`);
      const bytes = gunzipSync(await readFile(await archive.path()));
      expect(bytes.includes(Buffer.from('dropped bytes'))).toBe(true);
      await page.getByRole('navigation', { name: 'Folder' }).getByRole('button', { name: 'workspace' }).click();
      await files.getByRole('button', { name: `Delete ${folder}` }).click();
      await files.getByRole('button', { name: `${folder}/` }).waitFor({ state: 'detached' });
      expect((await request('GET', `/files?path=${folder}`)).status).toBe(404);
    } finally {
      await request('DELETE', `/files/${folder}`);
    }
  });

  it('opens a terminal, a shell on the server, and keeps what is typed before it started', async () => {
    await page.getByRole('button', { name: 'Open terminal' }).click();
    const panel = page.getByRole('region', { name: 'Terminal' });
    await panel.locator('.xterm-rows').waitFor();
    await page.getByLabel('Terminal input').pressSequentially('echo $((6 * 7))x\n');
    await panel.locator('.xterm-rows').getByText('42x', { exact: true }).waitFor();
  });

  it('switches to R and runs cat(6*7)', async () => {
    await page.getByLabel('Language').selectOption('r');
    const cell = await run('cat(6*7)');
    await cell.getByRole('region', { name: 'Output' }).getByText('42', { exact: true }).waitFor({ timeout: 30_000 });
    await page.getByLabel('Language').selectOption('python');
  });

  it('caused no console errors and no CSP violations', () => {
    expect(problems).toEqual([]);
  });
});

describe('the playground in token mode', () => {
  let server: StartedServer;
  const token = 'playground-browser-token-0123456789abcdef';

  beforeAll(async () => {
    server = await startServer({ ACCESS_TOKEN: token });
  }, 60_000);

  afterAll(async () => {
    await server?.stop();
  });

  it('asks for the token, refuses a wrong one and works with the right one, keeping it for the tab only', async () => {
    const tab = await context.newPage();
    try {
      await tab.goto(`${server.baseUrl}/`);
      const field = tab.getByLabel('Access token', { exact: true });
      await field.fill('wrong-token-wrong-token-wrong-token');
      await tab.getByRole('button', { name: 'Connect' }).click();
      await tab.getByText('That token was refused.').waitFor();
      await field.fill(token);
      await tab.getByRole('button', { name: 'Connect' }).click();
      await tab.getByRole('status').getByText('Connected').waitFor();
      expect(await tab.evaluate('[sessionStorage.length, localStorage.length, document.cookie]')).toEqual([1, 0, '']);
    } finally {
      await tab.close();
    }
  });
});

describe('the playground in claim mode', () => {
  let server: StartedServer;

  beforeAll(async () => {
    server = await startServer({ AUTH_MODE: 'claim' });
  }, 60_000);

  afterAll(async () => {
    await server?.stop();
  });

  it('claims the server and runs code with the token it got', async () => {
    const tab = await context.newPage();
    try {
      await tab.goto(`${server.baseUrl}/`);
      await tab.getByRole('button', { name: 'Claim this server' }).click();
      await tab.getByRole('status').getByText('Connected').waitFor();
      // Claimed: a second claim gets nothing, and the API wants the token.
      expect((await fetch(`${server.baseUrl}/contexts`)).status).toBe(401);
    } finally {
      await tab.close();
    }
  });
});

describe('PLAYGROUND=false', () => {
  it('answers 404 at / and serves the API as before', async () => {
    const server = await startServer({ PLAYGROUND: 'false' });
    try {
      const page = await fetch(`${server.baseUrl}/`);
      expect(page.status).toBe(404);
      expect(((await page.json()) as { code: string }).code).toBe('ERR_ROUTE_NOT_FOUND');
      expect((await fetch(`${server.baseUrl}/health`)).status).toBe(200);
    } finally {
      await server.stop();
    }
  }, 60_000);
});
