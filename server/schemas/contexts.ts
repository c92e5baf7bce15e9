import { Type } from 'typebox';

export const Context = Type.Object(
  {
    id: Type.String({ description: 'Context id' }),
    language: Type.String({ description: 'Kernel language, e.g. python or r' }),
    cwd: Type.String({ description: "The kernel's working directory" }),
  },
  { $id: 'Context', description: 'A context: a kernel with its own state', additionalProperties: false },
);

export const CreateContextBody = Type.Object(
  {
    language: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'Kernel language (default: python)' })),
    cwd: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 4096,
        description:
          "Where the kernel starts: any existing directory the kernels' user can enter, inside the workspace or outside it (e.g. /tmp); relative paths are taken from the workspace, and a missing directory is created inside the workspace only (default: the workspace)",
      }),
    ),
  },
  { additionalProperties: false },
);

export const ContextParams = Type.Object({
  context_id: Type.String({ minLength: 1, maxLength: 128, description: 'Context id' }),
});
