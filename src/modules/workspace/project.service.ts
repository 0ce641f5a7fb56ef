// Projects (Spunto project, api-web project): a key unique in the workspace, a repository, pipeline
// settings, an agent type, and their own members. Members of the workspace create projects (and
// become their maintainers); maintainers and workspace admins change them; admins archive and
// delete them. An archived project is read-only until unarchived.
import { z } from "zod";
import { requireUser } from "../../auth/viewer.js";
import type { Project } from "../../generated/prisma/client.js";
import { conflict, forbidden, notFound, parseInput, requireId, validationError } from "../../schema/errors.js";
import type { WorkspaceGrant } from "../shared/access.js";
import { audit, unaudited } from "../shared/audit.js";
import type { DomainDeps } from "../shared/deps.js";
import { id, idempotencyKey, jsonObject, name, text, uuid } from "../../schema/validation.js";
import { asJson, isUniqueViolation, roleRank } from "./common.js";
import type { RequestContext } from "../shared/request.js";

export const MAX_PIPELINE_BYTES = 64 * 1024;

const projectRole = z.enum(["MAINTAINER", "DEVELOPER", "VIEWER"]);

const key = z
  .string()
  .trim()
  .toUpperCase()
  .regex(/^[A-Z][A-Z0-9_]{0,19}$/, "must be 1-20 letters, digits or _, starting with a letter (stored upper-case)");

/** https://, ssh:// and git:// URLs, and git's scp-like form (git@github.com:org/repo.git). */
function isRepoUrl(value: string): boolean {
  if (/^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[A-Za-z0-9._~/-]+$/.test(value)) return true;
  try {
    const url = new URL(value);
    return ["http:", "https:", "ssh:", "git:"].includes(url.protocol) && url.hostname.length > 0;
  } catch {
    return false;
  }
}

const fields = {
  name: name(100),
  description: text(2000).trim().nullish(),
  repoUrl: text(500).trim().refine(isRepoUrl, "must be a repository URL: https://, ssh://, git:// or git@host:path").nullish(),
  pipeline: jsonObject(MAX_PIPELINE_BYTES),
  agentType: z
    .string()
    .trim()
    .regex(/^[A-Za-z0-9_.:-]{1,50}$/, "must be 1-50 letters, digits, _ . : or -")
    .nullish(),
};

const createInput = z.object({
  workspaceId: id,
  key,
  ...fields,
  pipeline: fields.pipeline.optional(),
  idempotencyKey: idempotencyKey.nullish(),
});
const updateInput = z.object({
  id,
  name: fields.name.optional(),
  description: fields.description,
  repoUrl: fields.repoUrl,
  pipeline: fields.pipeline.optional(),
  agentType: fields.agentType,
});
const addMemberInput = z.object({ projectId: id, userId: uuid("a user"), role: projectRole.default("DEVELOPER") });
const changeMemberInput = z.object({ projectId: id, userId: id, role: projectRole });
const removeMemberInput = z.object({ projectId: id, userId: id });

