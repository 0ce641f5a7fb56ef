// Tasks: work that runs once (api-web tasks with stages, api-v1 tasks, flow runs). People create,
// edit, cancel, retry and confirm suspended stages; machines claim the work that fits them and report
// on it while they hold the attempt's lease.
//
// Claiming is one SQL statement (FOR UPDATE SKIP LOCKED), so however many machines claim at once, a
// task goes to one of them. Each claim starts an attempt with a new lease token; the machine's
// heartbeat (machine module) renews the lease. A machine whose lease ran out, or whose task was
// claimed again by another attempt, gets CONFLICT with `leaseLost: true` and must stop.
// Lease times use the database clock, as the heartbeat's renewal does.
import { z } from "zod";
import { requireMachine, type MachineViewer } from "../../auth/viewer.js";
import { Prisma, type StageStatus, type TaskPriority, type TaskStatus } from "../../generated/prisma/client.js";
import { AppError, conflict, forbidden, notFound, parseInput, requireId, validationError } from "../../schema/errors.js";
import { id, idempotencyKey, int, jsonValue, list, name, text, uuid } from "../../schema/validation.js";
import type { WorkspaceNeed } from "../shared/access.js";
import { actorOf, audit } from "../shared/audit.js";
import type { DomainDeps } from "../shared/deps.js";
import { idempotentCreate } from "../shared/idempotency.js";
import { noteLogSourcesFinished, noteStatus, noteEvent, noteEvents, type WorkspaceEventType } from "../shared/live.js";
import { MAX_CLAIM, MAX_EVENT_DATA_BYTES, MAX_INPUT_BYTES, MAX_OUTPUT_BYTES, MAX_PROMPT_BYTES, MAX_STAGES, stageDefinition, type StageDefinition } from "./task-limits.js";
import { FINISHED_TASK_STATUSES, HELD_TASK_STATUSES } from "./task-statuses.js";
import type { RequestContext } from "../shared/request.js";

type Tx = Prisma.TransactionClient;

export const PRIORITY_RANK: Record<TaskPriority, number> = { LOW: 0, NORMAL: 1, HIGH: 2, URGENT: 3 };

const CANCELLABLE: TaskStatus[] = ["PENDING", ...HELD_TASK_STATUSES];
const RETRYABLE: TaskStatus[] = ["FAILED", "CANCELLED"];

const MAX_CAPABILITIES = 50;
const MAX_TEXT = 10_000;
const MAX_INSTRUCTIONS = 100_000;

const title = name(200);
const capabilities = list(name(100), MAX_CAPABILITIES, "capabilities").transform((values) => [...new Set(values)]);
const priority = z.enum(["LOW", "NORMAL", "HIGH", "URGENT"]);
const future = z.date().refine((d) => d.getTime() > Date.now(), "must be in the future");
const leaseToken = z.uuid("must be the lease token the claim returned").transform((token) => token.toLowerCase());

const createInput = z
  .object({
    workspaceId: id,
    projectId: uuid("a project").nullish(),
    projectKey: name(50).nullish(),
    title: title.nullish(),
    description: text(MAX_TEXT).nullish(),
    instructions: text(MAX_INSTRUCTIONS).nullish(),
    priority: priority.nullish(),
    deadline: future.nullish(),
    requiredCapabilities: capabilities.nullish(),
    targetMachineId: uuid("a machine").nullish(),
    targetAgentId: uuid("an agent").nullish(),
    input: jsonValue(MAX_INPUT_BYTES).nullish(),
    stages: list(stageDefinition, MAX_STAGES, "stages").nullish(),
    idempotencyKey: idempotencyKey.nullish(),
  })
  .superRefine((v, ctx) => {
    if (!v.title && !v.description?.trim()) {
      ctx.addIssue({ code: "custom", path: ["title"], message: "give the task a title (or a description to take it from)" });
    }
    if (v.projectId && v.projectKey) {
      ctx.addIssue({ code: "custom", path: ["projectKey"], message: "give projectId or projectKey, not both" });
    }
  });

const updateInput = z.object({
  id,
  title: title.optional(),
  description: text(MAX_TEXT).nullish(),
  instructions: text(MAX_INSTRUCTIONS).nullish(),
  priority: priority.optional(),
  deadline: future.nullish(),
  requiredCapabilities: capabilities.optional(),
  targetMachineId: uuid("a machine").nullish(),
  targetAgentId: uuid("an agent").nullish(),
  projectId: uuid("a project").nullish(),
  input: jsonValue(MAX_INPUT_BYTES).nullish(),
});

const confirmInput = z.object({
  taskId: id,
  stageIndex: z.int().min(0, "must be 0 or more"),
  result: text(MAX_TEXT),
});

const claimInput = z.object({
  limit: int(1, MAX_CLAIM).nullish(),
});

const leaseInput = z.object({ taskId: id, leaseToken });

const reportInput = leaseInput.extend({
  stageIndex: z.int().min(0, "must be 0 or more"),
  status: z.enum(["RUNNING", "SUCCEEDED", "FAILED", "SUSPENDED"]),
  prompt: jsonValue(MAX_PROMPT_BYTES).nullish(),
  output: jsonValue(MAX_OUTPUT_BYTES).nullish(),
  error: text(MAX_TEXT).nullish(),
});

