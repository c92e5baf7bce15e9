import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, type ServiceImpl } from '@connectrpc/connect';
import type { OperationLimit } from '../../sandbox-files/operation-limit.js';
import {
  SandboxFileError,
  type EntryInfo,
  type FileErrorCode,
  type SandboxFiles,
  type WatchEvent,
  type WatchEventType,
} from '../../sandbox-files/types.js';
import {
  EntryInfoSchema,
  EventType,
  FileType,
  FilesystemEventSchema,
  WatchDirResponseSchema,
  type EntryInfo as ProtoEntryInfo,
  type Filesystem,
  type FilesystemEvent,
} from './gen/envd/filesystem/filesystem_pb.js';
import type { Watchers } from './watchers.js';
import { KEEPALIVE, keepaliveMs, withKeepalive } from './wire.js';

export interface FilesystemServiceOptions {
  files: SandboxFiles;
  operations: OperationLimit;
  watchers: Watchers;
}

/** The deepest listing asked for: deeper is the whole tree below, which the entry bound still limits. */
const MAX_LIST_DEPTH = 1024;

/**
 * envd's `filesystem.Filesystem` over SandboxFiles, as e2b's SDKs call it (docs/e2b.md):
 * `files.getInfo`/`exists` are Stat, `makeDir`, `rename` (Move), `list` (ListDir), `remove`, and
 * `watchDir` (WatchDir, a stream; CreateWatcher and the rest poll the same watches instead).
 */
export function filesystemService({ files, operations, watchers }: FilesystemServiceOptions): ServiceImpl<typeof Filesystem> {
  // Each call holds one of MAX_FILE_OPERATIONS while the host works on it.
  const run = <T>(operation: () => Promise<T>): Promise<T> => operations.run(operation).catch(rethrow);

  // A watch cut off by the server's close is `unavailable` (the SDK: the sandbox went away),
  // whatever the watch itself said.
  const closingError = () => new ConnectError('the server is shutting down', Code.Unavailable);
  const rethrowClosing = (error: unknown): never => {
    if (watchers.closing.aborted) throw closingError();
    rethrow(error);
  };

  return {
    async stat(request) {
      const entry = await run(() => files.stat(required(request.path, 'path')));
      return { entry: toProtoEntry(entry) };
    },

    async makeDir(request) {
      const entry = await run(() => files.makeDir(required(request.path, 'path')));
      return { entry: toProtoEntry(entry) };
    },

    async move(request) {
      const source = required(request.source, 'source');
      const destination = required(request.destination, 'destination');
      const entry = await run(() => files.move(source, destination));
      return { entry: toProtoEntry(entry) };
    },

    async listDir(request, context) {
      const directory = required(request.path, 'path');
      // envd lists one level when no depth is given (depth 0, proto3's default).
      const depth = Math.min(Math.max(request.depth, 1), MAX_LIST_DEPTH);
      const entries = await run(() => files.list(directory, depth, context.signal));
      return { entries: entries.map(toProtoEntry) };
    },

    async remove(request) {
      await run(() => files.remove(required(request.path, 'path')));
      return {};
    },

    async *watchDir(request, context) {
      const directory = required(request.path, 'path');
      const watch = await watchers.stream(directory, request.recursive, context.signal).catch(rethrowClosing);
      try {
        yield create(WatchDirResponseSchema, { event: { case: 'start', value: {} } });
        const interval = keepaliveMs(context.requestHeader.get('keepalive-ping-interval'));
        for await (const item of withKeepalive(watch.events[Symbol.asyncIterator](), interval)) {
          if (item === KEEPALIVE) {
            yield create(WatchDirResponseSchema, { event: { case: 'keepalive', value: {} } });
            continue;
          }
          const event = await toProtoEvent(files, directory, item, request.includeEntry);
          yield create(WatchDirResponseSchema, { event: { case: 'filesystem', value: event } });
        }
      } catch (error) {
        if (context.signal.aborted) throw ConnectError.from(context.signal.reason, Code.Canceled);
        rethrowClosing(error);
      } finally {
        watch.close();
      }
      if (context.signal.aborted) throw ConnectError.from(context.signal.reason, Code.Canceled);
      // The watch ended without the client going: the server is closing, or the directory went.
      if (watchers.closing.aborted) throw closingError();
    },

    async createWatcher(request) {
      const directory = required(request.path, 'path');
      const options = { recursive: request.recursive, includeEntry: request.includeEntry };
      return { watcherId: await watchers.create(directory, options).catch(rethrowClosing) };
    },

    async getWatcherEvents(request) {
      let taken: ReturnType<Watchers['take']>;
      try {
        taken = watchers.take(required(request.watcherId, 'watcher_id'));
      } catch (error) {
        rethrow(error);
      }
      const { events, directory, includeEntry } = taken;
      return { events: await Promise.all(events.map((event) => toProtoEvent(files, directory, event, includeEntry))) };
    },

    async removeWatcher(request) {
      try {
        watchers.remove(required(request.watcherId, 'watcher_id'));
      } catch (error) {
        rethrow(error);
      }
      return {};
    },
  };
}

function required(value: string, field: string): string {
  if (value === '') throw new ConnectError(`${field} is required`, Code.InvalidArgument);
  if (value.includes('\0')) throw new ConnectError(`${field} cannot contain a NUL character`, Code.InvalidArgument);
  return value;
}

const FILE_TYPES = { file: FileType.FILE, directory: FileType.DIRECTORY, symlink: FileType.SYMLINK } as const;

export function toProtoEntry(entry: EntryInfo): ProtoEntryInfo {
  return create(EntryInfoSchema, {
    name: entry.name,
    type: FILE_TYPES[entry.type],
    path: entry.path,
    size: BigInt(entry.size),
    mode: entry.mode,
    permissions: entry.permissions,
    owner: entry.owner,
    group: entry.group,
    modifiedTime: timestampFromMs(Math.floor(entry.modifiedMs)),
    symlinkTarget: entry.symlinkTarget,
  });
}

const EVENT_TYPES: Record<WatchEventType, EventType> = {
  create: EventType.CREATE,
  write: EventType.WRITE,
  remove: EventType.REMOVE,
  rename: EventType.RENAME,
  chmod: EventType.CHMOD,
};

async function toProtoEvent(files: SandboxFiles, directory: string, event: WatchEvent, includeEntry: boolean): Promise<FilesystemEvent> {
  const value = create(FilesystemEventSchema, { name: event.name, type: EVENT_TYPES[event.type] });
  // Gone entries have nothing to show; the others are looked up now, and may be gone already.
  if (includeEntry && event.type !== 'remove') {
    const entry = await files.stat(path.posix.join(directory, event.name)).catch(() => undefined);
    if (entry) value.entry = toProtoEntry(entry);
  }
  return value;
}

/** envd's codes for the host's errors (and so the SDK's errors: not_found is its FileNotFoundError). */
export function connectCodeOf(code: FileErrorCode): Code {
  switch (code) {
    case 'ENOENT':
      return Code.NotFound;
    case 'EEXIST':
      return Code.AlreadyExists;
    case 'EACCES':
    case 'EPERM':
      return Code.PermissionDenied;
    case 'ENOTDIR':
    case 'EINVAL':
    case 'EISDIR':
      return Code.InvalidArgument;
    case 'ELIMIT':
      return Code.ResourceExhausted;
    default:
      return Code.Internal;
  }
}

function rethrow(error: unknown): never {
  if (error instanceof ConnectError) throw error;
  if (error instanceof SandboxFileError) throw new ConnectError(error.message, connectCodeOf(error.code), undefined, undefined, error);
  throw ConnectError.from(error);
}
