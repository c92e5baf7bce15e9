// Loaded on first use only (a dynamic import: its own chunk), so the page stays small for those
// who never open it.
import { Terminal } from '@xterm/xterm';
import '@xterm/xterm/css/xterm.css';

interface ProcessFrame {
  type: string;
  process_id?: string;
  [field: string]: unknown;
}

const COLS = 100;
const ROWS = 24;

/** A shell in a terminal on the server (a `pty` process), drawn by xterm.js. */
export class TerminalPane {
  processId: string | undefined;
  readonly #term: Terminal;
  readonly #send: (frame: object) => void;
  #pending = '';
  #ended = false;

  constructor(parent: HTMLElement, send: (frame: object) => void, requestId: string) {
    this.#term = new Terminal({ cols: COLS, rows: ROWS, convertEol: false });
    this.#term.open(parent);
    this.#term.textarea?.setAttribute('aria-label', 'Terminal input');
    this.#send = send;
    this.#term.onData((data) => {
      // Keys pressed before the shell is there are kept for it, not lost.
      if (this.processId) send({ type: 'process_input', process_id: this.processId, data });
      else if (!this.#ended) this.#pending += data;
    });
    send({ type: 'process_start', request_id: requestId, cmd: '/bin/bash', args: ['-i'], pty: { cols: COLS, rows: ROWS } });
    this.#term.focus();
  }

  started(processId: string): void {
    this.processId = processId;
    if (this.#pending) this.#send({ type: 'process_input', process_id: processId, data: this.#pending });
    this.#pending = '';
  }

  handle(frame: ProcessFrame): void {
    if (frame.type === 'pty' && typeof frame.data === 'string') {
      this.#term.write(Uint8Array.from(atob(frame.data), (char) => char.charCodeAt(0)));
    } else if (frame.type === 'exit') {
      this.#term.write('\r\n[the shell exited]\r\n');
      this.processId = undefined;
      this.#ended = true;
    } else if (frame.type === 'request_error' || frame.type === 'error') {
      const text = (field: string): string => (typeof frame[field] === 'string' ? frame[field] : '');
      this.#term.write(`\r\n${text('code') || text('name') || 'Error'}: ${text('message') || text('value')}\r\n`);
    }
  }
}
