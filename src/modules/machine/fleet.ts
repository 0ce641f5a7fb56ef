// The fleet read model: machines filtered by their derived status, and the fleet's counts.
import type { Prisma } from "../../generated/prisma/client.js";
import { requireId } from "../../schema/errors.js";
import type { DomainDeps } from "../shared/deps.js";
import type { RequestContext } from "../shared/request.js";
import { HELD_TASK_STATUSES, HELD_TASK_STATUSES_SQL } from "../task/task-statuses.js";
import { LIVE_WORKER_STATUSES, LIVE_WORKER_STATUSES_SQL } from "../worker/worker-statuses.js";
import type { MachineKit, MachineStatus } from "./machine-common.js";

export function createFleet(deps: DomainDeps, kit: MachineKit) {
  const { prisma, config } = deps;
  const { offlineCutoff } = kit;

  const busyWhere: Prisma.MachineWhereInput[] = [
    { tasks: { some: { status: { in: HELD_TASK_STATUSES } } } },
    { workers: { some: { status: { in: [...LIVE_WORKER_STATUSES] } } } },
  ];

  function statusWhere(status: MachineStatus, cutoff: Date): Prisma.MachineWhereInput {
    switch (status) {
      case "DECOMMISSIONED":
        return { decommissionedAt: { not: null } };
      case "ONLINE":
        return { decommissionedAt: null, drainingSince: null, lastHeartbeatAt: { gte: cutoff } };
      case "OFFLINE":
        return { decommissionedAt: null, drainingSince: null, OR: [{ lastHeartbeatAt: null }, { lastHeartbeatAt: { lt: cutoff } }] };
      case "DRAINING":
        return { decommissionedAt: null, drainingSince: { not: null }, OR: busyWhere };
      case "DRAINED":
        return { decommissionedAt: null, drainingSince: { not: null }, NOT: busyWhere };
    }
  }

  return {
    /** Where-clause for a list filtered by derived statuses (OR of them). */
    statusFilter(statuses: readonly MachineStatus[]): Prisma.MachineWhereInput {
      const cutoff = offlineCutoff();
      return { OR: statuses.map((status) => statusWhere(status, cutoff)) };
    },

    async requireMember(ctx: RequestContext, workspaceId: string) {
      await ctx.access.require(workspaceId, "read");
      return true;
    },

    /** Workspace admins may see enrollment tokens (and which token a machine came from). */
    /** For admin-only fields: the role is checked, so an admin's read-only key may read them. */
    async requireAdmin(ctx: RequestContext, workspaceId: string) {
      await ctx.access.requireToRead(workspaceId, "admin");
      return true;
    },

    /** Fleet counts in one statement. Statuses partition the machines that are not decommissioned. */
    async fleetOverview(ctx: RequestContext, workspaceId: string) {
      await ctx.access.require(requireId(workspaceId, "workspace"), "read");
      const offlineAfter = config.domain.machineOfflineAfterSeconds;
      const [row] = await prisma.$queryRaw<Record<string, number>[]>`
        WITH m AS (
          SELECT "decommissionedAt" IS NOT NULL AS gone,
                 "drainingSince" IS NOT NULL AS draining,
                 "lastHeartbeatAt" >= (now() AT TIME ZONE 'UTC') - make_interval(secs => ${offlineAfter}::double precision) AS fresh,
                 "approval" = 'PENDING' AS pending,
                 EXISTS (SELECT 1 FROM "Task" t WHERE t."machineId" = "Machine"."id" AND t."status" IN (${HELD_TASK_STATUSES_SQL}))
                 OR EXISTS (SELECT 1 FROM "Worker" w WHERE w."machineId" = "Machine"."id" AND w."status" IN (${LIVE_WORKER_STATUSES_SQL})) AS busy
            FROM "Machine" WHERE "workspaceId" = ${workspaceId}::uuid
        )
        SELECT
          (SELECT count(*) FROM m WHERE NOT gone)::int AS "total",
          (SELECT count(*) FROM m WHERE NOT gone AND NOT draining AND fresh IS TRUE)::int AS "online",
          (SELECT count(*) FROM m WHERE NOT gone AND NOT draining AND fresh IS NOT TRUE)::int AS "offline",
          (SELECT count(*) FROM m WHERE NOT gone AND draining AND busy)::int AS "draining",
          (SELECT count(*) FROM m WHERE NOT gone AND draining AND NOT busy)::int AS "drained",
          (SELECT count(*) FROM m WHERE NOT gone AND pending)::int AS "pendingApproval",
          (SELECT count(*) FROM m WHERE gone)::int AS "decommissioned",
          (SELECT count(*) FROM "Task" WHERE "workspaceId" = ${workspaceId}::uuid AND "status" = 'RUNNING')::int AS "runningTasks",
          (SELECT count(*) FROM "Task" WHERE "workspaceId" = ${workspaceId}::uuid AND "status" = 'PENDING')::int AS "pendingTasks",
          (SELECT count(*) FROM "Worker" WHERE "workspaceId" = ${workspaceId}::uuid AND "status" IN (${LIVE_WORKER_STATUSES_SQL}))::int AS "liveWorkers"`;
      return row!;
    },
  };
}
