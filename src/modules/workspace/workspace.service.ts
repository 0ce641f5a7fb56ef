// Workspaces (the tenant: AiSpinner workspace, Spunto organization) and their members. Projects, the
// graph and invitations (the only way in) have their own services, reached as `workspaces.projects`,
// `workspaces.graph` and `workspaces.invitations`.
import { z } from "zod";
import { requireUser } from "../../auth/viewer.js";
import { WorkspaceRole } from "../../generated/prisma/client.js";
import { conflict, forbidden, notFound, parseInput, requireId } from "../../schema/errors.js";
import { audit, unaudited } from "../shared/audit.js";
import type { MailingDeps } from "../shared/deps.js";
import { noteAccess } from "../shared/live.js";
import { lockWorkspace } from "./common.js";
import type { RequestContext } from "../shared/request.js";
import { createGraphService } from "./graph.service.js";
import { createInvitationService } from "./invitation.service.js";
import { createProjectService } from "./project.service.js";
import { clearDefaultWorkspace, setDefaultWorkspace } from "../account/default-workspace.js";

const workspaceRole = z.enum(WorkspaceRole);
const name = z.string().trim().min(1, "give the workspace a name").max(100, "must be at most 100 characters");

const createInput = z.object({ name, idempotencyKey: z.string().nullish() });
const renameInput = z.object({ id: z.string(), name });
const changeRoleInput = z.object({ workspaceId: z.string(), userId: z.string(), role: workspaceRole });
const removeMemberInput = z.object({ workspaceId: z.string(), userId: z.string() });