const completeInput = leaseInput.extend({ output: jsonValue(MAX_OUTPUT_BYTES).nullish() });
const failInput = leaseInput.extend({
  error: text(MAX_TEXT).trim().min(1, "say what went wrong"),
  output: jsonValue(MAX_OUTPUT_BYTES).nullish(),
});

/** Types the service writes itself; a machine's own events use other names. */
const RESERVED_EVENT_PREFIXES = ["task.", "stage."];
const eventInput = leaseInput.extend({
  type: z
    .string()
    .regex(/^[a-z][a-z0-9_.-]{0,63}$/, "must be 1-64 lower-case letters, digits, '.', '_' or '-', starting with a letter")
    .refine((t) => !RESERVED_EVENT_PREFIXES.some((p) => t.startsWith(p)), "task.* and stage.* are reserved for the server's own events"),
  message: text(MAX_TEXT).min(1, "must not be empty"),
  data: jsonValue(MAX_EVENT_DATA_BYTES).nullish(),
});

/** Json columns take DbNull for SQL NULL; absent means "leave as is". */
export const json = (value: unknown): Prisma.InputJsonValue | typeof Prisma.DbNull =>
  value === null || value === undefined ? Prisma.DbNull : (value as Prisma.InputJsonValue);

function leaseLost(taskId: string, why: string, status: TaskStatus): AppError {
  return conflict(`Lease lost for task ${taskId}: ${why}. Stop working on this attempt`, { leaseLost: true, status });
}

