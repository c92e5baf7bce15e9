import path from 'node:path';
import { PathOutsideWorkspaceError } from '../errors.js';
import { makeDirectory } from './moves.js';
import { isInside } from './paths.js';
import type { ResolvedPath, Workspace } from './workspace.js';

/**
 * The directory that the absolute path `absolute` names in the workspace, resolved by the file
 * API's own rules (symlinks followed) and created when missing, as `POST /files/mkdir` would;
 * undefined when it lies outside the workspace, by its name or through a link on the way.
 * Inside is judged with {@link isInside}, so a name that merely begins with two dots (`..data`)
 * is inside. What stands there may be something else than a directory: `stats` tells.
 */
export async function directoryInWorkspace(workspace: Workspace, absolute: string): Promise<ResolvedPath | undefined> {
  if (!isInside(workspace.root, absolute)) return undefined;
  const relative = path.relative(workspace.root, absolute) || '.';
  try {
    const resolved = await workspace.resolve(relative);
    if (resolved.stats) return resolved;
    await makeDirectory(workspace, relative);
    return await workspace.resolve(relative);
  } catch (error) {
    if (error instanceof PathOutsideWorkspaceError) return undefined;
    throw error;
  }
}
