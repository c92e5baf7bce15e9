import path from 'node:path';
import {
  KernelAPI,
  KernelConnection,
  KernelSpecAPI,
  ServerConnection,
  type Kernel,
  type KernelSpec,
} from '@jupyterlab/services';
import WebSocket from 'ws';
import { JupyterUnavailableError, KernelError } from '../errors.js';

/**
 * The kernel WebSocket. ws refuses frames over 100 MiB by default and closes the connection,
 * which would cut a context off from its kernel; one big display (a large image, a huge
 * single print) may exceed that. Compression is off: on loopback it costs CPU for nothing.
 */
class KernelSocket extends WebSocket {
  constructor(url: string, protocols?: string | string[]) {
    super(url, protocols, { maxPayload: 1024 * 1024 * 1024, perMessageDeflate: false });
  }
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
}

/**
 * The Jupyter Server as this server sees it: REST calls for kernelspecs and kernel lifecycle,
 * and kernel WebSocket connections. The only module that knows Jupyter's URLs.
 */
export class JupyterClient {
  readonly settings: ServerConnection.ISettings;

  constructor(options: JupyterClientOptions) {
    const baseUrl = `${options.url}/`;
    this.settings = ServerConnection.makeSettings({
      baseUrl,
      wsUrl: baseUrl.replace(/^http/, 'ws'),
      token: options.token,
      appendToken: true,
      // Node's fetch, Request and Headers; the browser-oriented defaults do not exist here.
      fetch: globalThis.fetch.bind(globalThis),
      Request: globalThis.Request,
      Headers: globalThis.Headers,
      WebSocket: KernelSocket as unknown as typeof globalThis.WebSocket,
    });
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
    // Jupyter takes the cwd as an API path relative to its root_dir; start-up.sh serves `/`, so
    // every absolute directory is reachable. `path` is accepted by POST /api/kernels although
    // the client's typings only list `name`.
    const rootRelative = path.relative('/', cwd);
    const options = { name, path: rootRelative } as KernelAPI.IKernelOptions;
    return this.call(() => KernelAPI.startNew(options, this.settings));
  }

  async shutdownKernel(id: string): Promise<void> {
    await this.call(() => KernelAPI.shutdownKernel(id, this.settings)).catch((error: unknown) => {
      // Already gone is what we wanted.
      if (error instanceof ServerConnection.ResponseError && error.response.status === 404) return;
      throw error;
    });
  }

  async listKernels(): Promise<Kernel.IModel[]> {
    return this.call(() => KernelAPI.listRunning(this.settings));
  }

  /** Opens the kernel's WebSocket. The connection reconnects by itself when the socket drops. */
  connect(model: Kernel.IModel): KernelConnection {
    return new KernelConnection({ model, serverSettings: this.settings, handleComms: false, username: 'code-interpreter' });
  }

  /** Runs a Jupyter call, turning network failures into 503 and Jupyter's errors into 502. */
  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      if (error instanceof ServerConnection.NetworkError || (error instanceof Error && error.name === 'TimeoutError')) {
        throw new JupyterUnavailableError(error.message, { cause: error });
      }
      if (error instanceof ServerConnection.ResponseError) {
        throw new KernelError(`Jupyter answered ${error.response.status}: ${error.message}`, { cause: error });
      }
      throw error;
    }
  }
}
