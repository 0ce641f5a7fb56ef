// Helpers the task module's parts share (task-commands.ts for people, task-claims.ts for machines):
// the task's own event log, the refusal of a transition a status does not allow, and how a task that
// ends early closes its stages.
import type { Prisma, TaskStatus } from "../../generated/prisma/client.js";
import { conflict } from "../../schema/errors.js";
import { actorOf } from "../shared/audit.js";
import type { RequestContext } from "../shared/request.js";
import type { WorkTx } from "../shared/unit-of-work.js";

/** The longest free text a task field, a stage's error or an event's message takes. */
export const MAX_TEXT = 10_000;

/** CONFLICT: the task's status does not allow `action`. */
export const illegal = (action: string, taskId: string, status: TaskStatus) =>
  conflict(`Cannot ${action} task ${taskId}: it is ${status}`, { status });

/** Appends an entry to the task's own event log (TaskEvent), by the viewer, in the task's current attempt. */
export async function writeTaskEvent(
  tx: WorkTx,
  ctx: RequestContext,
  task: { id: string; workspaceId: string; attempt: number },
  type: string,
  message: string,
  data?: Prisma.InputJsonValue,
) {
  const actor = actorOf(ctx.viewer);
  return tx.taskEvent.create({
    data: { taskId: task.id, workspaceId: task.workspaceId, type, message, data, attempt: task.attempt, actorType: actor.actorType, actorId: actor.actorId },
    select: { id: true },
  });
}

/**
 * A task ended before its stages did (failed, cancelled, lost with its machine): the stage under
 * way (or waiting for a person) fails with `error`, the ones not yet started are skipped.
 */
export async function closeOpenStages(tx: WorkTx, taskId: string | { in: string[] }, error: string, now: Date): Promise<void> {
  await tx.taskStage.updateMany({ where: { taskId, status: { in: ["RUNNING", "SUSPENDED"] } }, data: { status: "FAILED", error, finishedAt: now } });
  await tx.taskStage.updateMany({ where: { taskId, status: "PENDING" }, data: { status: "SKIPPED" } });
}
