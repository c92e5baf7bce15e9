import { FileNotFoundError, NotADirectoryError, ShuttingDownError, TooManyWatchesError, WatchLimitError } from '../errors.js';
import { DirectoryWatcher } from '../sandbox-files/watcher.js';
import { SandboxFileError, type WatchEvent } from '../sandbox-files/types.js';
import { WatchQueue } from '../sandbox-files/watch-queue.js';
import { isInternalName, quote } from './paths.js';
import { translateErrno, type Workspace } from './workspace.js';

export interface WorkspaceWatchLimits {
  /** Watches open at once, over every door (MAX_WATCHES). */
  maxWatches: number;
  /** Directories one recursive watch may cover (WATCH_MAX_DIRECTORIES). */
  maxDirectories: number;
  /** Events one watch may hold for a reader that is behind. */
  maxQueuedEvents: number;
}

/** A watch of a workspace directory: its events, and the path as the client named it. */
export interface WorkspaceWatch {
  /** The watched directory, normalized as the client named it (`.` for the root). */
  path: string;
  events: AsyncIterable<WatchEvent>;
  close(): void;
}

/**
 * Watching directories of the workspace for the API's own doors (`GET /watch`, `/ws`): the
 * directory is resolved like every file API path (inside the workspace, links followed and
 * judged), then watched by the API itself, as the file API reads and writes as the API's user.
 * The watcher never follows a link, so a link inside the tree that leads outside is reported as
 * an entry, never watched through. The file API's own temporary names (`.upload-…`, `.extract-…`,
 * `.copy-…`) are left out, as listings leave them out.
 */
export class WorkspaceWatches {
  private readonly open = new Set<WatchQueue>();
  private closed = false;

  constructor(
    private readonly workspace: Workspace,
    private readonly limits: WorkspaceWatchLimits,
  ) {}

  get size(): number {
    return this.open.size;
  }

  async watch(raw: string, recursive: boolean): Promise<WorkspaceWatch> {
    if (this.closed) throw new ShuttingDownError();
    if (this.open.size >= this.limits.maxWatches) throw new TooManyWatchesError(this.open.size);
    const resolved = await this.workspace.resolve(raw);
    if (!resolved.stats) throw new FileNotFoundError(quote(resolved.display));
    if (!resolved.stats.isDirectory()) throw new NotADirectoryError(quote(resolved.display));

    let watcher: DirectoryWatcher | undefined;
    const queue = new WatchQueue(this.limits.maxQueuedEvents, () => {
      this.open.delete(queue);
      watcher?.close();
    });
    // Counted before the watcher starts, so that concurrent starts cannot pass the bound together.
    this.open.add(queue);
    try {
      watcher = await DirectoryWatcher.start(resolved.real, {
        recursive,
        maxDirectories: this.limits.maxDirectories,
        onEvent: (event) => {
          if (!event.name.split('/').some(isInternalName)) queue.push(event);
        },
        onError: (error) => queue.fail(toApiError(error, resolved.display) as Error),
      });
    } catch (error) {
      queue.close();
      throw toApiError(error, resolved.display);
    }
    // Closed while the watcher was starting (shutdown, or its queue failed at once).
    if (!this.open.has(queue)) watcher.close();
    return { path: resolved.display, events: queue.events, close: () => queue.close() };
  }

  /** Ends every watch (their readers see the end); new ones are refused. */
  closeAll(): void {
    this.closed = true;
    for (const queue of [...this.open]) queue.fail(new ShuttingDownError());
  }
}

/** The watcher's errno-named errors as the file API's; a bound reached is the watch's own. */
function toApiError(error: unknown, display: string): unknown {
  if (!(error instanceof SandboxFileError)) return error;
  if (error.code === 'ELIMIT') return new WatchLimitError(quote(display), error.message);
  return translateErrno(error, display);
}
