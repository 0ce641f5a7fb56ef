// Who may touch which workspace. Every domain read and write goes through here, so the rules live
// in one place: a stranger (or a key bound to another workspace) learns nothing, not even that the
// workspace exists; a member without the role gets FORBIDDEN naming the role it needs.
import DataLoader from "dataloader";
import { isUser, requireUser, type UserViewer, type Viewer } from "../../auth/viewer.js";
import type { PrismaClient, WorkspaceRole } from "../../generated/prisma/client.js";
import { forbidden, notFound } from "../../schema/errors.js";
import { isUuid } from "../../schema/validation.js";

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

/** One SQL statement, without Prisma (Database.sql): membership is read on nearly every request. */
export type SqlReader = <Row>(text: string, params: unknown[]) => Promise<Row[]>;

const ROLES_OF_USER = `SELECT "workspaceId", "role" FROM "WorkspaceMember" WHERE "userId" = $1::uuid AND "workspaceId" = ANY($2::uuid[])`;

const CO_MEMBERS = `SELECT DISTINCT theirs."userId" FROM "WorkspaceMember" theirs
  JOIN "WorkspaceMember" mine ON mine."workspaceId" = theirs."workspaceId" AND mine."userId" = $1::uuid
  WHERE theirs."userId" = ANY($2::uuid[]) AND ($3::uuid[] IS NULL OR theirs."workspaceId" = ANY($3::uuid[]))`;

export function createWorkspaceAccess(viewer: Viewer, prisma: PrismaClient, sql: SqlReader) {
  // One membership lookup per request for every workspace asked about in the same tick (a list of
  // workspaces costs one statement), cached for the rest of the request. A subscription's context
  // lives as long as its stream: streams call `refresh` before each read, so no item outlives a role.
  const roles = isUser(viewer)
    ? new DataLoader<string, WorkspaceRole | null>(async (workspaceIds) => {
        const rows = await sql<{ workspaceId: string; role: WorkspaceRole }>(ROLES_OF_USER, [viewer.userId, workspaceIds]);
        const byWorkspace = new Map(rows.map((row) => [row.workspaceId, row.role]));
        return workspaceIds.map((id) => byWorkspace.get(id) ?? null);
      })
    : undefined;
  let email: Promise<string | null> | undefined;
  // Which of the users asked about share a workspace with the viewer (a workspace-bound key: that
  // workspace), one statement for every user of the same tick.
  const coMembers = isUser(viewer)
    ? new DataLoader<string, boolean>(async (userIds) => {
        const bound = viewer.kind === "apiKey" && viewer.workspaceId ? [viewer.workspaceId] : null;
        const rows = await sql<{ userId: string }>(CO_MEMBERS, [viewer.userId, userIds.filter(isUuid), bound]);
        const found = new Set(rows.map((row) => row.userId));
        return userIds.map((id) => found.has(id));
      })
    : undefined;

  function roleIn(workspaceId: string): Promise<WorkspaceRole | null> {
    if (!roles || !isUser(viewer)) return Promise.resolve(null);
    // A key bound to one workspace sees no other.
    if (viewer.kind === "apiKey" && viewer.workspaceId && viewer.workspaceId !== workspaceId) return Promise.resolve(null);
    // Not an id at all: no such workspace (and nothing for the uuid[] parameter to choke on).
    if (!isUuid(workspaceId)) return Promise.resolve(null);
    return roles.load(workspaceId);
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

    /**
     * A point read's row, loaded once for both the answer and the check: the row if the viewer may
     * read (or `need`) its workspace, else NOT_FOUND, the same answer as for an id that does not exist.
     */
    async visible<Row extends { workspaceId: string }>(row: Row | null, what: { type: string; id: string }, need: WorkspaceNeed = "read"): Promise<Row> {
      if (!row) throw notFound(what.type, what.id);
      await check(row.workspaceId, need, what, need !== "read");
      return row;
    },

    /** The role, or null for a stranger; for fields that show the viewer's own role. */
    roleIn,
    /** Whether the viewer shares a workspace with this user (themself included). */
    sharesWorkspaceWith(userId: string): Promise<boolean> {
      if (!coMembers || !isUser(viewer)) return Promise.resolve(false);
      if (viewer.userId === userId) return Promise.resolve(true);
      return coMembers.load(userId);
    },

    /** The role as it is now in the database, replacing what this request had cached. */
    refresh(workspaceId: string): Promise<WorkspaceRole | null> {
      roles?.clear(workspaceId);
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
        .then((user) => (user?.emailVerifiedAt && user.email ? user.email.toLowerCase() : null));
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
