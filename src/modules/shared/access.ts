// Who may touch which workspace. Every domain read and write goes through here, so the rules live
// in one place: a stranger (or a key bound to another workspace) learns nothing, not even that the
// workspace exists; a member without the role gets FORBIDDEN naming the role it needs.
import { isUser, requireUser, type UserViewer, type Viewer } from "../../auth/viewer.js";
import type { PrismaClient, WorkspaceRole } from "../../generated/prisma/client.js";
import { forbidden, notFound } from "../../schema/errors.js";

/** What an operation needs: read (viewer), write (member), admin, owner. */
export type WorkspaceNeed = "read" | "write" | "admin" | "owner";

const rank: Record<WorkspaceRole, number> = { VIEWER: 0, MEMBER: 1, ADMIN: 2, OWNER: 3 };
const needRank: Record<WorkspaceNeed, number> = { read: 0, write: 1, admin: 2, owner: 3 };
const needRole: Record<WorkspaceNeed, WorkspaceRole> = { read: "VIEWER", write: "MEMBER", admin: "ADMIN", owner: "OWNER" };

export interface WorkspaceGrant {
  workspaceId: string;
  role: WorkspaceRole;
  viewer: UserViewer;
}

export function createWorkspaceAccess(viewer: Viewer, prisma: PrismaClient) {
  // One membership lookup per workspace per request, however many objects ask (Prisma batches the
  // lookups of one tick, so a list of workspaces costs one query). A subscription's context lives
  // as long as its stream: streams call `refresh` before each read, so no item outlives a role.
  const roles = new Map<string, Promise<WorkspaceRole | null>>();
  let email: Promise<string | null> | undefined;

  function roleIn(workspaceId: string): Promise<WorkspaceRole | null> {
    if (!isUser(viewer)) return Promise.resolve(null);
    // A key bound to one workspace sees no other.
    if (viewer.kind === "apiKey" && viewer.workspaceId && viewer.workspaceId !== workspaceId) return Promise.resolve(null);
    let role = roles.get(workspaceId);
    if (!role) {
      role = prisma.workspaceMember
        .findUnique({ where: { workspaceId_userId: { workspaceId, userId: viewer.userId } }, select: { role: true } })
        .then((m) => m?.role ?? null);
      roles.set(workspaceId, role);
    }
    return role;
  }

  async function check(workspaceId: string, need: WorkspaceNeed, what: { type: string; id: string }, changes: boolean): Promise<WorkspaceGrant> {
    const user = requireUser(viewer);
    const role = await roleIn(workspaceId);
    if (!role) throw notFound(what.type, what.id);
    if (changes && !user.scopes.has("write")) {
      throw forbidden('This needs the "write" scope; the credential is read-only', "write");
    }
    if (rank[role] < needRank[need]) {
      throw forbidden(
        `This needs the ${needRole[need].toLowerCase()} role in the workspace or higher; you are ${role.toLowerCase()}`,
        `workspace:${needRole[need].toLowerCase()}`,
      );
    }
    return { workspaceId, role, viewer: user };
  }

  return {
    /**
     * The viewer's grant on a workspace, or NOT_FOUND (`what` names the object asked for, so a
     * stranger's answer is the same as for an id that does not exist).
     */
    async require(workspaceId: string, need: WorkspaceNeed, what: { type: string; id: string } = { type: "workspace", id: workspaceId }): Promise<WorkspaceGrant> {
      return check(workspaceId, need, what, need !== "read");
    },

    /**
     * For reads that need a role above viewer (the audit log, enrollment tokens): the role is
     * checked, not the credential's write scope, so an admin's read-only key may read them.
     */
    async requireToRead(workspaceId: string, need: WorkspaceNeed, what: { type: string; id: string } = { type: "workspace", id: workspaceId }): Promise<WorkspaceGrant> {
      return check(workspaceId, need, what, false);
    },

    /** The role, or null for a stranger; for fields that show the viewer's own role. */
    roleIn,

    /** The role as it is now in the database, replacing what this request had cached. */
    refresh(workspaceId: string): Promise<WorkspaceRole | null> {
      roles.delete(workspaceId);
      return roleIn(workspaceId);
    },

    /**
     * The signed-in user's confirmed email address, lower-cased (null for anyone else): invitations
     * are addressed to it, and only a session holder is the person who reads that mailbox.
     */
    sessionEmail(): Promise<string | null> {
      if (viewer.kind !== "session") return Promise.resolve(null);
      email ??= prisma.user
        .findUnique({ where: { id: viewer.userId }, select: { email: true, emailVerifiedAt: true } })
        .then((user) => (user?.emailVerifiedAt ? user.email.toLowerCase() : null));
      return email;
    },

    /** Workspaces the viewer may list (all memberships, narrowed by a workspace-bound key). */
    visibleWorkspaceFilter(): { members: { some: { userId: string } } } & { id?: string } {
      const user = requireUser(viewer);
      const filter: { members: { some: { userId: string } } } & { id?: string } = { members: { some: { userId: user.userId } } };
      if (user.kind === "apiKey" && user.workspaceId) filter.id = user.workspaceId;
      return filter;
    },
  };
}

export type WorkspaceAccess = ReturnType<typeof createWorkspaceAccess>;
