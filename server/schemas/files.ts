import { Type } from 'typebox';

// Lengths are checked by the workspace with messages that say what is wrong; these bounds
// only keep absurd input away from it.
const MAX_RAW_PATH = 16 * 1024;

export const ListFilesQuery = Type.Object({
  path: Type.Optional(
    Type.String({ maxLength: MAX_RAW_PATH, description: 'Workspace-relative directory path (default: the workspace root, ".")' }),
  ),
});

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
