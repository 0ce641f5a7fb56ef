// What the worker module does when a machine leaves the fleet (decommission): its workers fail
// with the reason and lose the machine. Offered to the machine module as a capability (domain.ts),
// run inside the caller's unit of work.
import type { WorkerStatus } from "../../generated/prisma/client.js";
import type { Actor } from "../shared/audit.js";
import type { WorkTx } from "../shared/unit-of-work.js";
import { announceWorker } from "./worker-notices.js";

export async function failMachineWorkers(
  tx: WorkTx,
  machine: { id: string; workspaceId: string },
  reason: string,
  actor: Actor,
  now: Date,
): Promise<{ failedWorkerIds: string[] }> {
  // Locked, so that the transitions record the status each worker really left.
  const workers = await tx.$queryRaw<{ id: string; name: string; status: WorkerStatus }[]>`
    SELECT "id", "name", "status"::text AS "status" FROM "Worker"
     WHERE "machineId" = ${machine.id}::uuid AND "status" <> 'DESTROYED'
     FOR UPDATE`;
  if (workers.length === 0) return { failedWorkerIds: [] };
  await tx.worker.updateMany({
    where: { id: { in: workers.map((w) => w.id) } },
    data: { status: "FAILED", statusReason: reason, machineId: null },
  });
  await tx.workerTransition.createMany({
    data: workers.map((w) => ({
      workerId: w.id,
      from: w.status,
      to: "FAILED" as const,
      action: "machine.decommission",
      reason,
      actorType: actor.actorType,
      actorId: actor.actorId,
      at: now,
    })),
  });
  // The machine's own notice is the decommission's; each worker announces its move as any other.
  for (const worker of workers) {
    await announceWorker(tx, { ...worker, workspaceId: machine.workspaceId, status: "FAILED" }, worker.status, [], reason);
  }
  return { failedWorkerIds: workers.map((w) => w.id) };
}
