// The audit log in GraphQL (api-web /api/admin/audit-logs, api-v1 /admin/audit), per workspace.
import { builder, pageSize } from "../../schema/builder.js";
import { validationError } from "../../schema/errors.js";
import { ActorTypeEnum } from "../shared/common.schema.js";
import { auditOrder } from "./audit.service.js";

export const AuditEntryType = builder.prismaObject("AuditEntry", {
  authScopes: (entry) => (entry.workspaceId ? { workspaceMember: entry.workspaceId } : { systemAdmin: true }),
  description: "One mutation: who (actor), what (action), on which object (target), when (at).",
  fields: (t) => ({
    id: t.exposeID("id"),
    action: t.exposeString("action", { description: "Dotted verb, e.g. workspace.member.add, graph.save" }),
    actorType: t.expose("actorType", { type: ActorTypeEnum }),
    actorId: t.exposeID("actorId", { nullable: true, description: "The user, API key or machine that acted" }),
    userId: t.exposeID("userId", { nullable: true, description: "The user behind a session or API key" }),
    targetType: t.exposeString("targetType"),
    targetId: t.exposeString("targetId", { nullable: true }),
    data: t.expose("data", { type: "JSON", nullable: true, description: "Details of the change" }),
    requestId: t.exposeString("requestId", { nullable: true }),
    at: t.expose("at", { type: "DateTime" }),
  }),
});

const AuditLogFilter = builder.inputType("AuditLogFilter", {
  fields: (t) => ({
    action: t.string({ description: "Exactly this action" }),
    actionPrefix: t.string({ description: 'Actions starting with this, e.g. "graph." or "workspace.member."' }),
    actorType: t.field({ type: ActorTypeEnum }),
    actorId: t.id(),
    userId: t.id(),
    targetType: t.string({ description: "e.g. Workspace, Project, GraphBlock, User" }),
    targetId: t.string(),
    since: t.field({ type: "DateTime", description: "At or after" }),
    until: t.field({ type: "DateTime", description: "Before" }),
  }),
});

builder.queryFields((t) => ({
  auditLog: t.prismaConnection({
    type: AuditEntryType,
    cursor: "id",
    ...pageSize,
    description: "What happened in a workspace, newest first. Workspace admins and owners.",
    authScopes: { read: true },
    args: {
      workspaceId: t.arg.id({ required: true }),
      filter: t.arg({ type: AuditLogFilter }),
    },
    totalCount: async (_parent, args, ctx) =>
      ctx.prisma.auditEntry.count({ where: await ctx.services.audit.logFilter(ctx, String(args.workspaceId), args.filter ?? {}) }),
    resolve: async (query, _root, args, ctx) => {
      const filter = args.filter ?? {};
      if (filter.action && filter.actionPrefix) {
        throw validationError([{ field: "filter.actionPrefix", message: "use either action or actionPrefix, not both" }]);
      }
      const where = await ctx.services.audit.logFilter(ctx, String(args.workspaceId), filter);
      return ctx.prisma.auditEntry.findMany({ ...query, where, orderBy: auditOrder });
    },
  }),
}));
