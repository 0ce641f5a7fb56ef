// Creating a task: the row with its stages and its first event, and the live announcement every
// change of a task makes (a status notice, a workspace event). People's tasks (task-commands.ts) and
// flow runs (the flow module, through the task service's `insert`) are created here.
import { Prisma, type TaskPriority, type TaskStatus } from "../../generated/prisma/client.js";
import { actorOf } from "../shared/audit.js";
import { noteLogSourcesFinished, noteStatus, noteEvent, type WorkspaceEventType } from "../shared/live.js";
import type { RequestContext } from "../shared/request.js";
import type { WorkTx } from "../shared/unit-of-work.js";
import type { StageDefinition } from "./task-limits.js";
import { FINISHED_TASK_STATUSES } from "./task-statuses.js";

/** Stored beside the priority so that the claim orders by one indexed number. */
export const PRIORITY_RANK: Record<TaskPriority, number> = { LOW: 0, NORMAL: 1, HIGH: 2, URGENT: 3 };

/** Json columns take DbNull for SQL NULL; absent means "leave as is". */
export const json = (value: unknown): Prisma.InputJsonValue | typeof Prisma.DbNull =>
  value === null || value === undefined ? Prisma.DbNull : (value as Prisma.InputJsonValue);

/** The row a task is created from: a plain task or a flow run. */
export interface NewTask {
  workspaceId: string;
  projectId?: string | null;
  flowId?: string | null;
  flowVersion?: number | null;
  title: string;
  description?: string | null;
  instructions?: string | null;
  priority?: TaskPriority | null;
  deadline?: Date | null;
  requiredCapabilities?: string[] | null;
  targetMachineId?: string | null;
  targetAgentId?: string | null;
  input?: unknown;
  triggeredBy?: string | null;
  stages?: StageDefinition[] | null;
  /** A run executed elsewhere, recorded as it stands (flows' POST /api/runs): no machine claims it. */
  recorded?: { status: "RUNNING" | "SUCCEEDED" | "FAILED" | "CANCELLED"; output?: unknown; error?: string | null; startedAt: Date; finishedAt: Date | null };
}

/** Inserts a task with its stages and its first event; the caller audits. */
export async function insertTask(tx: WorkTx, ctx: RequestContext, task: NewTask): Promise<{ id: string }> {
  const actor = actorOf(ctx.viewer);
  const p = task.priority ?? "NORMAL";
  const created = await tx.task.create({
    data: {
      workspaceId: task.workspaceId,
      projectId: task.projectId ?? null,
      flowId: task.flowId ?? null,
      flowVersion: task.flowVersion ?? null,
      title: task.title,
      description: task.description ?? null,
      instructions: task.instructions ?? null,
      priority: p,
      priorityRank: PRIORITY_RANK[p],
      deadline: task.deadline ?? null,
      requiredCapabilities: task.requiredCapabilities ?? [],
      targetMachineId: task.targetMachineId ?? null,
      targetAgentId: task.targetAgentId ?? null,
      input: json(task.input),
      triggeredBy: task.triggeredBy ?? null,
      // RUNNING without a lease: the claim only takes a RUNNING task whose lease ran out.
      ...(task.recorded
        ? {
            status: task.recorded.status,
            output: json(task.recorded.output),
            error: task.recorded.error ?? null,
            startedAt: task.recorded.startedAt,
            finishedAt: task.recorded.finishedAt,
          }
        : {}),
      createdById: actor.userId,
      stages: task.stages?.length
        ? {
            create: task.stages.map((s, index) => ({
              index,
              name: s.name,
              requiresConfirmation: s.requiresConfirmation ?? false,
              prompt: json(s.prompt),
            })),
          }
        : undefined,
      events: {
        create: {
          workspaceId: task.workspaceId,
          type: "task.created",
          message: task.recorded
            ? `Run of flow "${task.title}" recorded as ${task.recorded.status} (executed elsewhere)`
            : task.flowId
              ? `Run of flow "${task.title}" created`
              : `Task "${task.title}" created`,
          data: { priority: p, stages: task.stages?.length ?? 0, ...(task.recorded ? { recorded: true } : {}) },
          attempt: 0,
          actorType: actor.actorType,
          actorId: actor.actorId,
        },
      },
    },
    select: { id: true },
  });
  noteStatus(tx, "TASK", created.id, task.workspaceId);
  noteEvent(tx, {
    workspaceId: task.workspaceId,
    type: "task.created",
    subjectType: "TASK",
    subjectId: created.id,
    data: { taskId: created.id, title: task.title, status: task.recorded?.status ?? "PENDING", priority: p, flowId: task.flowId ?? null },
  });
  return created;
}

/**
 * For the live streams, in the transaction of a task's change: a status notice for the task (and
 * for the machine it was on, whose draining may be over), and the workspace event.
 */
export async function announceTask(
  tx: WorkTx,
  task: { id: string; workspaceId: string },
  type: WorkspaceEventType,
  data: { action: string; status: TaskStatus; [key: string]: unknown },
  machineIds: (string | null | undefined)[] = [],
) {
  noteStatus(tx, "TASK", task.id, task.workspaceId);
  for (const machineId of new Set(machineIds)) noteStatus(tx, "MACHINE", machineId, task.workspaceId);
  noteEvent(tx, { workspaceId: task.workspaceId, type, subjectType: "TASK", subjectId: task.id, data: { taskId: task.id, ...data } as Prisma.InputJsonValue });
  if (FINISHED_TASK_STATUSES.includes(data.status)) {
    await noteLogSourcesFinished(tx, [{ sourceId: task.id, sourceType: "TASK", workspaceId: task.workspaceId }]);
  }
}
