// What the deployment module does when a machine leaves the fleet (decommission): its live
// services fail with the reason, and every service loses the machine (to be placed again by a
// redeploy). Offered to the machine module as a capability (domain.ts), run inside the caller's
// unit of work.
import { noteStatus } from "../shared/live.js";
import type { WorkTx } from "../shared/unit-of-work.js";
import { LIVE_SERVICE_STATUSES } from "../worker/worker-statuses.js";

export async function detachMachineServices(tx: WorkTx, machine: { id: string; workspaceId: string }, reason: string): Promise<{ services: number }> {
  const failed = await tx.service.updateManyAndReturn({
    where: { machineId: machine.id, status: { in: [...LIVE_SERVICE_STATUSES] } },
    data: { status: "FAILED", statusReason: reason, machineId: null },
    select: { id: true, deploymentId: true },
  });
  const detached = await tx.service.updateManyAndReturn({
    where: { machineId: machine.id },
    data: { machineId: null },
    select: { id: true, deploymentId: true },
  });
  for (const service of [...failed, ...detached]) {
    noteStatus(tx, "SERVICE", service.id, machine.workspaceId);
    noteStatus(tx, "DEPLOYMENT", service.deploymentId, machine.workspaceId);
  }
  return { services: failed.length + detached.length };
}
