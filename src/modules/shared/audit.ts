// The audit log: the mutations that change a workspace's things (and account administration) write
// their rows here, in the mutation's own transaction, so a change and its record commit or roll back
// together. Not every mutation writes one: README, "What the audit log holds", lists those that don't.
import type { Viewer } from "../../auth/viewer.js";
import type { ActorType, Prisma } from "../../generated/prisma/client.js";
import type { WorkTx } from "./live.js";

export interface Actor {
  actorType: ActorType;
  actorId: string | null;
  userId: string | null;
}

export function actorOf(viewer: Viewer): Actor {
  switch (viewer.kind) {
    case "session":
      return { actorType: "USER", actorId: viewer.userId, userId: viewer.userId };
    case "apiKey":
      return { actorType: "API_KEY", actorId: viewer.apiKeyId, userId: viewer.userId };
    case "machine":
      return { actorType: "MACHINE", actorId: viewer.machineId, userId: null };
    default:
      return { actorType: "SYSTEM", actorId: null, userId: null };
  }
}

export interface AuditRecord {
  workspaceId: string | null;
  /** Dotted verb, e.g. `worker.start`, `graph.save`, `machine.decommission`. */
  action: string;
  targetType: string;
  targetId?: string | null;
  data?: Prisma.InputJsonValue;
}

/** Written only inside a unit of work (unit-of-work.ts), so the entry commits with the change. */
type Tx = WorkTx;

export async function audit(tx: Tx, who: { viewer: Viewer; requestId?: string }, record: AuditRecord): Promise<void> {
  const actor = actorOf(who.viewer);
  await tx.auditEntry.create({
    data: {
      ...actor,
      workspaceId: record.workspaceId,
      action: record.action,
      targetType: record.targetType,
      targetId: record.targetId ?? null,
      data: record.data,
      requestId: who.requestId ?? null,
    },
  });
}
