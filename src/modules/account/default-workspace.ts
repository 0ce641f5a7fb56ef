// A user's default workspace (the one the legacy dialects act in). The column is the account's;
// the workspace module moves it through these, inside its own unit of work, when a workspace is
// created, chosen, deleted or left.
import type { WorkTx } from "../shared/unit-of-work.js";

/** Makes `workspaceId` the user's default; with `ifUnset`, only when they have none yet. */
export async function setDefaultWorkspace(tx: WorkTx, userId: string, workspaceId: string, options: { ifUnset?: boolean } = {}): Promise<void> {
  await tx.user.updateMany({
    where: { id: userId, ...(options.ifUnset ? { defaultWorkspaceId: null } : {}) },
    data: { defaultWorkspaceId: workspaceId },
  });
}

/** The workspace stops being a default: everyone's (it is deleted) or one user's (they left it). */
export async function clearDefaultWorkspace(tx: WorkTx, workspaceId: string, userId?: string): Promise<void> {
  await tx.user.updateMany({
    where: { defaultWorkspaceId: workspaceId, ...(userId ? { id: userId } : {}) },
    data: { defaultWorkspaceId: null },
  });
}
