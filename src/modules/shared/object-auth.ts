// Type-level authorization: every object of the domain checks, whatever path reached it, that the
// caller may see it. Root resolvers already refuse strangers; these stop a path through nested
// fields (a machine's task -> its workspace -> other machines' secrets, say) from crossing over.
// Memberships are cached per request, so the checks add no SQL per row.
import type { RequestContext } from "./request.js";

/** Users with a role in the object's workspace. */
export const workspaceMembers = (row: { workspaceId: string }) => ({ workspaceMember: row.workspaceId });

/** Users of the workspace, or the machine the object is assigned to (its own work). */
export const membersOrAssignedMachine = (row: { workspaceId: string; machineId: string | null }) => ({
  $any: { workspaceMember: row.workspaceId, machineIs: row.machineId },
});

/**
 * Secrets of an object (environment variables): members and above, and the machine that runs it.
 * Viewers and read-only roles see that there are some, not what they are (peers hide config values
 * from read-only roles too).
 */
export async function maySeeSecrets(
  ctx: Pick<RequestContext, "viewer" | "access">,
  row: { workspaceId: string; machineId: string | null },
): Promise<boolean> {
  if (ctx.viewer.kind === "machine") return row.machineId !== null && ctx.viewer.machineId === row.machineId;
  const role = await ctx.access.roleIn(row.workspaceId);
  return role === "OWNER" || role === "ADMIN" || role === "MEMBER";
}
