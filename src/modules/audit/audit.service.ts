// The audit log query: workspace admins and owners read who did what, newest first. Entries are
// written by the mutations that change something (shared/audit.ts), each in its own transaction.
import type { Prisma } from "../../generated/prisma/client.js";
import { requireId } from "../../schema/errors.js";
import type { RequestContext } from "../shared/request.js";
import type { DomainDeps } from "../shared/deps.js";

export interface AuditFilter {
  action?: string | null;
  actionPrefix?: string | null;
  actorType?: "USER" | "API_KEY" | "MACHINE" | "SYSTEM" | null;
  actorId?: string | null;
  userId?: string | null;
  targetType?: string | null;
  targetId?: string | null;
  since?: Date | null;
  until?: Date | null;
}

export const auditOrder = [{ at: "desc" as const }, { id: "desc" as const }];

export function createAuditService(deps: DomainDeps) {
  void deps;
  return {
    /** The where clause of a workspace's log, after checking that the caller administers it. */
    async logFilter(ctx: Pick<RequestContext, "access">, workspaceId: string, filter: AuditFilter = {}): Promise<Prisma.AuditEntryWhereInput> {
      await ctx.access.requireToRead(requireId(workspaceId, "workspace"), "admin");
      const at = {
        ...(filter.since ? { gte: filter.since } : {}),
        ...(filter.until ? { lt: filter.until } : {}),
      };
      return {
        workspaceId,
        ...(filter.action ? { action: filter.action } : {}),
        ...(filter.actionPrefix ? { action: { startsWith: filter.actionPrefix } } : {}),
        ...(filter.actorType ? { actorType: filter.actorType } : {}),
        ...(filter.actorId ? { actorId: filter.actorId } : {}),
        ...(filter.userId ? { userId: filter.userId } : {}),
        ...(filter.targetType ? { targetType: filter.targetType } : {}),
        ...(filter.targetId ? { targetId: filter.targetId } : {}),
        ...(filter.since || filter.until ? { at } : {}),
      };
    },
  };
}

export type AuditService = ReturnType<typeof createAuditService>;
