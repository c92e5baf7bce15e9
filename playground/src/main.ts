import './style.css';
import { ApiError, download, filePath, json, openSocket, request, setToken, token, whenUnauthorized } from './api';
import { createEditor, type CodeEditor } from './editor';

interface Context {
  id: string;
  language: string;
  cwd: string;
}

interface Frame {
  type: string;
  request_id?: string;
  execution_id?: string;
  [field: string]: unknown;
}

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const status = $<HTMLSpanElement>('status');
const languageSelect = $<HTMLSelectElement>('language');
const contextSelect = $<HTMLSelectElement>('context');
const tokenForm = $<HTMLFormElement>('token-form');

function say(message: string): void {
  status.textContent = message;
}

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<HTMLElementTagNameMap[K]> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node: HTMLElementTagNameMap[K] = document.createElement(tag);
  Object.assign(node, props);
  node.append(...children);
  return node;
}

// Terminal colours and cursor moves: tracebacks are coloured by the kernels.
// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;?]*[A-Za-z]/g;
const plain = (text: string): string => text.replace(ANSI, '');

// ---- token ----

function askForToken(message = ''): void {
  tokenForm.hidden = false;
  $<HTMLSpanElement>('token-error').textContent = message;
  $<HTMLInputElement>('token').focus();
}

whenUnauthorized(() => askForToken(token() ? 'That token was refused.' : 'This server needs an access token.'));

tokenForm.addEventListener('submit', (event) => {
  event.preventDefault();
  setToken($<HTMLInputElement>('token').value);
  void connect();
});

// ---- the socket: one for the page, each execution routed to its cell ----

let socket: WebSocket | undefined;
let requestCounter = 0;
const byRequest = new Map<string, Cell>();
const byExecution = new Map<string, Cell>();

function send(frame: object): void {
  if (!socket || socket.readyState !== WebSocket.OPEN) throw new Error('Not connected');
  socket.send(JSON.stringify(frame));
}

function connectSocket(): Promise<void> {
  return new Promise((resolve, reject) => {
    const next = openSocket();
    next.addEventListener('open', () => {
      socket = next;
      resolve();
    });
    next.addEventListener('error', () => reject(new Error('The WebSocket did not open')));
    next.addEventListener('close', () => {
      if (socket === next) {
        socket = undefined;
        say('Disconnected; reconnecting…');
        for (const cell of byExecution.values()) cell.finish();
        // A restarted server or a dropped network: try again while the page is open.
        setTimeout(() => void connect(), 2000);
      }
    });
    next.addEventListener('message', (event: MessageEvent<string>) => {
      const frame = JSON.parse(event.data) as Frame;
      if (frame.process_id !== undefined || (frame.request_id && frame.request_id === terminalRequest)) {
        if (terminal && frame.type === 'accepted' && typeof frame.process_id === 'string') terminal.started(frame.process_id);
        terminal?.handle(frame);
        return;
      }
      if (frame.type === 'accepted' && frame.request_id && frame.execution_id) {
        const cell = byRequest.get(frame.request_id);
        byRequest.delete(frame.request_id);
        if (cell) {
          cell.executionId = frame.execution_id;
          byExecution.set(frame.execution_id, cell);
        }
        return;
      }
      const cell =
        (frame.execution_id && byExecution.get(frame.execution_id)) || (frame.request_id ? byRequest.get(frame.request_id) : undefined);
      cell?.handle(frame);
    });
  });
}

// ---- cells ----

class Cell {
  readonly root: HTMLElement;
  readonly editor: CodeEditor;
  readonly output: HTMLElement;
  readonly count: HTMLElement;
  readonly interrupt: HTMLButtonElement;
  executionId: string | undefined;
  #stream: HTMLPreElement | undefined;