export function createWorkspaceService(deps: MailingDeps) {
  const { prisma, work } = deps;

  async function ownerCount(tx: Pick<typeof prisma, "workspaceMember">, workspaceId: string) {
    return tx.workspaceMember.count({ where: { workspaceId, role: "OWNER" } });
  }

  return {
    projects: createProjectService(deps),
    graph: createGraphService(deps),
    invitations: createInvitationService(deps),

    /** Creates a workspace with the caller as its owner; it becomes the caller's default if they had none. */
    async create(ctx: RequestContext, raw: unknown): Promise<{ id: string }> {
      const user = requireUser(ctx.viewer);
      if (user.kind === "apiKey" && user.workspaceId) {
        throw forbidden("This API key is bound to one workspace, so it cannot create workspaces; use a session or an unbound key");
      }
      const input = parseInput(createInput, raw);
      return work.create({ viewer: ctx.viewer, operation: "createWorkspace", key: input.idempotencyKey, input: { name: input.name } }, async (tx) => {
        const workspace = await tx.workspace.create({
          data: { name: input.name, members: { create: { userId: user.userId, role: "OWNER" } } },
        });
        await setDefaultWorkspace(tx, user.userId, workspace.id, { ifUnset: true });
        await audit(tx, ctx, {
          workspaceId: workspace.id,
          action: "workspace.create",
          targetType: "Workspace",
          targetId: workspace.id,
          data: { name: input.name },
        });
        return workspace;
      });
    },

    /** The id of a workspace the viewer may read, or NOT_FOUND. */
    async get(ctx: RequestContext, id: string): Promise<string> {
      await ctx.access.require(requireId(id, "workspace"), "read");
      return id;
    },

    /**
     * The id of the workspace with this legacy integer id (AiSpinner's `workspace_id`), if the viewer
     * may read it. Unknown and not-the-caller's answer the same NOT_FOUND, naming the integer only.
     */
    async byLegacyId(ctx: RequestContext, legacyId: number): Promise<string> {
      const what = { type: "workspace", id: String(legacyId) };
      const row = await prisma.workspace.findUnique({ where: { legacyId }, select: { id: true } });
      if (!row) throw notFound(what.type, what.id);
      await ctx.access.require(row.id, "read", what);
      return row.id;
    },

    /**
     * AiSpinner's `/workspaces/me`: the user's default workspace while they are still a member of
     * it, else their oldest membership; a workspace-bound key always means its own workspace.
     */
    async defaultWorkspaceId(ctx: RequestContext): Promise<string | null> {
      const user = requireUser(ctx.viewer);
      if (user.kind === "apiKey" && user.workspaceId) {
        return (await ctx.access.roleIn(user.workspaceId)) ? user.workspaceId : null;
      }
      const me = await prisma.user.findUnique({ where: { id: user.userId }, select: { defaultWorkspaceId: true } });
      if (me?.defaultWorkspaceId && (await ctx.access.roleIn(me.defaultWorkspaceId))) return me.defaultWorkspaceId;
      const oldest = await prisma.workspaceMember.findFirst({
        where: { userId: user.userId },
        orderBy: [{ createdAt: "asc" }, { workspaceId: "asc" }],
        select: { workspaceId: true },
      });
      return oldest?.workspaceId ?? null;
    },

    async setDefault(ctx: RequestContext, id: string): Promise<string> {
      const grant = await ctx.access.require(requireId(id, "workspace"), "read");
      await work.run(async (tx) => {
        await setDefaultWorkspace(tx, grant.viewer.userId, id);
        await audit(tx, ctx, { workspaceId: id, action: "workspace.setDefault", targetType: "User", targetId: grant.viewer.userId });
      });
      return id;
    },

    async rename(ctx: RequestContext, raw: unknown): Promise<string> {
      const input = parseInput(renameInput, raw);
      await ctx.access.require(requireId(input.id, "workspace"), "admin");
      await work.run(async (tx) => {
        const before = await tx.workspace.findUnique({ where: { id: input.id }, select: { name: true } });
        if (!before) throw notFound("workspace", input.id);
        await tx.workspace.update({ where: { id: input.id }, data: { name: input.name } });
        await audit(tx, ctx, {
          workspaceId: input.id,
          action: "workspace.rename",
          targetType: "Workspace",
          targetId: input.id,
          data: { from: before.name, to: input.name },
        });
      });
      return input.id;
    },

    /** Deletes the workspace and everything in it. Its audit entry outlives it (no workspace id). */
    async delete(ctx: RequestContext, id: string): Promise<string> {
      await ctx.access.require(requireId(id, "workspace"), "owner");
      await work.run(async (tx) => {
        const workspace = await tx.workspace.findUnique({ where: { id }, select: { name: true } });
        if (!workspace) throw notFound("workspace", id);
        // Every member's live streams on the workspace re-check, find no membership and end.
        const members = await tx.workspaceMember.findMany({ where: { workspaceId: id }, select: { userId: true } });
        for (const member of members) noteAccess(tx, id, member.userId);
        await clearDefaultWorkspace(tx, id);
        await tx.workspace.delete({ where: { id } });
        await audit(tx, ctx, { workspaceId: null, action: "workspace.delete", targetType: "Workspace", targetId: id, data: { name: workspace.name } });
      });
      return id;
    },

    /** Admins change roles; only an owner touches an owner or makes one; the last owner stays. */
    async changeMemberRole(ctx: RequestContext, raw: unknown): Promise<{ workspaceId: string; userId: string }> {
      const input = parseInput(changeRoleInput, raw);
      const workspaceId = requireId(input.workspaceId, "workspace");
      const grant = await ctx.access.require(workspaceId, "admin");
      const userId = requireId(input.userId, "workspace member");
      await work.run(async (tx) => {
        if (!(await lockWorkspace(tx, workspaceId))) throw notFound("workspace", workspaceId);
        const member = await tx.workspaceMember.findUnique({ where: { workspaceId_userId: { workspaceId, userId } } });
        if (!member) throw notFound("workspace member", userId);
        if ((member.role === "OWNER" || input.role === "OWNER") && grant.role !== "OWNER") {
          throw forbidden("Only an owner can change an owner's role or make someone an owner", "workspace:owner");
        }
        if (member.role === input.role) return unaudited(tx, "unchanged");
        if (member.role === "OWNER" && (await ownerCount(tx, workspaceId)) <= 1) {
          throw conflict(`Cannot change the role of the last owner of workspace ${workspaceId}: make someone else an owner first`, {
            lastOwner: true,
          });
        }
        await tx.workspaceMember.update({ where: { workspaceId_userId: { workspaceId, userId } }, data: { role: input.role } });
        noteAccess(tx, workspaceId, userId);
        await audit(tx, ctx, {
          workspaceId,
          action: "workspace.member.changeRole",
          targetType: "User",
          targetId: userId,
          data: { from: member.role, to: input.role },
        });
      });
      return { workspaceId, userId };
    },

    /**
     * Admins remove members (only an owner removes an owner); anyone may remove themselves (leave).
     * Their project memberships in the workspace go with them; the last owner cannot go.
     */
    async removeMember(ctx: RequestContext, raw: unknown): Promise<{ workspaceId: string; userId: string }> {
      const input = parseInput(removeMemberInput, raw);
      const workspaceId = requireId(input.workspaceId, "workspace");
      const me = requireUser(ctx.viewer);
      const leaving = input.userId === me.userId;
      const grant = await ctx.access.require(workspaceId, leaving ? "read" : "admin");
      const userId = requireId(input.userId, "workspace member");
      await work.run(async (tx) => {
        if (!(await lockWorkspace(tx, workspaceId))) throw notFound("workspace", workspaceId);
        const member = await tx.workspaceMember.findUnique({ where: { workspaceId_userId: { workspaceId, userId } } });
        if (!member) throw notFound("workspace member", userId);
        if (member.role === "OWNER" && !leaving && grant.role !== "OWNER") {
          throw forbidden("Only an owner can remove an owner", "workspace:owner");
        }
        if (member.role === "OWNER" && (await ownerCount(tx, workspaceId)) <= 1) {
          throw conflict(`Cannot remove the last owner of workspace ${workspaceId}: make someone else an owner first, or delete the workspace`, {
            lastOwner: true,
          });
        }
        await tx.projectMember.deleteMany({ where: { userId, project: { workspaceId } } });
        await tx.workspaceMember.delete({ where: { workspaceId_userId: { workspaceId, userId } } });
        noteAccess(tx, workspaceId, userId);
        await clearDefaultWorkspace(tx, workspaceId, userId);
        await audit(tx, ctx, {
          workspaceId,
          action: leaving ? "workspace.member.leave" : "workspace.member.remove",
          targetType: "User",
          targetId: userId,
          data: { role: member.role },
        });
      });
      return { workspaceId, userId };
    },
  };
}

export type WorkspaceService = ReturnType<typeof createWorkspaceService>;
