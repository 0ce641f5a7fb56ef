// Projects and their members in GraphQL (Spunto projects, api-web projects).
import { readById } from "../shared/point-read.js";
import type { Context } from "../../context.js";
import { builder, pageSize } from "../../schema/builder.js";
import { workspaceMembers } from "../shared/object-auth.js";
import { IDEMPOTENCY_KEY_DESCRIPTION } from "../shared/common.schema.js";
import { found } from "./common.js";

export const ProjectRoleEnum = builder.enumType("ProjectRole", {
  values: {
    MAINTAINER: { description: "Changes the project's settings and members" },
    DEVELOPER: { description: "Works in the project" },
    VIEWER: { description: "Reads only" },
  } as const,
});

export const ProjectType = builder.prismaObject("Project", {
  authScopes: workspaceMembers,
  description: "A Spunto / api-web project: a key, a repository, pipeline settings and its own members.",
  fields: (t) => ({
    id: t.exposeID("id"),
    key: t.exposeString("key", { description: "Upper-case key, unique in the workspace (e.g. WEB)" }),
    name: t.exposeString("name"),
    description: t.exposeString("description", { nullable: true }),
    repoUrl: t.exposeString("repoUrl", { nullable: true }),
    pipeline: t.expose("pipeline", { type: "JSON", description: "Pipeline settings (a JSON object)" }),
    agentType: t.exposeString("agentType", { nullable: true }),
    archived: t.boolean({ select: { archivedAt: true }, resolve: (project) => project.archivedAt !== null }),
    archivedAt: t.expose("archivedAt", { type: "DateTime", nullable: true }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    updatedAt: t.expose("updatedAt", { type: "DateTime" }),
    workspace: t.relation("workspace"),
    members: t.relatedConnection("members", {
      cursor: "projectId_userId",
      ...pageSize,
      totalCount: true,
      description: "Members in the order they joined.",
      args: { role: t.arg({ type: ProjectRoleEnum, description: "Only members with this role" }) },
      query: (args) => ({
        where: args.role ? { role: args.role } : {},
        orderBy: [{ createdAt: "asc" }, { userId: "asc" }],
      }),
    }),
  }),
});

export const ProjectMemberType = builder.prismaObject("ProjectMember", {
  fields: (t) => ({
    user: t.relation("user"),
    project: t.relation("project"),
    role: t.expose("role", { type: ProjectRoleEnum }),
    joinedAt: t.expose("createdAt", { type: "DateTime" }),
  }),
});

builder.prismaObjectFields("Workspace", (t) => ({
  projects: t.relatedConnection("projects", {
    cursor: "id",
    ...pageSize,
    totalCount: true,
    description: "Projects, newest first.",
    args: {
      archived: t.arg.boolean({ description: "true: archived only; false: active only; unset: all" }),
      search: t.arg.string({ description: "Part of the key or name (case-insensitive)" }),
    },
    query: (args) => {
      const search = args.search?.trim();
      return {
        where: {
          ...(args.archived == null ? {} : { archivedAt: args.archived ? { not: null } : null }),
          ...(search
            ? { OR: [{ key: { contains: search.toUpperCase() } }, { name: { contains: search, mode: "insensitive" as const } }] }
            : {}),
        },
        orderBy: [{ createdAt: "desc" as const }, { id: "desc" as const }],
      };
    },
  }),
}));

const RemoveProjectMemberPayload = builder.objectRef<{ projectId: string; userId: string }>("RemoveProjectMemberPayload").implement({
  fields: (t) => ({
    projectId: t.exposeID("projectId"),
    userId: t.exposeID("userId", { description: "The user who is no longer a member of the project" }),
  }),
});

const CreateProjectInput = builder.inputType("CreateProjectInput", {
  fields: (t) => ({
    workspaceId: t.id({ required: true }),
    key: t.string({ required: true, description: "1-20 letters, digits or _, starting with a letter; stored upper-case; unique in the workspace" }),
    name: t.string({ required: true, description: "1-100 characters" }),
    description: t.string({ description: "Up to 2000 characters" }),
    repoUrl: t.string({ description: "https://, ssh://, git:// or git@host:path" }),
    pipeline: t.field({ type: "JSON", description: "A JSON object of at most 64 KiB (default {})" }),
    agentType: t.string({ description: "1-50 letters, digits, _ . : or -" }),
    idempotencyKey: t.string({ description: IDEMPOTENCY_KEY_DESCRIPTION }),
  }),
});

const UpdateProjectInput = builder.inputType("UpdateProjectInput", {
  description: "Fields left out stay as they are; null clears description, repoUrl and agentType. The key cannot change.",
  fields: (t) => ({
    id: t.id({ required: true }),
    name: t.string(),
    description: t.string(),
    repoUrl: t.string(),
    pipeline: t.field({ type: "JSON", description: "Replaces the pipeline settings (a JSON object of at most 64 KiB)" }),
    agentType: t.string(),
  }),
});

const AddProjectMemberInput = builder.inputType("AddProjectMemberInput", {
  fields: (t) => ({
    projectId: t.id({ required: true }),
    userId: t.id({ required: true, description: "A member of the project's workspace" }),
    role: t.field({ type: ProjectRoleEnum, description: "Default DEVELOPER" }),
  }),
});

const ChangeProjectMemberRoleInput = builder.inputType("ChangeProjectMemberRoleInput", {
  fields: (t) => ({
    projectId: t.id({ required: true }),
    userId: t.id({ required: true }),
    role: t.field({ type: ProjectRoleEnum, required: true }),
  }),
});

const RemoveProjectMemberInput = builder.inputType("RemoveProjectMemberInput", {
  fields: (t) => ({
    projectId: t.id({ required: true }),
    userId: t.id({ required: true, description: "Your own id to leave the project" }),
  }),
});

builder.queryFields((t) => ({
  project: t.prismaField({
    type: ProjectType,
    authScopes: { read: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: (query, _root, args, ctx) =>
      readById(ctx, "Project", String(args.id), query, (id) => ctx.prisma.project.findUnique({ ...query, where: { id } })),
  }),
  projectByKey: t.prismaField({
    type: ProjectType,
    description: "A project by its key (api-web's /projects/:key), in a workspace.",
    authScopes: { read: true },
    args: { workspaceId: t.arg.id({ required: true }), key: t.arg.string({ required: true }) },
    resolve: async (query, _root, args, ctx) => {
      const id = await ctx.services.workspaces.projects.getByKey(ctx, String(args.workspaceId), args.key);
      return found(ctx.prisma.project.findUnique({ ...query, where: { id } }), "project", id);
    },
  }),
}));

const reloadProject = (ctx: Context, query: object, id: string) =>
  found(ctx.prisma.project.findUnique({ ...query, where: { id } }), "project", id);

builder.mutationFields((t) => ({
  createProject: t.prismaField({
    type: ProjectType,
    description: "Workspace members create projects and become their maintainers.",
    authScopes: { write: true },
    args: { input: t.arg({ type: CreateProjectInput, required: true }) },
    resolve: async (query, _root, { input }, ctx) => {
      const { id } = await ctx.services.workspaces.projects.create(ctx, input);
      return reloadProject(ctx, query, id);
    },
  }),
  updateProject: t.prismaField({
    type: ProjectType,
    description: "The project's maintainers and workspace admins; an archived project cannot change (CONFLICT).",
    authScopes: { write: true },
    args: { input: t.arg({ type: UpdateProjectInput, required: true }) },
    resolve: async (query, _root, { input }, ctx) => reloadProject(ctx, query, await ctx.services.workspaces.projects.update(ctx, input)),
  }),
  archiveProject: t.prismaField({
    type: ProjectType,
    description: "Workspace admins. Archiving an archived project is a CONFLICT.",
    authScopes: { write: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: async (query, _root, args, ctx) =>
      reloadProject(ctx, query, await ctx.services.workspaces.projects.setArchived(ctx, String(args.id), true)),
  }),
  unarchiveProject: t.prismaField({
    type: ProjectType,
    description: "Workspace admins. Unarchiving an active project is a CONFLICT.",
    authScopes: { write: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: async (query, _root, args, ctx) =>
      reloadProject(ctx, query, await ctx.services.workspaces.projects.setArchived(ctx, String(args.id), false)),
  }),
  deleteProject: t.id({
    description: "Workspace admins. Deletes the project and its memberships (its workers and tasks stay, without a project); answers its id.",
    authScopes: { write: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => ctx.services.workspaces.projects.delete(ctx, String(args.id)),
  }),
  addProjectMember: t.prismaField({
    type: ProjectMemberType,
    description: "The project's maintainers and workspace admins; the user must be a member of the workspace.",
    authScopes: { write: true },
    args: { input: t.arg({ type: AddProjectMemberInput, required: true }) },
    resolve: async (query, _root, { input }, ctx) => {
      const key = await ctx.services.workspaces.projects.addMember(ctx, input);
      return found(ctx.prisma.projectMember.findUnique({ ...query, where: { projectId_userId: key } }), "project member", key.userId);
    },
  }),
  changeProjectMemberRole: t.prismaField({
    type: ProjectMemberType,
    description: "The project's maintainers and workspace admins.",
    authScopes: { write: true },
    args: { input: t.arg({ type: ChangeProjectMemberRoleInput, required: true }) },
    resolve: async (query, _root, { input }, ctx) => {
      const key = await ctx.services.workspaces.projects.changeMemberRole(ctx, input);
      return found(ctx.prisma.projectMember.findUnique({ ...query, where: { projectId_userId: key } }), "project member", key.userId);
    },
  }),
  removeProjectMember: t.field({
    type: RemoveProjectMemberPayload,
    description: "The project's maintainers and workspace admins; anyone can remove themselves to leave.",
    authScopes: { write: true },
    args: { input: t.arg({ type: RemoveProjectMemberInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.workspaces.projects.removeMember(ctx, input),
  }),
}));
