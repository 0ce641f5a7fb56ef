// Workspaces and their members in GraphQL. Projects and the graph add their fields to Workspace in
// their own files (imported at the end).
import { builder, pageSize } from "../../schema/builder.js";
import { workspaceMembers } from "../shared/object-auth.js";
import { IDEMPOTENCY_KEY_DESCRIPTION } from "../shared/common.schema.js";
import { found } from "./common.js";
import "./graph.schema.js";

export { ProjectType, ProjectMemberType } from "./project.schema.js";

export const WorkspaceRoleEnum = builder.enumType("WorkspaceRole", {
  values: {
    OWNER: { description: "Everything, including deleting the workspace and managing owners" },
    ADMIN: { description: "Members, projects, settings and the audit log" },
    MEMBER: { description: "Creates and changes things in the workspace" },
    VIEWER: { description: "Reads only" },
  } as const,
});

export const WorkspaceType = builder.prismaObject("Workspace", {
  authScopes: (workspace) => ({ workspaceMember: workspace.id }),
  description: "The tenant: an AiSpinner workspace, a Spunto organization, the flows API's workspace.",
  fields: (t) => ({
    id: t.exposeID("id"),
    name: t.exposeString("name"),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    updatedAt: t.expose("updatedAt", { type: "DateTime" }),
    viewerRole: t.field({
      type: WorkspaceRoleEnum,
      nullable: true,
      description: "The caller's role here (null for a caller that is not a user)",
      resolve: (workspace, _args, ctx) => ctx.services.workspaces.viewerRole(ctx, workspace.id),
    }),
    members: t.relatedConnection("members", {
      cursor: "workspaceId_userId",
      ...pageSize,
      totalCount: true,
      description: "Members in the order they joined.",
      args: { role: t.arg({ type: WorkspaceRoleEnum, description: "Only members with this role" }) },
      query: (args) => ({
        where: args.role ? { role: args.role } : {},
        orderBy: [{ createdAt: "asc" }, { userId: "asc" }],
      }),
    }),
  }),
});

export const WorkspaceMemberType = builder.prismaObject("WorkspaceMember", {
  authScopes: workspaceMembers,
  fields: (t) => ({
    user: t.relation("user"),
    workspace: t.relation("workspace"),
    role: t.expose("role", { type: WorkspaceRoleEnum }),
    joinedAt: t.expose("createdAt", { type: "DateTime" }),
  }),
});

const RemoveWorkspaceMemberPayload = builder
  .objectRef<{ workspaceId: string; userId: string }>("RemoveWorkspaceMemberPayload")
  .implement({
    fields: (t) => ({
      workspaceId: t.exposeID("workspaceId"),
      userId: t.exposeID("userId", { description: "The user who is no longer a member" }),
    }),
  });

const CreateWorkspaceInput = builder.inputType("CreateWorkspaceInput", {
  fields: (t) => ({
    name: t.string({ required: true, description: "1-100 characters" }),
    idempotencyKey: t.string({ description: IDEMPOTENCY_KEY_DESCRIPTION }),
  }),
});

const RenameWorkspaceInput = builder.inputType("RenameWorkspaceInput", {
  fields: (t) => ({
    id: t.id({ required: true }),
    name: t.string({ required: true, description: "1-100 characters" }),
  }),
});

const AddWorkspaceMemberInput = builder.inputType("AddWorkspaceMemberInput", {
  fields: (t) => ({
    workspaceId: t.id({ required: true }),
    user: t.string({ required: true, description: "The user's e-mail address, username or id (a confirmed account)" }),
    role: t.field({ type: WorkspaceRoleEnum, required: true, description: "Only an owner can grant OWNER" }),
  }),
});

const ChangeWorkspaceMemberRoleInput = builder.inputType("ChangeWorkspaceMemberRoleInput", {
  fields: (t) => ({
    workspaceId: t.id({ required: true }),
    userId: t.id({ required: true }),
    role: t.field({ type: WorkspaceRoleEnum, required: true }),
  }),
});

const RemoveWorkspaceMemberInput = builder.inputType("RemoveWorkspaceMemberInput", {
  fields: (t) => ({
    workspaceId: t.id({ required: true }),
    userId: t.id({ required: true, description: "Your own id to leave the workspace" }),
  }),
});

const workspaceOrder = [{ createdAt: "desc" as const }, { id: "desc" as const }];

