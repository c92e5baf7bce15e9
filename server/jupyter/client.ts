import path from 'node:path';
import { KernelAPI, KernelConnection, KernelSpecAPI, ServerConnection, type Kernel, type KernelSpec } from '@jupyterlab/services';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { JupyterError, JupyterUnavailableError } from '../errors.js';
import { kernelMessageSerializer } from './wire.js';

/**
 * The kernel WebSocket class for one connection. ws closes a connection on a message over
 * `maxPayload` (with 1009) before decoding it: no message larger than what an execution may
 * output at all is ever held in memory, and `onTooLarge` tells the owner, whose execution ends
 * with an error instead of waiting for a reply that cannot arrive. Compression is off: on
 * loopback it costs CPU for nothing.
 */
function kernelSocketClass(maxPayload: number, onTooLarge: () => void): typeof globalThis.WebSocket {
  class KernelSocket extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols, { maxPayload, perMessageDeflate: false });
      this.on('error', (error: Error & { code?: string }) => {
        if (error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') onTooLarge();
      });
    }
  }
  return KernelSocket as unknown as typeof globalThis.WebSocket;
}

/**
 * Attempts at a call Jupyter answers with a server error, and the pause between them (growing):
 * Jupyter 1.x answers 500 to a shutdown, and to listing kernels, while it restarts a dead kernel
 * or removes one.
 */
const ERROR_ATTEMPTS = 4;
const ERROR_RETRY_MS = 500;

/** True for a Jupyter answer of 404: the kernel (or whatever was asked for) does not exist. */
export function isJupyterNotFound(error: unknown): boolean {
  const response = error instanceof ServerConnection.ResponseError ? error : error instanceof Error ? error.cause : undefined;
  return response instanceof ServerConnection.ResponseError && response.response.status === 404;
}

/** Turns network failures into 503 and Jupyter's error answers into 502; anything else as it is. */
export function toJupyterError(error: unknown): unknown {
  if (error instanceof ServerConnection.NetworkError || (error instanceof Error && error.name === 'TimeoutError')) {
    return new JupyterUnavailableError(error.message, { cause: error });
  }
  if (error instanceof ServerConnection.ResponseError) {
    return new JupyterError(error.response.status, error.message, { cause: error });
  }
  return error;
}

export interface KernelSpecInfo {
  /** Kernelspec name, e.g. `python3` or `ir`. */
  name: string;
  /** Lower-cased language, e.g. `python` or `r`. */
  language: string;
  displayName: string;
}

export interface JupyterClientOptions {
  url: string;
  token: string;
  /** The largest kernel message accepted, in bytes; a larger one closes the connection. */
  maxMessageBytes: number;
}

/**
 * The Jupyter Server as this server sees it: REST calls for kernelspecs and kernel lifecycle,
 * and kernel WebSocket connections. The only module that knows Jupyter's URLs.
 */
export class JupyterClient {
  readonly settings: ServerConnection.ISettings;
  private readonly maxMessageBytes: number;

  constructor(options: JupyterClientOptions) {
    const baseUrl = `${options.url}/`;
    this.maxMessageBytes = options.maxMessageBytes;
    const settings = ServerConnection.makeSettings({
      baseUrl,
      wsUrl: baseUrl.replace(/^http/, 'ws'),
      token: options.token,
      appendToken: true,
      // Node's fetch, Request and Headers; the browser-oriented defaults do not exist here.
      fetch: globalThis.fetch.bind(globalThis),
      Request: globalThis.Request,
      Headers: globalThis.Headers,
      WebSocket: kernelSocketClass(options.maxMessageBytes, () => undefined),
    });
    this.settings = { ...settings, serializer: kernelMessageSerializer(settings.serializer) };
  }

  /** `GET /api/status`: resolves when Jupyter answers, rejects otherwise. */
  async ping(signal?: AbortSignal): Promise<void> {
    const response = await this.call(() =>
      ServerConnection.makeRequest(`${this.settings.baseUrl}api/status`, { signal: signal ?? AbortSignal.timeout(2000) }, this.settings),
    );
    if (response.status !== 200) throw new JupyterUnavailableError(`GET /api/status answered ${response.status}`);
  }

  async kernelSpecs(): Promise<{ default: string; specs: KernelSpecInfo[] }> {
    const models = await this.call(() => KernelSpecAPI.getSpecs(this.settings));
    const specs = Object.values(models.kernelspecs)
      .filter((spec): spec is KernelSpec.ISpecModel => spec !== undefined)
      .map((spec) => ({ name: spec.name, language: spec.language.toLowerCase(), displayName: spec.display_name }));
    return { default: models.default, specs };
  }

  /** Starts a kernel whose working directory is `cwd` (an absolute path). */
  async startKernel(name: string, cwd: string): Promise<Kernel.IModel> {
    // Jupyter takes the cwd as a path relative to the kernel manager's root_dir, which
    // jupyter_server_config.py sets to `/` (the contexts decide what is allowed). `path` is accepted by POST /api/kernels although
    // the client's typings only list `name`.
    const rootRelative = path.relative('/', cwd);
    const options = { name, path: rootRelative } as KernelAPI.IKernelOptions;
    return this.call(() => KernelAPI.startNew(options, this.settings));
  }

  /** Shuts a kernel down; one already gone is fine. */
  async shutdownKernel(id: string): Promise<void> {
    await this.callRetrying(() => KernelAPI.shutdownKernel(id, this.settings)).catch((error: unknown) => {
      if (!isJupyterNotFound(error)) throw error;
    });
  }

  /** Restarts the kernel's process under the same id; resolves when Jupyter has started it. */
  async restartKernel(id: string): Promise<void> {
    await this.call(() => KernelAPI.restartKernel(id, this.settings));
  }

  /** Whether Jupyter still has the kernel (a kernel shut down behind our back does not). */
  async hasKernel(id: string): Promise<boolean> {
    return (await this.callRetrying(() => KernelAPI.getKernelModel(id, this.settings))) !== undefined;
  }

  async listKernels(): Promise<Kernel.IModel[]> {
    return this.callRetrying(() => KernelAPI.listRunning(this.settings));
  }

  /**
   * Opens the kernel's WebSocket. The connection reconnects by itself when the socket drops;
   * `onTooLarge` is called when a message over the size limit closed it.
   */
  connect(model: Kernel.IModel, onTooLarge: () => void): KernelConnection {
    const serverSettings = { ...this.settings, WebSocket: kernelSocketClass(this.maxMessageBytes, onTooLarge) };
    return new KernelConnection({ model, serverSettings, handleComms: false, username: 'code-interpreter' });
  }

  /** {@link call} for calls that may be repeated: a server error answer is asked again a few times. */
  private async callRetrying<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.call(fn);
      } catch (error) {
        const status = error instanceof Error && error.cause instanceof ServerConnection.ResponseError ? error.cause.response.status : 0;
        if (status < 500 || attempt >= ERROR_ATTEMPTS) throw error;
        await sleep(ERROR_RETRY_MS * attempt, undefined, { ref: false });
      }
    }
  }

  /** Runs a Jupyter call, turning network failures into 503 and Jupyter's error answers into 502. */
  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      throw toJupyterError(error);
    }
  }
}
