// Workspaces, their members and the invitations that bring members in, in GraphQL. Projects and the
// graph add their fields to Workspace in their own files.
import { builder, pageSize } from "../../schema/builder.js";
import { workspaceMembers } from "../shared/object-auth.js";
import { IDEMPOTENCY_KEY_DESCRIPTION } from "../shared/common.schema.js";
import { found } from "./common.js";
import { stateFilter, stateOf } from "./invitation.service.js";
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
    legacyId: t.exposeInt("legacyId", { description: "The integer id legacy APIs show (AiSpinner workspace_id)" }),
    name: t.exposeString("name"),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    updatedAt: t.expose("updatedAt", { type: "DateTime" }),
    viewerRole: t.field({
      type: WorkspaceRoleEnum,
      nullable: true,
      description: "The caller's role here (null for a caller that is not a user)",
      resolve: (workspace, _args, ctx) => ctx.access.roleIn(workspace.id),
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

const InvitationStatusEnum = builder.enumType("InvitationStatus", {
  values: {
    PENDING: { description: "Open: the invitee may accept or decline it" },
    EXPIRED: { description: "Not answered in time; inviting the address again renews it" },
    ACCEPTED: { description: "The invitee joined the workspace" },
    DECLINED: { description: "The invitee said no" },
    REVOKED: { description: "An admin withdrew it" },
  } as const,
});

/**
 * What an invitation shows of its workspace. The invitee is not a member yet, so the Workspace type
 * (members, projects, graph) is closed to them: they see this, the id and name they are invited to,
 * and only through an invitation they may see.
 */
const InvitedWorkspaceType = builder.prismaObject("Workspace", {
  variant: "InvitedWorkspace",
  description: "The workspace an invitation is for, as the invitee sees it before joining.",
  fields: (t) => ({
    id: t.exposeID("id"),
    name: t.exposeString("name"),
  }),
});

export const WorkspaceInvitationType = builder.prismaObject("WorkspaceInvitation", {
  authScopes: (invitation, ctx) => ctx.services.workspaces.invitations.maySee(ctx, invitation),
  description: "An invitation to join a workspace, addressed to an email address. Seen by the workspace's admins and by the invitee.",
  fields: (t) => ({
    id: t.exposeID("id"),
    email: t.exposeString("email", { description: "The invited address (lower-cased)" }),
    role: t.expose("role", { type: WorkspaceRoleEnum, description: "The role the invitee gets by accepting" }),
    status: t.field({ type: InvitationStatusEnum, select: { status: true, expiresAt: true }, resolve: stateOf }),
    expiresAt: t.expose("expiresAt", { type: "DateTime" }),
    respondedAt: t.expose("respondedAt", { type: "DateTime", nullable: true, description: "When it was accepted, declined or revoked" }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    workspace: t.relation("workspace", { type: InvitedWorkspaceType }),
  }),
});

builder.prismaObjectFields(WorkspaceType, (t) => ({
  invitations: t.relatedConnection("invitations", {
    cursor: "id",
    ...pageSize,
    totalCount: true,
    description: "Invitations to this workspace, newest first (workspace admins).",
    authScopes: (workspace, _args, ctx) => ctx.services.workspaces.invitations.mayList(ctx, workspace.id),
    args: { status: t.arg({ type: InvitationStatusEnum, description: "Only invitations in this state" }) },
    query: (args) => ({ where: stateFilter(args.status), orderBy: [{ createdAt: "desc" }, { id: "desc" }] }),
  }),
}));

const InviteWorkspaceMemberInput = builder.inputType("InviteWorkspaceMemberInput", {
  fields: (t) => ({
    workspaceId: t.id({ required: true }),
    email: t.string({ required: true, description: "The address to invite; it need not have an account yet" }),
    role: t.field({ type: WorkspaceRoleEnum, required: true, description: "Only an owner can invite an OWNER" }),
    idempotencyKey: t.string({ description: IDEMPOTENCY_KEY_DESCRIPTION }),
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
  workspaceByLegacyId: t.prismaField({
    type: WorkspaceType,
    description: "The workspace with this integer id (AiSpinner's workspace_id); like `workspace`, NOT_FOUND unless the caller may read it.",
    authScopes: { read: true },
    args: { legacyId: t.arg.int({ required: true }) },
    resolve: async (query, _root, args, ctx) => {
      const id = await ctx.services.workspaces.byLegacyId(ctx, args.legacyId);
      return found(ctx.prisma.workspace.findUnique({ ...query, where: { id } }), "workspace", String(args.legacyId));
    },
  }),
  myInvitations: t.prismaConnection({
    type: WorkspaceInvitationType,
    cursor: "id",
    ...pageSize,
    description:
      "Open invitations to the signed-in user's confirmed email address, newest first: accept or decline them. " +
      "Each shows the workspace's id and name, though the invitee is not a member yet.",
    authScopes: { session: true },
    totalCount: async (_parent, _args, ctx) => ctx.prisma.workspaceInvitation.count({ where: await ctx.services.workspaces.invitations.mine(ctx) }),
    resolve: async (query, _root, _args, ctx) =>
      ctx.prisma.workspaceInvitation.findMany({
        ...query,
        where: await ctx.services.workspaces.invitations.mine(ctx),
        orderBy: [{ createdAt: "desc" }, { id: "desc" }],
      }),
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
  inviteWorkspaceMember: t.prismaField({
    type: WorkspaceInvitationType,
    description:
      "Workspace admins invite an email address (only an owner invites an owner) and it is mailed the invitation; nobody joins until they accept. " +
      "The answer is the same whether or not the address has an account. Inviting an address again renews its open invitation.",
    authScopes: { write: true },
    args: { input: t.arg({ type: InviteWorkspaceMemberInput, required: true }) },
    resolve: async (query, _root, { input }, ctx) => {
      const { id } = await ctx.services.workspaces.invitations.invite(ctx, input);
      return found(ctx.prisma.workspaceInvitation.findUnique({ ...query, where: { id } }), "invitation", id);
    },
  }),
  revokeWorkspaceInvitation: t.prismaField({
    type: WorkspaceInvitationType,
    description: "Workspace admins withdraw an open invitation. One that was already answered or revoked is a CONFLICT.",
    authScopes: { write: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: async (query, _root, args, ctx) => {
      const { id } = await ctx.services.workspaces.invitations.revoke(ctx, String(args.id));
      return found(ctx.prisma.workspaceInvitation.findUnique({ ...query, where: { id } }), "invitation", id);
    },
  }),
  acceptWorkspaceInvitation: t.prismaField({
    type: WorkspaceMemberType,
    description:
      "The invitee (signed in with the invited, confirmed address) joins the workspace with the invited role. An expired, declined, revoked " +
      "or already accepted invitation is a CONFLICT; someone else's is NOT_FOUND.",
    authScopes: { session: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: async (query, _root, args, ctx) => {
      const key = await ctx.services.workspaces.invitations.accept(ctx, String(args.id));
      const where = { workspaceId_userId: { workspaceId: key.workspaceId, userId: key.userId } };
      return found(ctx.prisma.workspaceMember.findUnique({ ...query, where }), "workspace member", key.userId);
    },
  }),
  declineWorkspaceInvitation: t.prismaField({
    type: WorkspaceInvitationType,
    description: "The invitee says no. An invitation that is no longer open is a CONFLICT; someone else's is NOT_FOUND.",
    authScopes: { session: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: async (query, _root, args, ctx) => {
      const { id } = await ctx.services.workspaces.invitations.decline(ctx, String(args.id));
      return found(ctx.prisma.workspaceInvitation.findUnique({ ...query, where: { id } }), "invitation", id);
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