  constructor(parent: HTMLElement, language: string) {
    this.count = element('span', { className: 'count', textContent: '[ ]' });
    const run = element('button', { type: 'button', textContent: 'Run' });
    this.interrupt = element('button', { type: 'button', textContent: 'Interrupt', disabled: true });
    const code = element('div', { className: 'code' });
    this.output = element('div', { className: 'output' });
    this.output.setAttribute('role', 'region');
    this.output.setAttribute('aria-label', 'Output');
    this.output.setAttribute('aria-live', 'polite');
    this.root = element(
      'article',
      { className: 'cell' },
      element('div', { className: 'gutter' }, this.count, run, this.interrupt),
      code,
      this.output,
    );
    parent.append(this.root);
    this.editor = createEditor(code, language, () => this.run());
    run.addEventListener('click', () => this.run());
    this.interrupt.addEventListener('click', () => {
      if (this.executionId) send({ type: 'interrupt', execution_id: this.executionId });
    });
  }

  run(): void {
    const code = this.editor.view.state.doc.toString();
    this.output.replaceChildren();
    this.#stream = undefined;
    this.count.textContent = '[*]';
    const requestId = `r${++requestCounter}`;
    byRequest.set(requestId, this);
    if (this.executionId) byExecution.delete(this.executionId);
    this.executionId = undefined;
    const target = contextSelect.value ? { context_id: contextSelect.value } : { language: languageSelect.value };
    try {
      send({ type: 'execute', request_id: requestId, code, stdin: true, ...target });
      this.interrupt.disabled = false;
    } catch (error) {
      this.showError('Error', (error as Error).message);
      this.finish();
    }
  }

  finish(): void {
    this.interrupt.disabled = true;
    if (this.count.textContent === '[*]') this.count.textContent = '[ ]';
  }

