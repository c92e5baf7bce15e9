import { randomUUID } from 'node:crypto';
import { InvalidRequestError, TooManyWatchesError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { WatchStartFrame, WatchStopFrame } from '../../schemas/ws.js';
import type { WorkspaceWatch, WorkspaceWatches } from '../../workspace/watches.js';
import { toContractError } from '../errors.js';
import type { FrameIds } from './frames.js';
import type { FrameSender } from './sender.js';

/** Watches one socket may hold; the server-wide bound (MAX_WATCHES) applies too. */
export const MAX_WATCHES_PER_SOCKET = 16;

export interface SocketWatchesOptions {
  watches: WorkspaceWatches;
  sender: FrameSender;
  log: Logger;
  socketId: string;
  refuse: (error: unknown, ids: FrameIds) => void;
  reply: (frame: Record<string, unknown>) => void;
}

/**
 * The directory watches of one `GET /ws` socket: `watch_start` opens one (as GET /watch does),
 * its changes go out as `watch_event` frames through the socket's sender (a client that does not
 * read holds them back, and the watch's bounded queue ends it past its bound), `watch_stop` or
 * the socket's close ends it.
 */
export class SocketWatches {
  private readonly open = new Map<string, WorkspaceWatch>();
  /** Set by watch_stop, so that its `watch_ended` names the frame that asked. */
  private readonly stopRequests = new Map<string, string | null>();
  private starting = 0;
  private closed = false;

  constructor(private readonly options: SocketWatchesOptions) {}

  handle(frame: WatchStartFrame | WatchStopFrame): void {
    if (frame.type === 'watch_start') void this.start(frame);
    else this.stop(frame);
  }

  private async start(frame: WatchStartFrame): Promise<void> {
    const requestId = frame.request_id ?? null;
    if (this.open.size + this.starting >= MAX_WATCHES_PER_SOCKET) {
      this.options.refuse(new TooManyWatchesError(`${this.open.size + this.starting} of this socket's`), { request_id: requestId });
      return;
    }
    const recursive = frame.recursive === true;
    this.starting++;
    let watch: WorkspaceWatch;
    try {
      watch = await this.options.watches.watch(frame.path ?? '.', recursive);
    } catch (error) {
      this.options.refuse(error, { request_id: requestId });
      return;
    } finally {
      this.starting--;
    }
    if (this.closed) {
      watch.close();
      return;
    }
    const id = randomUUID();
    this.open.set(id, watch);
    this.options.reply({ type: 'watch_started', request_id: requestId, watch_id: id, path: watch.path, recursive });
    void this.pump(id, watch);
  }

  private stop(frame: WatchStopFrame): void {
    const watch = this.open.get(frame.watch_id);
    if (!watch) {
      this.options.refuse(new InvalidRequestError(`No watch ${frame.watch_id} is open on this socket`), {
        request_id: frame.request_id ?? null,
        watch_id: frame.watch_id,
      });
      return;
    }
    this.stopRequests.set(frame.watch_id, frame.request_id ?? null);
    watch.close();
  }

  private async pump(id: string, watch: WorkspaceWatch): Promise<void> {
    const prefix = `{"type":"watch_event","watch_id":${JSON.stringify(id)},"event":`;
    let ending: Record<string, unknown> = {};
    try {
      for await (const event of watch.events) {
        if (!this.options.sender.send(`${prefix}${JSON.stringify(event.type)},"name":${JSON.stringify(event.name)}}`)) {
          await this.options.sender.waitForRoom();
        }
      }
    } catch (error) {
      const answer = toContractError(error, { id: this.options.socketId, headers: {} }).toBody();
      if (answer.statusCode === 500) this.options.log.error({ err: error }, 'websocket watch failed');
      ending = { code: answer.code, message: answer.message };
    } finally {
      this.open.delete(id);
    }
    const requestId = this.stopRequests.get(id) ?? null;
    this.stopRequests.delete(id);
    if (!this.closed) this.options.reply({ type: 'watch_ended', request_id: requestId, watch_id: id, ...ending });
  }

  /** The socket closed: every watch ends with it. */
  close(): void {
    this.closed = true;
    for (const watch of this.open.values()) watch.close();
  }
}
