// The audit log: the mutations that change a workspace's things (and account administration) write
// their rows here, in the mutation's own transaction, so a change and its record commit or roll back
// together. Not every mutation writes one: README, "What the audit log holds", lists those that don't,
// and each of those says so with `unaudited(tx, why)`. A unit of work that does neither does not
// commit (unit-of-work.ts), so a forgotten entry fails the first test that runs the mutation.
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

/**
 * Why a unit of work writes no audit entry (README, "What the audit log holds", lists them):
 * - `account`: one's own account (sign-in, profile, password, two-factor);
 * - `apiKey`: one's own API keys;
 * - `telemetry`: heartbeats, log lines, tick counts below the error limit;
 * - `server`: what the server does by itself (offline marks, placement, log retention);
 * - `unchanged`: the request changed nothing (a repeated status, a claim that found no task);
 * - `replayed`: an idempotent retry answering the first request's result.
 */
export type UnauditedReason = "account" | "apiKey" | "telemetry" | "server" | "unchanged" | "replayed";

/** Where a unit of work keeps what its mutation decided about the audit log. */
export const AUDIT_MARK = Symbol("spindle.auditMark");

/** Each unit of work starts undecided; it may commit only once `audit` or `unaudited` was called. */
export interface AuditMark {
  decided: false | "entry" | UnauditedReason;
}

function markOf(tx: WorkTx): AuditMark {
  const mark = (tx as WorkTx & { readonly [AUDIT_MARK]?: AuditMark })[AUDIT_MARK];
  if (!mark) throw new Error("audit() and unaudited() take the unit of work's transaction (unit-of-work.ts)");
  return mark;
}

/** Written only inside a unit of work (unit-of-work.ts), so the entry commits with the change. */
export async function audit(tx: WorkTx, who: { viewer: Viewer; requestId?: string }, record: AuditRecord): Promise<void> {
  markOf(tx).decided = "entry";
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

/** This unit of work writes no audit entry, and says why (an entry written in it still counts). */
export function unaudited(tx: WorkTx, why: UnauditedReason): void {
  const mark = markOf(tx);
  if (mark.decided === false) mark.decided = why;
}