  text(kind: 'stdout' | 'stderr', text: string): void {
    if (!this.#stream || this.#stream.dataset.kind !== kind) {
      this.#stream = element('pre', { className: kind });
      this.#stream.dataset.kind = kind;
      this.output.append(this.#stream);
    }
    this.#stream.textContent += plain(text);
  }

  block(node: HTMLElement): void {
    this.#stream = undefined;
    this.output.append(node);
  }

  showError(name: string, value: string, traceback = ''): void {
    this.block(element('pre', { className: 'error', textContent: plain(traceback || `${name}: ${value}`) }));
  }

  handle(frame: Frame): void {
    switch (frame.type) {
      case 'number_of_executions':
        this.count.textContent = `[${String(frame.execution_count)}]`;
        break;
      case 'stdout':
      case 'stderr':
        this.text(frame.type, typeof frame.text === 'string' ? frame.text : '');
        break;
      case 'result':
        this.result(frame);
        break;
      case 'error':
        this.showError(String(frame.name), String(frame.value), typeof frame.traceback === 'string' ? frame.traceback : '');
        break;
      case 'input_request':
        this.ask(frame);
        break;
      case 'output_truncated':
        this.block(
          element('p', { className: 'note', textContent: `Output truncated: ${String(frame.stream_bytes_dropped)} bytes dropped` }),
        );
        break;
      case 'request_error':
        this.showError(String(frame.code), String(frame.message));
        this.finish();
        break;
      case 'end_of_execution':
        this.finish();
        if (this.executionId) byExecution.delete(this.executionId);
        guarded(refreshFiles)();
        break;
    }
  }

  result(frame: Frame): void {
    const str = (field: string): string | undefined => {
      const value = frame[field];
      return typeof value === 'string' ? value : undefined;
    };
    const png = str('png');
    const jpeg = str('jpeg');
    const svg = str('svg');
    const html = str('html');
    if (png || jpeg) {
      this.block(element('img', { src: `data:image/${png ? 'png' : 'jpeg'};base64,${png ?? jpeg}`, alt: 'Plot' }));
    } else if (svg) {
      // As an image: an SVG shown this way runs no script and reaches nothing.
      this.block(element('img', { src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`, alt: 'Image' }));
    } else if (html) {
      // sandbox="" without allow-scripts: no script runs, and the frame has an opaque origin.
      const frameNode = element('iframe', { srcdoc: html, title: 'HTML result' });
      frameNode.setAttribute('sandbox', '');
      this.block(frameNode);
    } else {
      const text =
        str('markdown') ??
        str('latex') ??
        str('text') ??
        (frame.json !== undefined && frame.json !== null ? JSON.stringify(frame.json) : '');
      if (text) this.block(element('pre', { className: 'result', textContent: plain(text) }));
    }
  }

  ask(frame: Frame): void {
    const prompt = typeof frame.prompt === 'string' ? frame.prompt : '';
    const input = element('input', { type: frame.password ? 'password' : 'text' });
    const label = element('label', { className: 'prompt' }, prompt, input);
    this.block(label);
    input.focus();
    input.addEventListener('keydown', (event) => {
      if (event.key !== 'Enter') return;
      event.preventDefault();
      send({ type: 'input', execution_id: this.executionId, input_id: frame.input_id, value: input.value });
      label.replaceWith(element('pre', { className: 'stdout', textContent: `${prompt}${frame.password ? '' : input.value}` }));
    });
  }
}

const cellsNode = $<HTMLDivElement>('cells');
const cells: Cell[] = [];
function addCell(): Cell {
  const cell = new Cell(cellsNode, currentLanguage());
  cells.push(cell);
  cell.editor.view.focus();
  return cell;
}
$<HTMLButtonElement>('add-cell').addEventListener('click', () => addCell());

// ---- contexts ----

let contexts: Context[] = [];

function currentLanguage(): string {
  return contexts.find((context) => context.id === contextSelect.value)?.language ?? languageSelect.value;
}

function languageChanged(): void {
  for (const cell of cells) cell.editor.setLanguage(currentLanguage());
}

async function refreshContexts(select?: string): Promise<void> {
  contexts = await json<Context[]>('GET', '/contexts');
  const keep = select ?? contextSelect.value;
  contextSelect.replaceChildren(
    element('option', { value: '', textContent: 'default of the language' }),
    ...contexts.map((context) => element('option', { value: context.id, textContent: `${context.language} ${context.id.slice(0, 8)}` })),
  );
  contextSelect.value = contexts.some((context) => context.id === keep) ? keep : '';
  languageChanged();
}

function guarded(action: () => Promise<unknown>): () => void {
  return () => {
    action().catch((error: unknown) => say(error instanceof ApiError ? `${error.code}: ${error.message}` : String(error)));
  };
}

languageSelect.addEventListener('change', () => {
  contextSelect.value = '';
  languageChanged();
});
contextSelect.addEventListener('change', languageChanged);
$<HTMLButtonElement>('new-context').addEventListener(
  'click',
  guarded(async () => {
    say('Starting a kernel…');
    const context = await json<Context>('POST', '/contexts', { language: languageSelect.value });
    await refreshContexts(context.id);
    say(`New ${context.language} context`);
  }),
);
$<HTMLButtonElement>('restart-context').addEventListener(
  'click',
  guarded(async () => {
    if (!contextSelect.value) return say('Choose a context first');
    await json('POST', `/contexts/${contextSelect.value}/restart`);
    say('Restarted');
  }),
);
$<HTMLButtonElement>('delete-context').addEventListener(
  'click',
  guarded(async () => {
    if (!contextSelect.value) return say('Choose a context first');
    await json('DELETE', `/contexts/${contextSelect.value}`);
    await refreshContexts('');
    say('Deleted');
  }),
);

// ---- files ----

interface Entry {
  name: string;
  type: 'file' | 'dir';
  size: number | null;
}

let folder = '';
const fileList = $<HTMLUListElement>('file-list');
const join = (name: string): string => (folder ? `${folder}/${name}` : name);

async function refreshFiles(): Promise<void> {
  if (tokenForm.hidden === false) return;
  const listing = await json<{ entries: Entry[] }>('GET', `/files?path=${encodeURIComponent(folder || '.')}`);
  const crumbs: (Node | string)[] = [element('button', { type: 'button', textContent: 'workspace', onclick: () => openFolder('') })];
  let walked = '';
  for (const part of folder.split('/').filter(Boolean)) {
    walked = walked ? `${walked}/${part}` : part;
    const target = walked;
    crumbs.push(' / ', element('button', { type: 'button', textContent: part, onclick: () => openFolder(target) }));
  }
  $<HTMLElement>('breadcrumb').replaceChildren(...crumbs);
  fileList.replaceChildren(
    ...listing.entries.map((entry) => {
      const path = join(entry.name);
      const open =
        entry.type === 'dir'
          ? element('button', { type: 'button', className: 'name', textContent: `${entry.name}/`, onclick: () => openFolder(path) })
          : element('button', {
              type: 'button',
              className: 'name',
              textContent: entry.name,
              title: `Download ${entry.name}`,
              onclick: guarded(() => download(`/files/${filePath(path)}`, entry.name)),
            });
      const remove = element('button', {
        type: 'button',
        textContent: 'Delete',
        onclick: guarded(async () => {
          await request('DELETE', `/files/${filePath(path)}`);
          await refreshFiles();
        }),
      });
      remove.setAttribute('aria-label', `Delete ${entry.name}`);
      const size = element('span', { className: 'size', textContent: entry.size === null ? '' : `${entry.size} B` });
      return element('li', {}, open, size, remove);
    }),
  );
}

function openFolder(path: string): void {
  folder = path;
  guarded(refreshFiles)();
}

async function upload(files: Iterable<File>): Promise<void> {
  for (const file of files) {
    say(`Uploading ${file.name}…`);
    // The File itself as the body: the browser streams it from disk.
    await request('PUT', `/files/${filePath(join(file.name))}`, file);
  }
  say('Uploaded');
  await refreshFiles();
}

const uploadInput = $<HTMLInputElement>('upload');
uploadInput.addEventListener(
  'change',
  guarded(async () => {
    await upload(uploadInput.files ?? []);
    uploadInput.value = '';
  }),
);
const dropZone = $<HTMLDivElement>('drop-zone');
dropZone.addEventListener('dragover', (event) => {
  event.preventDefault();
  dropZone.classList.add('over');
});
dropZone.addEventListener('dragleave', () => dropZone.classList.remove('over'));
dropZone.addEventListener('drop', (event) => {
  event.preventDefault();
  dropZone.classList.remove('over');
  guarded(() => upload(event.dataTransfer?.files ?? []))();
});
$<HTMLFormElement>('mkdir-form').addEventListener(
  'submit',
  guarded(async () => {
    const name = $<HTMLInputElement>('folder-name');
    await request('POST', `/files/${filePath(join(name.value))}`, { action: 'mkdir' });
    name.value = '';
    await refreshFiles();
  }),
);
$<HTMLFormElement>('mkdir-form').addEventListener('submit', (event) => event.preventDefault());
$<HTMLButtonElement>('download-folder').addEventListener(
  'click',
  guarded(() =>
    download(`/files?path=${encodeURIComponent(folder || '.')}&format=tar.gz`, `${folder.split('/').pop() || 'workspace'}.tar.gz`),
  ),
);

// ---- terminal: a shell on the server, over the same socket ----

const terminalRequest = 'terminal';
let terminal: import('./terminal').TerminalPane | undefined;
$<HTMLButtonElement>('open-terminal').addEventListener(
  'click',
  guarded(async () => {
    if (terminal) return;
    const { TerminalPane } = await import('./terminal');
    terminal = new TerminalPane($<HTMLDivElement>('terminal'), send, terminalRequest);
    $<HTMLButtonElement>('open-terminal').hidden = true;
  }),
);

// ---- claim mode: the first caller gets the token ----

const claimButton = $<HTMLButtonElement>('claim');
claimButton.addEventListener(
  'click',
  guarded(async () => {
    const { token: claimed } = await json<{ token: string }>('POST', '/claim');
    setToken(claimed);
    claimButton.hidden = true;
    await connect();
  }),
);

// ---- start ----

async function connect(): Promise<void> {
  try {
    // Any call tells whether a token is needed, and whether this one is right.
    await refreshContexts();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return;
    if (error instanceof ApiError && error.code === 'ERR_UNCLAIMED') {
      claimButton.hidden = false;
      say('Nobody has claimed this server yet');
      return;
    }
    say(error instanceof ApiError ? `${error.code}: ${error.message}` : String(error));
    return;
  }
  tokenForm.hidden = true;
  // Forgotten before it closes, so that its close does not schedule a reconnection.
  const previous = socket;
  socket = undefined;
  previous?.close();
  try {
    await connectSocket();
  } catch (error) {
    say(`${(error as Error).message}; retrying…`);
    setTimeout(() => void connect(), 2000);
    return;
  }
  say('Connected');
  await refreshFiles();
}

addCell();
void connect();