builder.queryFields((t) => ({
  workspaces: t.prismaConnection({
    type: WorkspaceType,
    cursor: "id",
    ...pageSize,
    description: "The caller's workspaces, newest first (a workspace-bound API key sees only its own).",
    authScopes: { read: true },
    totalCount: (_parent, _args, ctx) => ctx.prisma.workspace.count({ where: ctx.access.visibleWorkspaceFilter() }),
    resolve: (query, _root, _args, ctx) =>
      ctx.prisma.workspace.findMany({ ...query, where: ctx.access.visibleWorkspaceFilter(), orderBy: workspaceOrder }),
  }),
  workspace: t.prismaField({
    type: WorkspaceType,
    authScopes: { read: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: async (query, _root, args, ctx) => {
      const id = await ctx.services.workspaces.get(ctx, String(args.id));
      return found(ctx.prisma.workspace.findUnique({ ...query, where: { id } }), "workspace", id);
    },
  }),
  defaultWorkspace: t.prismaField({
    type: WorkspaceType,
    nullable: true,
    description:
      "AiSpinner's /workspaces/me: the caller's default workspace, else the one they joined first; null when they have none.",
    authScopes: { read: true },
    resolve: async (query, _root, _args, ctx) => {
      const id = await ctx.services.workspaces.defaultWorkspaceId(ctx);
      // Queried even without an id, so the plugin sees its selection used.
      return ctx.prisma.workspace.findFirst({ ...query, where: id ? { id } : { id: { in: [] } } });
    },
  }),
}));

builder.mutationFields((t) => ({
  createWorkspace: t.prismaField({
    type: WorkspaceType,
    description: "Creates a workspace with the caller as its owner; it becomes their default if they have none.",
    authScopes: { write: true },
    args: { input: t.arg({ type: CreateWorkspaceInput, required: true }) },
    resolve: async (query, _root, { input }, ctx) => {
      const { id } = await ctx.services.workspaces.create(ctx, input);
      return found(ctx.prisma.workspace.findUnique({ ...query, where: { id } }), "workspace", id);
    },
  }),
  setDefaultWorkspace: t.prismaField({
    type: WorkspaceType,
    description: "Makes a workspace the caller's default (what defaultWorkspace answers).",
    authScopes: { write: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: async (query, _root, args, ctx) => {
      const id = await ctx.services.workspaces.setDefault(ctx, String(args.id));
      return found(ctx.prisma.workspace.findUnique({ ...query, where: { id } }), "workspace", id);
    },
  }),
  renameWorkspace: t.prismaField({
    type: WorkspaceType,
    description: "Workspace admins and owners.",
    authScopes: { write: true },
    args: { input: t.arg({ type: RenameWorkspaceInput, required: true }) },
    resolve: async (query, _root, { input }, ctx) => {
      const id = await ctx.services.workspaces.rename(ctx, input);
      return found(ctx.prisma.workspace.findUnique({ ...query, where: { id } }), "workspace", id);
    },
  }),
  deleteWorkspace: t.id({
    description: "Owners only. Deletes the workspace and everything in it; answers its id.",
    authScopes: { write: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => ctx.services.workspaces.delete(ctx, String(args.id)),
  }),
  addWorkspaceMember: t.prismaField({
    type: WorkspaceMemberType,
    description: "Workspace admins add members; only an owner can add an owner.",
    authScopes: { write: true },
    args: { input: t.arg({ type: AddWorkspaceMemberInput, required: true }) },
    resolve: async (query, _root, { input }, ctx) => {
      const key = await ctx.services.workspaces.addMember(ctx, input);
      return found(ctx.prisma.workspaceMember.findUnique({ ...query, where: { workspaceId_userId: key } }), "workspace member", key.userId);
    },
  }),
  changeWorkspaceMemberRole: t.prismaField({
    type: WorkspaceMemberType,
    description: "Workspace admins; only an owner changes an owner or makes one. The last owner cannot be demoted (CONFLICT).",
    authScopes: { write: true },
    args: { input: t.arg({ type: ChangeWorkspaceMemberRoleInput, required: true }) },
    resolve: async (query, _root, { input }, ctx) => {
      const key = await ctx.services.workspaces.changeMemberRole(ctx, input);
      return found(ctx.prisma.workspaceMember.findUnique({ ...query, where: { workspaceId_userId: key } }), "workspace member", key.userId);
    },
  }),
  removeWorkspaceMember: t.field({
    type: RemoveWorkspaceMemberPayload,
    description:
      "Workspace admins remove members (only an owner removes an owner); anyone can remove themselves to leave. The last owner cannot go (CONFLICT).",
    authScopes: { write: true },
    args: { input: t.arg({ type: RemoveWorkspaceMemberInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.workspaces.removeMember(ctx, input),
  }),
}));
