import { KernelAPI, KernelConnection, ServerConnection, type Kernel } from '@jupyterlab/services';
import WebSocket from 'ws';

/**
 * `@jupyterlab/services` used directly, as the server uses it internally: the difference between
 * this row and the raw client is the library's cost, the rest of the API's is the server's.
 */
export class ServicesKernel {
  private constructor(
    readonly connection: Kernel.IKernelConnection,
    private readonly settings: ServerConnection.ISettings,
  ) {}

  static settings(url: string, token: string): ServerConnection.ISettings {
    const baseUrl = `${url}/`;
    return ServerConnection.makeSettings({
      baseUrl,
      wsUrl: baseUrl.replace(/^http/, 'ws'),
      token,
      appendToken: true,
      fetch: globalThis.fetch.bind(globalThis),
      Request: globalThis.Request,
      Headers: globalThis.Headers,
      WebSocket: WebSocket as unknown as typeof globalThis.WebSocket,
    });
  }

  static async start(url: string, token: string): Promise<ServicesKernel> {
    const settings = ServicesKernel.settings(url, token);
    const model = await KernelAPI.startNew({ name: 'python3' }, settings);
    const connection = new KernelConnection({ model, serverSettings: settings, handleComms: false, username: 'bench' });
    await connection.info;
    return new ServicesKernel(connection, settings);
  }

  /** Runs code; resolves when the future is done (execute_reply and IOPub idle). */
  async execute(code: string): Promise<{ status: string; result: string | undefined }> {
    let result: string | undefined;
    const future = this.connection.requestExecute(
      { code, silent: false, store_history: true, allow_stdin: false, stop_on_error: false },
      true,
    );
    future.onIOPub = (msg) => {
      if (msg.header.msg_type === 'execute_result') {
        result = (msg.content as { data: Record<string, string> }).data['text/plain'];
      }
    };
    // The library reconnects a dropped socket by itself and the future then waits forever: a
    // benchmark must end with an error instead.
    let timer: NodeJS.Timeout | undefined;
    const onStatus = (_: unknown, status: Kernel.ConnectionStatus) => {
      if (status !== 'connected') fail?.(new Error(`the kernel connection became ${status} during an execution`));
    };
    let fail: ((error: Error) => void) | undefined;
    const failed = new Promise<never>((_, reject) => {
      fail = reject;
      timer = setTimeout(() => reject(new Error('no execute_reply and idle within 120 s')), 120_000);
    });
    this.connection.connectionStatusChanged.connect(onStatus);
    let reply: Awaited<typeof future.done>;
    try {
      reply = await Promise.race([future.done, failed]);
    } finally {
      clearTimeout(timer);
      this.connection.connectionStatusChanged.disconnect(onStatus);
      future.dispose();
    }
    return { status: reply.content.status, result };
  }

  async stop(): Promise<void> {
    const id = this.connection.id;
    this.connection.dispose();
    await KernelAPI.shutdownKernel(id, this.settings);
  }
}
