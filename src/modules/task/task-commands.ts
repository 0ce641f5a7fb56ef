// What people do with tasks: create, edit, cancel, retry, confirm a suspended stage, and count them.
// Each checks the viewer's access to the task's workspace; the machine side is task-claims.ts.
import { z } from "zod";
import { Prisma, type TaskPriority, type TaskStatus } from "../../generated/prisma/client.js";
import { conflict, notFound, parseInput, requireId, validationError } from "../../schema/errors.js";
import { id, idempotencyKey, jsonValue, list, name, text, uuid } from "../../schema/validation.js";
import type { WorkspaceNeed } from "../shared/access.js";
import { audit } from "../shared/audit.js";
import type { DomainDeps } from "../shared/deps.js";
import type { RequestContext } from "../shared/request.js";
import type { WorkTx } from "../shared/unit-of-work.js";
import { closeOpenStages, illegal, MAX_TEXT, writeTaskEvent } from "./task-common.js";
import { announceTask, insertTask, json, PRIORITY_RANK } from "./task-insert.js";
import { MAX_INPUT_BYTES, MAX_STAGES, stageDefinition, type StageDefinition } from "./task-limits.js";
import { HELD_TASK_STATUSES } from "./task-statuses.js";

const CANCELLABLE: TaskStatus[] = ["PENDING", ...HELD_TASK_STATUSES];
const RETRYABLE: TaskStatus[] = ["FAILED", "CANCELLED"];

const MAX_CAPABILITIES = 50;
const MAX_INSTRUCTIONS = 100_000;

const title = name(200);
const capabilities = list(name(100), MAX_CAPABILITIES, "capabilities").transform((values) => [...new Set(values)]);
const priority = z.enum(["LOW", "NORMAL", "HIGH", "URGENT"]);
const future = z.date().refine((d) => d.getTime() > Date.now(), "must be in the future");

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

/** What the task module asks of others: the agent module resolves a task's target agent. */
export interface TaskCollaborators {
  agentTarget(workspaceId: string, agentId: string | null | undefined, field: string): Promise<{ agentId: string; machineId: string } | null>;
}

export function createTaskCommands(deps: Pick<DomainDeps, "prisma" | "work">, collaborators: TaskCollaborators) {
  const { prisma, work } = deps;

  async function loadForUser(ctx: RequestContext, id: string, need: WorkspaceNeed) {
    const task = await prisma.task.findUnique({
      where: { id: requireId(id, "task") },
      select: { id: true, workspaceId: true, status: true, attempt: true, title: true },
    });
    if (!task) throw notFound("task", id);
    await ctx.access.require(task.workspaceId, need, { type: "task", id });
    return task;
  }

  async function currentStatus(tx: WorkTx, id: string): Promise<TaskStatus> {
    return (await tx.task.findUniqueOrThrow({ where: { id }, select: { status: true } })).status;
  }

  /**
   * The project of the workspace by id or key (any case), with its pipeline; null when neither is
   * given, VALIDATION naming `field` when there is no such project or it is archived.
   */
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

  return {
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
      return work.create({ viewer: ctx.viewer, operation: "createTask", key: input.idempotencyKey, input: raw }, async (tx) => {
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
      });
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

      return work.run(async (tx) => {
        const onlyPending = Object.keys(scheduling).length > 0;
        const { count } = await tx.task.updateMany({
          where: { id: task.id, ...(onlyPending ? { status: "PENDING" } : {}) },
          data: { ...data, ...scheduling },
        });
        if (count === 0) {
          const status = await currentStatus(tx, task.id);
          throw conflict(`Cannot change ${Object.keys(scheduling).join(", ")} of task ${task.id}: it is ${status} (only a PENDING task can be rescheduled)`, { status });
        }
        await writeTaskEvent(tx, ctx, task, "task.updated", `Changed ${fields.join(", ")}`, { fields });
        await announceTask(tx, task, "task.updated", { action: "updated", status: await currentStatus(tx, task.id), fields });
        await audit(tx, ctx, { workspaceId: task.workspaceId, action: "task.update", targetType: "Task", targetId: task.id, data: { fields } });
        return { id: task.id };
      });
    },

    async cancel(ctx: RequestContext, id: string, reason: string | null | undefined): Promise<{ id: string }> {
      const why = parseInput(text(1000).nullish(), reason, "reason");
      const task = await loadForUser(ctx, id, "write");
      return work.run(async (tx) => {
        const now = new Date();
        const error = why ? `Cancelled: ${why}` : "Cancelled";
        const { count } = await tx.task.updateMany({
          where: { id: task.id, status: { in: CANCELLABLE } },
          data: { status: "CANCELLED", finishedAt: now, error },
        });
        if (count === 0) throw illegal("cancel", task.id, await currentStatus(tx, task.id));
        await closeOpenStages(tx, task.id, error, now);
        await writeTaskEvent(tx, ctx, task, "task.cancelled", error, why ? { reason: why } : undefined);
        const { machineId } = await tx.task.findUniqueOrThrow({ where: { id: task.id }, select: { machineId: true } });
        await announceTask(tx, task, "task.updated", { action: "cancelled", status: "CANCELLED", reason: why ?? null }, [machineId]);
        await audit(tx, ctx, { workspaceId: task.workspaceId, action: "task.cancel", targetType: "Task", targetId: task.id, data: why ? { reason: why } : undefined });
        return { id: task.id };
      });
    },

    /** Back to the queue as it was created: no machine, no lease, stages and results cleared. */
    async retry(ctx: RequestContext, id: string): Promise<{ id: string }> {
      const task = await loadForUser(ctx, id, "write");
      return work.run(async (tx) => {
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
        await writeTaskEvent(tx, ctx, task, "task.retried", `Back in the queue after attempt ${task.attempt}`);
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
      return work.run(async (tx) => {
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
        await writeTaskEvent(tx, ctx, task, "stage.confirmed", `Stage ${input.stageIndex} confirmed`, { stageIndex: input.stageIndex, result: input.result });
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
  };
}