export function createProjectService(deps: DomainDeps) {
  const { prisma, work } = deps;

  /** The project and the viewer's grant on its workspace; a stranger gets NOT_FOUND. */
  async function load(ctx: RequestContext, id: string, need: "read" | "write" | "admin") {
    const project = await prisma.project.findUnique({ where: { id: requireId(id, "project") } });
    if (!project) throw notFound("project", id);
    const grant = await ctx.access.require(project.workspaceId, need, { type: "project", id });
    return { project, grant };
  }

  /** Workspace admins, or the project's maintainers. */
  async function requireManager(project: Project, grant: WorkspaceGrant) {
    if (roleRank[grant.role] >= roleRank.ADMIN) return;
    const membership = await prisma.projectMember.findUnique({
      where: { projectId_userId: { projectId: project.id, userId: grant.viewer.userId } },
    });
    if (membership?.role !== "MAINTAINER") {
      throw forbidden(
        `This needs the maintainer role on project ${project.key} or the admin role in the workspace`,
        "project:maintainer",
      );
    }
  }

  const requireActive = (project: Project, action: string) => {
    if (project.archivedAt) throw conflict(`Cannot ${action} project ${project.key}: it is archived; unarchive it first`, { archived: true });
  };

  const keyTaken = (workspaceId: string, value: string) =>
    conflict(`Workspace ${workspaceId} already has a project with key ${value}`, {
      fields: [{ field: "input.key", message: "already used by another project of the workspace" }],
    });

  return {
    async getByKey(ctx: RequestContext, workspaceId: string, projectKey: string): Promise<string> {
      await ctx.access.require(requireId(workspaceId, "workspace"), "read");
      const project = await prisma.project.findUnique({
        where: { workspaceId_key: { workspaceId, key: projectKey.trim().toUpperCase() } },
        select: { id: true },
      });
      if (!project) throw notFound("project", projectKey);
      return project.id;
    },

    async create(ctx: RequestContext, raw: unknown): Promise<{ id: string }> {
      const { idempotencyKey, ...input } = parseInput(createInput, raw);
      const workspaceId = requireId(input.workspaceId, "workspace");
      const grant = await ctx.access.require(workspaceId, "write");
      try {
        return await work.create({ viewer: ctx.viewer, operation: "createProject", key: idempotencyKey, input }, async (tx) => {
          const taken = await tx.project.findUnique({ where: { workspaceId_key: { workspaceId, key: input.key } }, select: { id: true } });
          if (taken) throw keyTaken(workspaceId, input.key);
          const project = await tx.project.create({
            data: {
              workspaceId,
              key: input.key,
              name: input.name,
              description: input.description ?? null,
              repoUrl: input.repoUrl ?? null,
              pipeline: asJson(input.pipeline ?? {}),
              agentType: input.agentType ?? null,
              members: { create: { userId: grant.viewer.userId, role: "MAINTAINER" } },
            },
          });
          await audit(tx, ctx, {
            workspaceId,
            action: "project.create",
            targetType: "Project",
            targetId: project.id,
            data: { key: project.key, name: project.name },
          });
          return project;
        });
      } catch (error) {
        if (isUniqueViolation(error)) throw keyTaken(workspaceId, input.key);
        throw error;
      }
    },

    /** Changes what the input names; `null` clears description, repoUrl and agentType. */
    async update(ctx: RequestContext, raw: unknown): Promise<string> {
      const input = parseInput(updateInput, raw);
      const { project, grant } = await load(ctx, input.id, "write");
      await requireManager(project, grant);
      requireActive(project, "update");
      const data = {
        ...(input.name !== undefined ? { name: input.name } : {}),
        ...(input.description !== undefined ? { description: input.description } : {}),
        ...(input.repoUrl !== undefined ? { repoUrl: input.repoUrl } : {}),
        ...(input.pipeline !== undefined ? { pipeline: asJson(input.pipeline) } : {}),
        ...(input.agentType !== undefined ? { agentType: input.agentType } : {}),
      };
      await work.run(async (tx) => {
        // Conditional, so an archive that lands between the check and here still wins.
        const { count } = await tx.project.updateMany({ where: { id: project.id, archivedAt: null }, data });
        if (count === 0) throw conflict(`Cannot update project ${project.key}: it is archived; unarchive it first`, { archived: true });
        await audit(tx, ctx, {
          workspaceId: project.workspaceId,
          action: "project.update",
          targetType: "Project",
          targetId: project.id,
          data: { fields: Object.keys(data) },
        });
      });
      return project.id;
    },

    async setArchived(ctx: RequestContext, id: string, archived: boolean): Promise<string> {
      const { project } = await load(ctx, id, "admin");
      await work.run(async (tx) => {
        const { count } = await tx.project.updateMany({
          where: { id, archivedAt: archived ? null : { not: null } },
          data: { archivedAt: archived ? new Date() : null },
        });
        if (count === 0) {
          throw conflict(`Cannot ${archived ? "archive" : "unarchive"} project ${project.key}: it is ${archived ? "already archived" : "not archived"}`, {
            archived,
          });
        }
        await audit(tx, ctx, {
          workspaceId: project.workspaceId,
          action: archived ? "project.archive" : "project.unarchive",
          targetType: "Project",
          targetId: id,
          data: { key: project.key },
        });
      });
      return id;
    },

    /** Deletes the project and its members; its workers and tasks stay in the workspace without it. */
    async delete(ctx: RequestContext, id: string): Promise<string> {
      const { project } = await load(ctx, id, "admin");
      await work.run(async (tx) => {
        const { count } = await tx.project.deleteMany({ where: { id } });
        if (count === 0) throw notFound("project", id);
        await audit(tx, ctx, {
          workspaceId: project.workspaceId,
          action: "project.delete",
          targetType: "Project",
          targetId: id,
          data: { key: project.key, name: project.name },
        });
      });
      return id;
    },

    /** A project member must be a member of the workspace. */
    async addMember(ctx: RequestContext, raw: unknown): Promise<{ projectId: string; userId: string }> {
      const input = parseInput(addMemberInput, raw);
      const { project, grant } = await load(ctx, input.projectId, "write");
      await requireManager(project, grant);
      const userId = input.userId;
      const notInWorkspace = () => validationError([{ field: "input.userId", message: "is not a member of the project's workspace" }]);
      const alreadyMember = () =>
        conflict(`That user is already a member of project ${project.key}; change their role instead`, {
          fields: [{ field: "input.userId", message: "already a member of the project" }],
        });
      try {
        await work.run(async (tx) => {
          const inWorkspace = await tx.workspaceMember.findUnique({
            where: { workspaceId_userId: { workspaceId: project.workspaceId, userId } },
          });
          if (!inWorkspace) throw notInWorkspace();
          const existing = await tx.projectMember.findUnique({ where: { projectId_userId: { projectId: project.id, userId } } });
          if (existing) throw alreadyMember();
          await tx.projectMember.create({ data: { projectId: project.id, userId, role: input.role } });
          await audit(tx, ctx, {
            workspaceId: project.workspaceId,
            action: "project.member.add",
            targetType: "Project",
            targetId: project.id,
            data: { userId, role: input.role },
          });
        });
      } catch (error) {
        if (isUniqueViolation(error)) throw alreadyMember();
        throw error;
      }
      return { projectId: project.id, userId };
    },

    async changeMemberRole(ctx: RequestContext, raw: unknown): Promise<{ projectId: string; userId: string }> {
      const input = parseInput(changeMemberInput, raw);
      const { project, grant } = await load(ctx, input.projectId, "write");
      await requireManager(project, grant);
      const userId = requireId(input.userId, "project member");
      await work.run(async (tx) => {
        const member = await tx.projectMember.findUnique({ where: { projectId_userId: { projectId: project.id, userId } } });
        if (!member) throw notFound("project member", userId);
        if (member.role === input.role) return unaudited(tx, "unchanged");
        await tx.projectMember.update({ where: { projectId_userId: { projectId: project.id, userId } }, data: { role: input.role } });
        await audit(tx, ctx, {
          workspaceId: project.workspaceId,
          action: "project.member.changeRole",
          targetType: "Project",
          targetId: project.id,
          data: { userId, from: member.role, to: input.role },
        });
      });
      return { projectId: project.id, userId };
    },

    /** Maintainers and workspace admins remove members; anyone may leave a project. */
    async removeMember(ctx: RequestContext, raw: unknown): Promise<{ projectId: string; userId: string }> {
      const input = parseInput(removeMemberInput, raw);
      const leaving = input.userId === requireUser(ctx.viewer).userId;
      const { project, grant } = await load(ctx, input.projectId, leaving ? "read" : "write");
      if (!leaving) await requireManager(project, grant);
      const userId = requireId(input.userId, "project member");
      await work.run(async (tx) => {
        const { count } = await tx.projectMember.deleteMany({ where: { projectId: project.id, userId } });
        if (count === 0) throw notFound("project member", userId);
        await audit(tx, ctx, {
          workspaceId: project.workspaceId,
          action: leaving ? "project.member.leave" : "project.member.remove",
          targetType: "Project",
          targetId: project.id,
          data: { userId },
        });
      });
      return { projectId: project.id, userId };
    },
  };
}

export type ProjectService = ReturnType<typeof createProjectService>;