const illegal = (action: string, taskId: string, status: TaskStatus) =>
  conflict(`Cannot ${action} task ${taskId}: it is ${status}`, { status });

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
export async function insertTask(tx: Tx, ctx: RequestContext, task: NewTask): Promise<{ id: string }> {
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
  await noteEvent(tx, {
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
async function announceTask(
  tx: Tx,
  task: { id: string; workspaceId: string },
  type: WorkspaceEventType,
  data: { action: string; status: TaskStatus; [key: string]: unknown },
  machineIds: (string | null | undefined)[] = [],
) {
  noteStatus(tx, "TASK", task.id, task.workspaceId);
  for (const machineId of new Set(machineIds)) noteStatus(tx, "MACHINE", machineId, task.workspaceId);
  await noteEvent(tx, { workspaceId: task.workspaceId, type, subjectType: "TASK", subjectId: task.id, data: { taskId: task.id, ...data } as Prisma.InputJsonValue });
  if (FINISHED_TASK_STATUSES.includes(data.status)) {
    await noteLogSourcesFinished(tx, [{ sourceId: task.id, sourceType: "TASK", workspaceId: task.workspaceId }]);
  }
}

interface HeldTask {
  id: string;
  workspaceId: string;
  status: TaskStatus;
  attempt: number;
  currentStage: number | null;
}

/**
 * Tasks of the workspace that the machine "me" (a CTE of the claim) may take, in claim order,
 * skipping rows other claimers hold. The workspace is a parameter, not only joined from "me": the
 * planner must see it to walk the claim index instead of sorting the whole queue.
 */
function claimableScan(workspaceId: string, limit: number, state: Prisma.Sql): Prisma.Sql {
  return Prisma.sql`
    SELECT t."id", t."status" AS "previousStatus", t."attempt" AS "previousAttempt",
           t."machineId" AS "previousMachineId", t."leaseExpiresAt" AS "previousLeaseExpiresAt",
           t."priorityRank", t."createdAt"
      FROM "Task" t, me
     WHERE t."workspaceId" = ${workspaceId}::uuid AND t."workspaceId" = me."workspaceId" AND ${state}
       AND COALESCE(t."requiredCapabilities", '{}') <@ me."capabilities"
       AND (t."targetMachineId" IS NULL OR t."targetMachineId" = me."id")
     ORDER BY t."priorityRank" DESC, t."createdAt" ASC, t."id" ASC
     LIMIT ${limit}
       FOR UPDATE OF t SKIP LOCKED`;
}

/** What the task module asks of others: the agent module resolves a task's target agent. */
export interface TaskCollaborators {
  agentTarget(workspaceId: string, agentId: string | null | undefined, field: string): Promise<{ agentId: string; machineId: string } | null>;
}

export function createTaskService(deps: DomainDeps, collaborators: TaskCollaborators) {
  const { prisma, config } = deps;
  const live = deps.live;

  async function loadForUser(ctx: RequestContext, id: string, need: WorkspaceNeed) {
    const task = await prisma.task.findUnique({
      where: { id: requireId(id, "task") },
      select: { id: true, workspaceId: true, status: true, attempt: true, title: true },
    });
    if (!task) throw notFound("task", id);
    await ctx.access.require(task.workspaceId, need, { type: "task", id });
    return task;
  }

  async function currentStatus(tx: Tx, id: string): Promise<TaskStatus> {
    return (await tx.task.findUniqueOrThrow({ where: { id }, select: { status: true } })).status;
  }

  /** A project of the workspace, by id or key, that is not archived; else VALIDATION naming `field`. */
  /** The project by id or key (any case), with its pipeline; null when neither is given. */
  async function projectIn(workspaceId: string, ref: { id?: string | null; key?: string | null }, field: string) {
    if (!ref.id && !ref.key) return null;
    const project = await prisma.project.findFirst({
      where: ref.id ? { id: ref.id, workspaceId } : { key: ref.key!.trim().toUpperCase(), workspaceId },
      select: { id: true, archivedAt: true, pipeline: true },
    });
    if (!project) throw validationError([{ field, message: "no such project in this workspace" }]);
    if (project.archivedAt) throw validationError([{ field, message: "the project is archived" }]);
    return project;
  }

  /**
   * A task created without stages gets its project's: the pipeline setting's `stages`, a list of
   * stage definitions (or plain stage names). A pipeline without `stages` means a task without.
   */
  function pipelineStages(pipeline: unknown, field: string): StageDefinition[] | undefined {
    const stages = pipeline && typeof pipeline === "object" && !Array.isArray(pipeline) ? (pipeline as { stages?: unknown }).stages : undefined;
    if (stages === undefined || stages === null) return undefined;
    const named = Array.isArray(stages) ? stages.map((stage) => (typeof stage === "string" ? { name: stage } : stage)) : stages;
    const parsed = list(stageDefinition, MAX_STAGES, "stages").safeParse(named);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw validationError([{ field, message: `the project's pipeline.stages${issue.path.length ? `.${issue.path.join(".")}` : ""} is not a valid stage list (${issue.message}): give stages, or fix the project's pipeline` }]);
    }
    return parsed.data;
  }

  /**
   * Where a task may run: an agent's task is its machine's (naming both, they must agree). A change
   * of target names the new one whole: a machine alone leaves no agent, no agent leaves no machine.
   */
  async function targetOf(workspaceId: string, input: { targetMachineId?: string | null; targetAgentId?: string | null }) {
    const agent = await collaborators.agentTarget(workspaceId, input.targetAgentId, "input.targetAgentId");
    const machineId = await machineIn(workspaceId, input.targetMachineId ?? agent?.machineId, input.targetMachineId ? "input.targetMachineId" : "input.targetAgentId");
    if (agent && machineId !== agent.machineId) {
      throw validationError([{ field: "input.targetMachineId", message: "the agent lives on another machine: leave targetMachineId out" }]);
    }
    return { targetMachineId: machineId, targetAgentId: agent?.agentId ?? null };
  }

  async function machineIn(workspaceId: string, machineId: string | null | undefined, field: string) {
    if (!machineId) return null;
    const machine = await prisma.machine.findFirst({ where: { id: machineId, workspaceId }, select: { id: true, decommissionedAt: true } });
    if (!machine) throw validationError([{ field, message: "no such machine in this workspace" }]);
    if (machine.decommissionedAt) throw validationError([{ field, message: "the machine is decommissioned" }]);
    return machine.id;
  }

  async function event(tx: Tx, ctx: RequestContext, task: { id: string; workspaceId: string; attempt: number }, type: string, message: string, data?: Prisma.InputJsonValue) {
    const actor = actorOf(ctx.viewer);
    return tx.taskEvent.create({
      data: { taskId: task.id, workspaceId: task.workspaceId, type, message, data, attempt: task.attempt, actorType: actor.actorType, actorId: actor.actorId },
      select: { id: true },
    });
  }

  /**
   * Locks the task and checks that the calling machine holds the live lease of its current attempt.
   * A task of another workspace, or one this machine never claimed, is NOT_FOUND; a lease of an
   * earlier attempt, or one that ran out, is CONFLICT "lease lost"; a status `action` cannot start
   * from is CONFLICT naming it.
   */
  async function holdLease(tx: Tx, machine: MachineViewer, taskId: string, token: string, action: string, from: TaskStatus[]): Promise<HeldTask> {
    requireId(taskId, "task");
    const [row] = await tx.$queryRaw<(HeldTask & { machineId: string | null; leaseToken: string | null; leaseLive: boolean | null })[]>`
      SELECT "id", "workspaceId", "status"::text AS "status", "attempt", "currentStage", "machineId", "leaseToken",
             ("leaseExpiresAt" > (now() AT TIME ZONE 'UTC')) AS "leaseLive"
        FROM "Task" WHERE "id" = ${taskId}::uuid
         FOR UPDATE`;
    if (!row || row.workspaceId !== machine.workspaceId) throw notFound("task", taskId);
    if (row.machineId !== machine.machineId || row.leaseToken !== token) {
      const everHeld =
        row.machineId === machine.machineId ||
        (await tx.taskEvent.findFirst({
          where: { taskId, type: "task.claimed", actorType: "MACHINE", actorId: machine.machineId },
          select: { id: true },
        }));
      if (!everHeld) throw notFound("task", taskId);
      throw leaseLost(taskId, `the task is on attempt ${row.attempt}${row.machineId && row.machineId !== machine.machineId ? " on another machine" : ""}, which this lease is not`, row.status);
    }
    if (!from.includes(row.status)) throw illegal(action, taskId, row.status);
    if (!row.leaseLive) throw leaseLost(taskId, "the lease expired (heartbeats renew it)", row.status);
    return row;
  }

  return {
    /** For other modules' transactions (flow runs): inserts a task, its stages and first event; the caller audits. */
    insert: insertTask,

    async create(ctx: RequestContext, raw: unknown): Promise<{ id: string }> {
      const input = parseInput(createInput, raw);
      const workspaceId = requireId(input.workspaceId, "workspace");
      await ctx.access.require(workspaceId, "write");
      const projectField = input.projectKey ? "input.projectKey" : "input.projectId";
      const project = await projectIn(workspaceId, { id: input.projectId, key: input.projectKey }, projectField);
      const projectId = project?.id ?? null;
      const stages = input.stages ?? (project ? pipelineStages(project.pipeline, projectField) : undefined);
      const { targetMachineId, targetAgentId } = await targetOf(workspaceId, input);
      const taskTitle = input.title ?? input.description!.trim().split("\n")[0]!.slice(0, 200);
      return live.run((batch) => idempotentCreate(prisma, ctx.viewer, "createTask", input.idempotencyKey, raw, batch.within(async (tx) => {
        const task = await insertTask(tx, ctx, {
          workspaceId,
          projectId,
          title: taskTitle,
          description: input.description,
          instructions: input.instructions,
          priority: input.priority,
          deadline: input.deadline,
          requiredCapabilities: input.requiredCapabilities,
          targetMachineId,
          targetAgentId,
          input: input.input,
          stages,
        });
        await audit(tx, ctx, { workspaceId, action: "task.create", targetType: "Task", targetId: task.id, data: { title: taskTitle } });
        return task;
      })));
    },

    /**
     * Descriptive fields (title, description, priority, deadline, project) can change at any time;
     * what decides where and how the task runs (instructions, capabilities, target machine, input)
     * only while it is PENDING.
     */
    async update(ctx: RequestContext, raw: unknown): Promise<{ id: string }> {
      const input = parseInput(updateInput, raw);
      const task = await loadForUser(ctx, input.id, "write");
      const data: Prisma.TaskUncheckedUpdateManyInput = {};
      if (input.title !== undefined) data.title = input.title;
      if (input.description !== undefined) data.description = input.description;
      if (input.priority !== undefined) Object.assign(data, { priority: input.priority, priorityRank: PRIORITY_RANK[input.priority] });
      if (input.deadline !== undefined) data.deadline = input.deadline;
      if (input.projectId !== undefined) data.projectId = (await projectIn(task.workspaceId, { id: input.projectId }, "input.projectId"))?.id ?? null;
      const scheduling: Record<string, unknown> = {};
      if (input.instructions !== undefined) scheduling.instructions = input.instructions;
      if (input.requiredCapabilities !== undefined) scheduling.requiredCapabilities = input.requiredCapabilities;
      if (input.targetMachineId !== undefined || input.targetAgentId !== undefined) Object.assign(scheduling, await targetOf(task.workspaceId, input));
      if (input.input !== undefined) scheduling.input = json(input.input);
      const fields = [...Object.keys(data), ...Object.keys(scheduling)].filter((f) => f !== "priorityRank");
      if (fields.length === 0) throw validationError([{ field: "input", message: "change at least one field" }]);

      return live.transaction(prisma, async (tx) => {
        const onlyPending = Object.keys(scheduling).length > 0;
        const { count } = await tx.task.updateMany({
          where: { id: task.id, ...(onlyPending ? { status: "PENDING" } : {}) },
          data: { ...data, ...scheduling },
        });
        if (count === 0) {
          const status = await currentStatus(tx, task.id);
          throw conflict(`Cannot change ${Object.keys(scheduling).join(", ")} of task ${task.id}: it is ${status} (only a PENDING task can be rescheduled)`, { status });
        }
        await event(tx, ctx, task, "task.updated", `Changed ${fields.join(", ")}`, { fields });
        await announceTask(tx, task, "task.updated", { action: "updated", status: await currentStatus(tx, task.id), fields });
        await audit(tx, ctx, { workspaceId: task.workspaceId, action: "task.update", targetType: "Task", targetId: task.id, data: { fields } });
        return { id: task.id };
      });
    },

    async cancel(ctx: RequestContext, id: string, reason: string | null | undefined): Promise<{ id: string }> {
      const why = parseInput(text(1000).nullish(), reason, "reason");
      const task = await loadForUser(ctx, id, "write");
      return live.transaction(prisma, async (tx) => {
        const now = new Date();
        const error = why ? `Cancelled: ${why}` : "Cancelled";
        const { count } = await tx.task.updateMany({
          where: { id: task.id, status: { in: CANCELLABLE } },
          data: { status: "CANCELLED", finishedAt: now, error },
        });
        if (count === 0) throw illegal("cancel", task.id, await currentStatus(tx, task.id));
        await tx.taskStage.updateMany({ where: { taskId: task.id, status: { in: ["RUNNING", "SUSPENDED"] } }, data: { status: "FAILED", error, finishedAt: now } });
        await tx.taskStage.updateMany({ where: { taskId: task.id, status: "PENDING" }, data: { status: "SKIPPED" } });
        await event(tx, ctx, task, "task.cancelled", error, why ? { reason: why } : undefined);
        const { machineId } = await tx.task.findUniqueOrThrow({ where: { id: task.id }, select: { machineId: true } });
        await announceTask(tx, task, "task.updated", { action: "cancelled", status: "CANCELLED", reason: why ?? null }, [machineId]);
        await audit(tx, ctx, { workspaceId: task.workspaceId, action: "task.cancel", targetType: "Task", targetId: task.id, data: why ? { reason: why } : undefined });
        return { id: task.id };
      });
    },

    /** Back to the queue as it was created: no machine, no lease, stages and results cleared. */
    async retry(ctx: RequestContext, id: string): Promise<{ id: string }> {
      const task = await loadForUser(ctx, id, "write");
      return live.transaction(prisma, async (tx) => {
        const { count } = await tx.task.updateMany({
          where: { id: task.id, status: { in: RETRYABLE } },
          data: {
            status: "PENDING",
            machineId: null,
            leaseToken: null,
            leaseExpiresAt: null,
            currentStage: null,
            output: Prisma.DbNull,
            error: null,
            startedAt: null,
            finishedAt: null,
          },
        });
        if (count === 0) throw illegal("retry", task.id, await currentStatus(tx, task.id));
        await tx.taskStage.updateMany({
          where: { taskId: task.id },
          data: { status: "PENDING", result: null, output: Prisma.DbNull, error: null, startedAt: null, finishedAt: null },
        });
        await event(tx, ctx, task, "task.retried", `Back in the queue after attempt ${task.attempt}`);
        await announceTask(tx, task, "task.updated", { action: "retried", status: "PENDING" });
        await audit(tx, ctx, { workspaceId: task.workspaceId, action: "task.retry", targetType: "Task", targetId: task.id });
        return { id: task.id };
      });
    },

    /**
     * A person answers the stage the task is suspended on; the machine carries on with the next. The
     * lease is left alone: a live machine's heartbeats kept it fresh while the task waited, and a
     * dead machine's lease has run out, so the task goes to another machine at once.
     */
    async confirmStage(ctx: RequestContext, raw: unknown): Promise<{ id: string }> {
      const input = parseInput(confirmInput, raw);
      const task = await loadForUser(ctx, input.taskId, "write");
      return live.transaction(prisma, async (tx) => {
        const stageCount = await tx.taskStage.count({ where: { taskId: task.id } });
        const next = Math.min(input.stageIndex + 1, Math.max(stageCount - 1, 0));
        const { count } = await tx.task.updateMany({
          where: { id: task.id, status: "SUSPENDED", currentStage: input.stageIndex },
          data: { status: "RUNNING", currentStage: next },
        });
        if (count === 0) {
          const now = await tx.task.findUniqueOrThrow({ where: { id: task.id }, select: { status: true, currentStage: true } });
          if (now.status === "SUSPENDED") {
            throw conflict(`Cannot confirm stage ${input.stageIndex} of task ${task.id}: it is suspended on stage ${now.currentStage}`, {
              status: now.status,
              currentStage: now.currentStage,
              fields: [{ field: "input.stageIndex", message: `the task waits on stage ${now.currentStage}` }],
            });
          }
          throw conflict(`Cannot confirm a stage of task ${task.id}: it is ${now.status}, not SUSPENDED`, { status: now.status });
        }
        await tx.taskStage.update({
          where: { taskId_index: { taskId: task.id, index: input.stageIndex } },
          data: { status: "SUCCEEDED", result: input.result, finishedAt: new Date() },
        });
        await event(tx, ctx, task, "stage.confirmed", `Stage ${input.stageIndex} confirmed`, { stageIndex: input.stageIndex, result: input.result });
        await announceTask(tx, task, "task.updated", { action: "stageConfirmed", status: "RUNNING", stageIndex: input.stageIndex });
        await audit(tx, ctx, { workspaceId: task.workspaceId, action: "task.confirmStage", targetType: "Task", targetId: task.id, data: { stageIndex: input.stageIndex } });
        return { id: task.id };
      });
    },

    /**
     * Counts by status and by priority (two grouped statements). `flowId` narrows to one flow's runs.
     */
    async stats(ctx: RequestContext, args: { workspaceId: string; projectId?: string | null; flowId?: string | null }) {
      const workspaceId = requireId(args.workspaceId, "workspace");
      await ctx.access.require(workspaceId, "read");
      const where: Prisma.TaskWhereInput = { workspaceId };
      if (args.projectId) where.projectId = parseInput(uuid("a project"), args.projectId, "projectId");
      if (args.flowId) where.flowId = parseInput(uuid("a flow"), args.flowId, "flowId");
      const [byStatus, byPriority] = await Promise.all([
        prisma.task.groupBy({ by: ["status"], where, _count: { _all: true } }),
        prisma.task.groupBy({ by: ["priority"], where, _count: { _all: true } }),
      ]);
      const statusCounts = new Map(byStatus.map((g) => [g.status, g._count._all]));
      const priorityCounts = new Map(byPriority.map((g) => [g.priority, g._count._all]));
      const statuses: TaskStatus[] = ["PENDING", "ASSIGNED", "RUNNING", "SUSPENDED", "SUCCEEDED", "FAILED", "CANCELLED"];
      const priorities: TaskPriority[] = ["LOW", "NORMAL", "HIGH", "URGENT"];
      return {
        total: byStatus.reduce((sum, g) => sum + g._count._all, 0),
        byStatus: statuses.map((status) => ({ status, count: statusCounts.get(status) ?? 0 })),
        byPriority: priorities.map((p) => ({ priority: p, count: priorityCounts.get(p) ?? 0 })),
      };
    },

    /**
     * Hands the calling machine up to `limit` tasks it can run, in priority order: PENDING ones, and
     * ASSIGNED/RUNNING ones whose lease ran out (that attempt is abandoned, its stages start over).
     * A machine that is not approved gets FORBIDDEN; one that is draining or not schedulable gets an
     * empty list (it keeps polling and finishes what it holds).
     */
    async claim(ctx: RequestContext, raw: unknown): Promise<string[]> {
      const me = requireMachine(ctx.viewer);
      const input = parseInput(claimInput, raw ?? {});
      const limit = input.limit ?? 1;
      const machine = await prisma.machine.findUnique({ where: { id: me.machineId }, select: { approval: true, name: true } });
      if (!machine) throw notFound("machine", me.machineId);
      if (machine.approval !== "APPROVED") {
        throw forbidden(`Machine ${machine.name} is ${machine.approval === "PENDING" ? "awaiting approval by a workspace administrator" : "rejected"}; it cannot claim work`);
      }
      const leaseSeconds = config.domain.taskLeaseSeconds;
      return live.transaction(prisma, async (tx) => {
        // The machine row is share-locked so that a drain or decommission committing meanwhile
        // waits for this claim and then sees (and requeues) what it took.
        const rows = await tx.$queryRaw<{ id: string; attempt: number; previousMachineId: string | null }[]>`
          WITH me AS (
            SELECT "id", "workspaceId", "name", COALESCE("capabilities", '{}') AS "capabilities"
              FROM "Machine"
             WHERE "id" = ${me.machineId}::uuid AND "approval" = 'APPROVED' AND "schedulable"
               AND "drainingSince" IS NULL AND "decommissionedAt" IS NULL
               FOR SHARE
          ),
          -- Waiting tasks and tasks whose lease ran out come from two ordered scans (the first walks
          -- the claim index instead of sorting the whole queue), merged in claim order. A row
          -- locked by a scan but not picked stays as it was.
          pending AS (${claimableScan(me.workspaceId, limit, Prisma.sql`t."status" = 'PENDING'`)}),
          expired AS (${claimableScan(
            me.workspaceId,
            limit,
            Prisma.sql`t."status" IN ('ASSIGNED', 'RUNNING') AND t."leaseExpiresAt" < (now() AT TIME ZONE 'UTC')`,
          )}),
          picked AS (
            SELECT * FROM (SELECT * FROM pending UNION ALL SELECT * FROM expired) AS candidates
             ORDER BY "priorityRank" DESC, "createdAt" ASC, "id" ASC
             LIMIT ${limit}
          ),
          claimed AS (
            UPDATE "Task" t
               SET "status" = 'ASSIGNED', "machineId" = ${me.machineId}::uuid, "attempt" = t."attempt" + 1,
                   "leaseToken" = gen_random_uuid(),
                   "leaseExpiresAt" = (now() AT TIME ZONE 'UTC') + make_interval(secs => ${leaseSeconds}::double precision),
                   "currentStage" = NULL, "output" = NULL, "error" = NULL, "startedAt" = NULL, "finishedAt" = NULL,
                   "updatedAt" = (now() AT TIME ZONE 'UTC')
              FROM picked p
             WHERE t."id" = p."id"
            RETURNING t."id", t."workspaceId", t."attempt", t."priorityRank", t."createdAt",
                      p."previousStatus", p."previousAttempt", p."previousMachineId", p."previousLeaseExpiresAt"
          ),
          reset AS (
            UPDATE "TaskStage" s
               SET "status" = 'PENDING', "result" = NULL, "output" = NULL, "error" = NULL, "startedAt" = NULL, "finishedAt" = NULL
              FROM claimed c
             WHERE s."taskId" = c."id" AND c."previousAttempt" > 0
          ),
          abandoned AS (
            INSERT INTO "TaskEvent" ("id", "taskId", "workspaceId", "type", "message", "data", "attempt", "actorType", "actorId", "at")
            SELECT gen_random_uuid(), c."id", c."workspaceId", 'task.lease_expired',
                   'Attempt ' || c."previousAttempt" || ' lost its lease while ' || c."previousStatus"::text || '; it is abandoned',
                   jsonb_build_object('machineId', c."previousMachineId", 'status', c."previousStatus"::text),
                   c."previousAttempt", 'SYSTEM'::"ActorType", NULL, c."previousLeaseExpiresAt"
              FROM claimed c
             WHERE c."previousStatus" <> 'PENDING'
          ),
          claim_events AS (
            INSERT INTO "TaskEvent" ("id", "taskId", "workspaceId", "type", "message", "data", "attempt", "actorType", "actorId", "at")
            SELECT gen_random_uuid(), c."id", c."workspaceId", 'task.claimed',
                   'Attempt ' || c."attempt" || ' claimed by machine ' || me."name",
                   jsonb_build_object('machineId', me."id"),
                   c."attempt", 'MACHINE'::"ActorType", me."id"::text, (now() AT TIME ZONE 'UTC')
              FROM claimed c, me
          )
          SELECT "id", "attempt", "previousMachineId" FROM claimed ORDER BY "priorityRank" DESC, "createdAt" ASC, "id" ASC`;
        if (rows.length > 0) {
          noteStatus(tx, "MACHINE", me.machineId, me.workspaceId);
          for (const row of rows) {
            noteStatus(tx, "TASK", row.id, me.workspaceId);
            // An abandoned attempt leaves its machine (which may have been draining on it).
            if (row.previousMachineId !== me.machineId) noteStatus(tx, "MACHINE", row.previousMachineId, me.workspaceId);
          }
          await noteEvents(
            tx,
            rows.map((row) => ({
              workspaceId: me.workspaceId,
              type: "task.updated" as const,
              subjectType: "TASK",
              subjectId: row.id,
              data: { taskId: row.id, action: "claimed", status: "ASSIGNED", attempt: row.attempt, machineId: me.machineId },
            })),
          );
          await audit(tx, ctx, {
            workspaceId: me.workspaceId,
            action: "task.claim",
            targetType: "Task",
            data: { taskIds: rows.map((r) => r.id) },
          });
        }
        return rows.map((r) => r.id);
      });
    },

    async start(ctx: RequestContext, raw: unknown): Promise<{ id: string }> {
      const me = requireMachine(ctx.viewer);
      const input = parseInput(leaseInput, raw);
      return live.transaction(prisma, async (tx) => {
        const task = await holdLease(tx, me, input.taskId, input.leaseToken, "start", ["ASSIGNED"]);
        await tx.task.update({ where: { id: task.id }, data: { status: "RUNNING", startedAt: new Date() } });
        await event(tx, ctx, task, "task.started", `Attempt ${task.attempt} started`);
        await announceTask(tx, task, "task.updated", { action: "started", status: "RUNNING", attempt: task.attempt });
        await audit(tx, ctx, { workspaceId: task.workspaceId, action: "task.start", targetType: "Task", targetId: task.id });
        return { id: task.id };
      });
    },

    /**
     * A stage's progress. SUSPENDED (only for a stage that requires confirmation) suspends the task
     * until a person confirms it.
     */
    async reportStage(ctx: RequestContext, raw: unknown): Promise<{ id: string }> {
      const me = requireMachine(ctx.viewer);
      const input = parseInput(reportInput, raw);
      const allowedFrom: Record<typeof input.status, StageStatus[]> = {
        RUNNING: ["PENDING", "FAILED"],
        SUCCEEDED: ["PENDING", "RUNNING"],
        FAILED: ["PENDING", "RUNNING"],
        SUSPENDED: ["PENDING", "RUNNING"],
      };
      return live.transaction(prisma, async (tx) => {
        const task = await holdLease(tx, me, input.taskId, input.leaseToken, "report a stage of", ["RUNNING"]);
        const stage = await tx.taskStage.findUnique({ where: { taskId_index: { taskId: task.id, index: input.stageIndex } } });
        if (!stage) {
          const count = await tx.taskStage.count({ where: { taskId: task.id } });
          throw validationError([{ field: "input.stageIndex", message: count ? `the task has stages 0 to ${count - 1}` : "the task has no stages" }]);
        }
        if (input.status === "SUSPENDED" && !stage.requiresConfirmation) {
          throw validationError([{ field: "input.status", message: `stage ${stage.index} (${stage.name}) does not require confirmation, so it cannot suspend` }]);
        }
        if (!allowedFrom[input.status].includes(stage.status)) {
          throw conflict(`Cannot report stage ${stage.index} of task ${task.id} as ${input.status}: the stage is ${stage.status}`, { status: task.status, stageStatus: stage.status });
        }
        const now = new Date();
        const stageData: Prisma.TaskStageUpdateInput = { status: input.status };
        if (input.status === "RUNNING") Object.assign(stageData, { startedAt: now, finishedAt: null, error: null });
        if (input.status === "SUCCEEDED" || input.status === "FAILED") Object.assign(stageData, { finishedAt: now, startedAt: stage.startedAt ?? now });
        if (input.status === "SUSPENDED") stageData.startedAt = stage.startedAt ?? now;
        if (input.output !== undefined) stageData.output = json(input.output);
        if (input.error !== undefined) stageData.error = input.error;
        if (input.prompt !== undefined && input.prompt !== null) stageData.prompt = json(input.prompt);
        await tx.taskStage.update({ where: { taskId_index: { taskId: task.id, index: stage.index } }, data: stageData });
        await tx.task.update({
          where: { id: task.id },
          data: { currentStage: stage.index, ...(input.status === "SUSPENDED" ? { status: "SUSPENDED" } : {}) },
        });
        const verb = { RUNNING: "started", SUCCEEDED: "succeeded", FAILED: "failed", SUSPENDED: "waits for confirmation" }[input.status];
        await event(tx, ctx, task, `stage.${input.status.toLowerCase()}`, `Stage ${stage.index} (${stage.name}) ${verb}${input.error ? `: ${input.error}` : ""}`, {
          stageIndex: stage.index,
          name: stage.name,
        });
        await announceTask(tx, task, "task.updated", {
          action: "stage",
          status: input.status === "SUSPENDED" ? "SUSPENDED" : "RUNNING",
          stageIndex: stage.index,
          stageStatus: input.status,
        });
        await audit(tx, ctx, {
          workspaceId: task.workspaceId,
          action: "task.reportStage",
          targetType: "Task",
          targetId: task.id,
          data: { stageIndex: stage.index, status: input.status },
        });
        return { id: task.id };
      });
    },

    async complete(ctx: RequestContext, raw: unknown): Promise<{ id: string }> {
      const me = requireMachine(ctx.viewer);
      const input = parseInput(completeInput, raw);
      return live.transaction(prisma, async (tx) => {
        const task = await holdLease(tx, me, input.taskId, input.leaseToken, "complete", ["RUNNING"]);
        await tx.task.update({ where: { id: task.id }, data: { status: "SUCCEEDED", output: json(input.output), finishedAt: new Date() } });
        await tx.taskStage.updateMany({ where: { taskId: task.id, status: "PENDING" }, data: { status: "SKIPPED" } });
        await event(tx, ctx, task, "task.succeeded", `Attempt ${task.attempt} succeeded`);
        await announceTask(tx, task, "task.completed", { action: "succeeded", status: "SUCCEEDED", attempt: task.attempt }, [me.machineId]);
        await audit(tx, ctx, { workspaceId: task.workspaceId, action: "task.complete", targetType: "Task", targetId: task.id });
        return { id: task.id };
      });
    },

    async fail(ctx: RequestContext, raw: unknown): Promise<{ id: string }> {
      const me = requireMachine(ctx.viewer);
      const input = parseInput(failInput, raw);
      return live.transaction(prisma, async (tx) => {
        const task = await holdLease(tx, me, input.taskId, input.leaseToken, "fail", HELD_TASK_STATUSES);
        const now = new Date();
        await tx.task.update({
          where: { id: task.id },
          data: { status: "FAILED", error: input.error, finishedAt: now, ...(input.output !== undefined ? { output: json(input.output) } : {}) },
        });
        await tx.taskStage.updateMany({ where: { taskId: task.id, status: { in: ["RUNNING", "SUSPENDED"] } }, data: { status: "FAILED", error: input.error, finishedAt: now } });
        await tx.taskStage.updateMany({ where: { taskId: task.id, status: "PENDING" }, data: { status: "SKIPPED" } });
        await event(tx, ctx, task, "task.failed", input.error);
        await announceTask(tx, task, "task.failed", { action: "failed", status: "FAILED", attempt: task.attempt, error: input.error.slice(0, 500) }, [me.machineId]);
        await audit(tx, ctx, { workspaceId: task.workspaceId, action: "task.fail", targetType: "Task", targetId: task.id, data: { error: input.error.slice(0, 500) } });
        return { id: task.id };
      });
    },

    /** A machine's note on the task it holds (progress, a warning); readers see it among the events. */
    async addEvent(ctx: RequestContext, raw: unknown): Promise<{ id: string }> {
      const me = requireMachine(ctx.viewer);
      const input = parseInput(eventInput, raw);
      return prisma.$transaction(async (tx) => {
        const task = await holdLease(tx, me, input.taskId, input.leaseToken, "add an event to", HELD_TASK_STATUSES);
        const created = await event(tx, ctx, task, input.type, input.message, input.data === null || input.data === undefined ? undefined : (input.data as Prisma.InputJsonValue));
        await audit(tx, ctx, { workspaceId: task.workspaceId, action: "task.addEvent", targetType: "Task", targetId: task.id, data: { type: input.type } });
        return created;
      });
    },

    /** Where-clause for the calling machine's own tasks in the statuses it holds. */
    assignedFilter(ctx: RequestContext, statuses: TaskStatus[] | null | undefined): Prisma.TaskWhereInput {
      const me = requireMachine(ctx.viewer);
      const wanted = statuses?.length ? statuses.filter((s) => HELD_TASK_STATUSES.includes(s)) : HELD_TASK_STATUSES;
      return { machineId: me.machineId, workspaceId: me.workspaceId, status: { in: wanted } };
    },

    /** Whether the viewer is the machine holding this task's lease (only it may see the token). */
    holdsLease(ctx: Pick<RequestContext, "viewer">, task: { machineId: string | null; status: TaskStatus }): boolean {
      return ctx.viewer.kind === "machine" && task.machineId === ctx.viewer.machineId && HELD_TASK_STATUSES.includes(task.status);
    },
  };
}

export type TaskService = ReturnType<typeof createTaskService>;
