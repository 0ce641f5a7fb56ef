// Where a worker or a service runs. Shared by workers and deployments so that both count the same
// load: a machine's live workers plus its live services.
import type { Prisma } from "../../generated/prisma/client.js";
import { LIVE_SERVICE_STATUSES, LIVE_WORKER_STATUSES } from "./worker-statuses.js";

export const WAITING_FOR_MACHINE = "waiting for a machine";

type Tx = Pick<Prisma.TransactionClient, "machine">;

/**
 * The machine to run on: the current one while it still qualifies (moving a unit costs a restart),
 * otherwise the qualifying machine with the fewest live units, or null when none qualifies.
 * Qualifying: approved, schedulable, not draining, not decommissioned, heartbeat within the timeout.
 */
export async function placeOn(
  tx: Tx,
  workspaceId: string,
  current: string | null,
  offlineAfterSeconds: number,
): Promise<string | null> {
  const machines = await tx.machine.findMany({
    where: {
      workspaceId,
      approval: "APPROVED",
      schedulable: true,
      drainingSince: null,
      decommissionedAt: null,
      lastHeartbeatAt: { gte: new Date(Date.now() - offlineAfterSeconds * 1000) },
    },
    select: {
      id: true,
      _count: {
        select: {
          workers: { where: { status: { in: [...LIVE_WORKER_STATUSES] } } },
          services: { where: { status: { in: [...LIVE_SERVICE_STATUSES] } } },
        },
      },
    },
  });
  if (current && machines.some((m) => m.id === current)) return current;
  let best: { id: string; load: number } | null = null;
  for (const m of machines) {
    const load = m._count.workers + m._count.services;
    if (!best || load < best.load || (load === best.load && m.id < best.id)) best = { id: m.id, load };
  }
  return best?.id ?? null;
}
