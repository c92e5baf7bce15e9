import { Type } from 'typebox';
import { DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT } from '../workspace/listing.js';

// Lengths are checked by the workspace with messages that say what is wrong; these bounds
// only keep absurd input away from it.
const MAX_RAW_PATH = 16 * 1024;

const ArchiveFormat = Type.Union([Type.Literal('tar'), Type.Literal('tar.gz')], {
  description: 'Download the directory as an archive, streamed as it is built, instead of listing it',
});

export const ListFilesQuery = Type.Object({
  path: Type.Optional(
    Type.String({ maxLength: MAX_RAW_PATH, description: 'Workspace-relative directory path (default: the workspace root, ".")' }),
  ),
  // A string: query values are not coerced (coerceTypes is off for the whole API). The route
  // checks the range.
  limit: Type.Optional(
    Type.String({
      pattern: '^[0-9]{1,6}$',
      description: `Most entries in one answer, 1 to ${MAX_LIST_LIMIT} (default ${DEFAULT_LIST_LIMIT})`,
    }),
  ),
  cursor: Type.Optional(
    Type.String({ minLength: 1, maxLength: 2048, description: 'The next_cursor of the previous page, to get the page after it' }),
  ),
  format: Type.Optional(ArchiveFormat),
});

export const UploadQuery = Type.Object({
  extract: Type.Optional(
    Type.Union([Type.Literal('tar'), Type.Literal('tar.gz')], {
      description: 'The body is an archive of this format, to unpack into the directory at the path (never guessed from the bytes)',
    }),
  ),
});

export const DownloadQuery = Type.Object({ format: Type.Optional(ArchiveFormat) });

export const FilePathParams = Type.Object({
  '*': Type.String({ maxLength: MAX_RAW_PATH, description: 'Workspace-relative file path' }),
});

export const DirectoryEntry = Type.Object(
  {
    name: Type.String(),
    type: Type.Union([Type.Literal('file'), Type.Literal('dir')]),
    size: Type.Union([Type.Integer(), Type.Null()], { description: 'Bytes; null for directories' }),
    modified: Type.Number({ description: 'Modification time, seconds since the epoch' }),
  },
  { additionalProperties: false },
);

export const DirectoryListing = Type.Object(
  {
    path: Type.String({ description: 'The listed directory, workspace-relative and normalized' }),
    entries: Type.Array(DirectoryEntry, { description: 'Directories first, then files, each group by name' }),
    next_cursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as `cursor` for the next page; null on the last page' }),
    omitted: Type.Integer({
      description: 'Entries of the directory left out because their names are not UTF-8 or hold control characters',
    }),
  },
  { additionalProperties: false },
);

export const UploadResult = Type.Object(
  {
    path: Type.String({ description: 'The written file, workspace-relative and normalized' }),
    size: Type.Integer({ description: 'Bytes written' }),
    modified: Type.Number({ description: 'Modification time, seconds since the epoch' }),
  },
  { additionalProperties: false },
);

export const FileActionBody = Type.Object(
  {
    action: Type.Union([Type.Literal('move'), Type.Literal('copy'), Type.Literal('mkdir')], {
      description: 'move (rename) or copy the path to `to`, or make it a directory (parents included)',
    }),
    to: Type.Optional(
      Type.String({ minLength: 1, maxLength: MAX_RAW_PATH, description: 'Workspace-relative destination, for move and copy' }),
    ),
    overwrite: Type.Optional(
      Type.Boolean({ description: 'Replace what is at `to` (a file, a link or a whole directory); otherwise 409 (default false)' }),
    ),
  },
  { additionalProperties: false },
);

export const FileActionResult = Type.Object(
  {
    path: Type.String({ description: 'The directory made, or the destination, workspace-relative and normalized' }),
  },
  { additionalProperties: false },
);

export const ExtractResult = Type.Object(
  {
    path: Type.String({ description: 'The directory the archive was unpacked into, workspace-relative and normalized' }),
    entries: Type.Integer({ description: 'Files, directories and links written' }),
    bytes: Type.Integer({ description: 'Bytes of file content written' }),
  },
  { additionalProperties: false },
);

export const WatchQuery = Type.Object({
  path: Type.Optional(
    Type.String({ maxLength: MAX_RAW_PATH, description: 'Workspace-relative directory to watch (default: the workspace root, ".")' }),
  ),
  recursive: Type.Optional(
    Type.Union([Type.Literal('true'), Type.Literal('false')], { description: 'Watch the whole tree under the directory (default: false)' }),
  ),
});

export const WatchEventType = Type.Union(
  ['create', 'write', 'remove', 'rename', 'chmod'].map((type) => Type.Literal(type)),
  {
    description:
      'create: a name appeared (a new file or directory, or the new name of a move); write: a file was written; remove: a name was ' +
      'deleted; rename: a name was moved away (its new name, when inside the watch, gets a create); chmod: mode or ownership changed',
  },
);

export const WatchLine = Type.Union(
  [
    Type.Object(
      { type: Type.Literal('watching'), path: Type.String(), recursive: Type.Boolean() },
      { description: 'First line: the watch is in place' },
    ),
    Type.Object(
      { type: WatchEventType, name: Type.String({ description: 'Path relative to the watched directory' }) },
      { description: 'A change, in the order they happened' },
    ),
    Type.Object({ type: Type.Literal('keepalive') }, { description: 'Sent after KEEPALIVE_INTERVAL seconds without a line' }),
    Type.Object(
      { type: Type.Literal('error'), code: Type.String(), message: Type.String() },
      { description: 'Last line of a watch that ended: ERR_WATCH_LIMIT, ERR_SERVER_SHUTTING_DOWN' },
    ),
  ],
  { $id: 'WatchLine' },
);
