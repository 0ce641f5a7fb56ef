// What a worker's move announces, in the move's own unit of work: used by the worker service's
// transitions and by a decommissioned machine's workers (machine-loss.ts) alike.
import type { WorkerStatus } from "../../generated/prisma/client.js";
import { noteEvent, noteLogSourcesFinished, noteStatus } from "../shared/live.js";
import type { WorkTx } from "../shared/unit-of-work.js";

/**
 * Status notices for the worker and the machines it left or went to; worker.online when it became
 * RUNNING, worker.offline when it stopped being RUNNING; the end of its log when it is DESTROYED.
 */
export async function announceWorker(
  tx: WorkTx,
  worker: { id: string; workspaceId: string; name: string; status: WorkerStatus },
  from: WorkerStatus | null,
  machineIds: (string | null)[],
  why: string | null,
): Promise<void> {
  noteStatus(tx, "WORKER", worker.id, worker.workspaceId);
  for (const machineId of new Set(machineIds)) noteStatus(tx, "MACHINE", machineId, worker.workspaceId);
  const online = worker.status === "RUNNING" && from !== "RUNNING";
  const offline = from === "RUNNING" && worker.status !== "RUNNING";
  if (online || offline) {
    noteEvent(tx, {
      workspaceId: worker.workspaceId,
      type: online ? "worker.online" : "worker.offline",
      subjectType: "WORKER",
      subjectId: worker.id,
      data: { workerId: worker.id, name: worker.name, status: worker.status, from, reason: why },
    });
  }
  if (worker.status === "DESTROYED") {
    await noteLogSourcesFinished(tx, [{ sourceId: worker.id, sourceType: "WORKER", workspaceId: worker.workspaceId }]);
  }
}
