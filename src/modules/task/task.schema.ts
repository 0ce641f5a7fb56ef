import type { Prisma } from "../../generated/prisma/client.js";
import { builder, pageSize } from "../../schema/builder.js";
import { membersOrAssignedMachine } from "../shared/object-auth.js";
import { validationError } from "../../schema/errors.js";
import { readById } from "../shared/point-read.js";
import { isUuid } from "../../schema/validation.js";
import { ActorTypeEnum, IDEMPOTENCY_KEY_DESCRIPTION } from "../shared/common.schema.js";
import { MAX_CLAIM, MAX_INPUT_BYTES, MAX_OUTPUT_BYTES, MAX_STAGES } from "./task-limits.js";

export const TaskStatusEnum = builder.enumType("TaskStatus", {
  values: {
    PENDING: { description: "Waiting for a machine to claim it" },
    ASSIGNED: { description: "Claimed by a machine that has not started it yet" },
    RUNNING: { description: "Being worked on" },
    SUSPENDED: { description: "Waiting for a person to confirm the current stage (see pendingConfirmation)" },
    SUCCEEDED: { description: "Finished well" },
    FAILED: { description: "Finished with an error; can be retried" },
    CANCELLED: { description: "Stopped by a person; can be retried" },
  } as const,
});

export const TaskPriorityEnum = builder.enumType("TaskPriority", {
  description: "Machines claim higher priorities first, then older tasks first.",
  values: ["LOW", "NORMAL", "HIGH", "URGENT"] as const,
});

export const TaskStageStatusEnum = builder.enumType("TaskStageStatus", {
  values: {
    PENDING: { description: "Not started" },
    RUNNING: { description: "Being worked on" },
    SUSPENDED: { description: "Waiting for a person to confirm it" },
    SUCCEEDED: { description: "Done (for a confirmed stage, `result` holds the answer)" },
    FAILED: { description: "Ended with an error" },
    SKIPPED: { description: "Never ran: the task ended before it" },
  } as const,
});

const ReportedStageStatusEnum = builder.enumType("ReportedStageStatus", {
  description: "What a machine can report about a stage.",
  values: {
    RUNNING: { description: "The stage started (again, after a failure)" },
    SUCCEEDED: { description: "The stage is done" },
    FAILED: { description: "The stage failed (the task goes on until failTask)" },
    SUSPENDED: { description: "The stage needs a person's confirmation; the task suspends. Only for stages that require confirmation" },
  } as const,
});

const EventOrderEnum = builder.enumType("TaskEventOrder", {
  values: { OLDEST_FIRST: { description: "A timeline, oldest event first" }, NEWEST_FIRST: { description: "Latest first" } } as const,
});

const durationMs = (row: { startedAt: Date | null; finishedAt: Date | null }) =>
  row.startedAt && row.finishedAt ? row.finishedAt.getTime() - row.startedAt.getTime() : null;

const MAX_OFFSET = 10_000;

/** A filter id must be an id: a typo is an error, not an empty page. */
export function filterId(value: string | number | null | undefined, field: string): string | undefined {
  if (value == null) return undefined;
  const id = String(value);
  if (!isUuid(id)) throw validationError([{ field, message: "must be an id" }]);
  return id;
}

export function searchText(value: string | null | undefined): string | undefined {
  const search = value?.trim();
  if (!search) return undefined;
  if (search.length > 200) throw validationError([{ field: "search", message: "must be at most 200 characters" }]);
  return search;
}

/**
 * `offset` skips rows before the page, for clients that page by offset (api-web, api-v1); cursors
 * (`after`) work as usual and the offset counts from the cursor.
 */
export function offsetSkip(args: { offset?: number | null; after?: string | null; before?: string | null }) {
  if (args.offset == null) return {};
  if (args.offset < 0 || args.offset > MAX_OFFSET) throw validationError([{ field: "offset", message: `must be between 0 and ${MAX_OFFSET}` }]);
  return { skip: args.offset + (args.after != null || args.before != null ? 1 : 0) };
}

const offsetArgDescription = `Rows to skip before the page (0 to ${MAX_OFFSET}), for offset paging; counts from the cursor if one is given.`;

export const TaskStageType = builder.prismaObject("TaskStage", {
  description: "A step of a task (api-web stage, flow run step), in order by `index`.",
  fields: (t) => ({
    index: t.exposeInt("index"),
    name: t.exposeString("name"),
    requiresConfirmation: t.exposeBoolean("requiresConfirmation"),
    prompt: t.expose("prompt", { type: "JSON", nullable: true, description: "What a person is asked when the stage suspends" }),
    status: t.expose("status", { type: TaskStageStatusEnum }),
    result: t.exposeString("result", { nullable: true, description: "A person's answer to a confirmed stage" }),
    output: t.expose("output", { type: "JSON", nullable: true }),
    error: t.exposeString("error", { nullable: true }),
    startedAt: t.expose("startedAt", { type: "DateTime", nullable: true }),
    finishedAt: t.expose("finishedAt", { type: "DateTime", nullable: true }),
    durationMs: t.int({ nullable: true, resolve: durationMs }),
  }),
});

export const TaskEventType = builder.prismaObject("TaskEvent", {
  // Reached only through its task (which checks the machine is the task's) or addTaskEvent.
  authScopes: (event) => ({ $any: { workspaceMember: event.workspaceId, machineOf: event.workspaceId } }),
  description: "What happened to a task: task.* and stage.* transitions by the server, and a machine's own notes.",
  fields: (t) => ({
    id: t.exposeID("id"),
    type: t.exposeString("type", {
      description:
        "task.created, task.updated, task.claimed, task.lease_expired, task.started, task.succeeded, task.failed, task.cancelled, task.retried, task.requeued, stage.running, stage.succeeded, stage.failed, stage.suspended, stage.confirmed, or a type a machine chose",
    }),
    message: t.exposeString("message"),
    data: t.expose("data", { type: "JSON", nullable: true }),
    attempt: t.exposeInt("attempt", { description: "The attempt the event belongs to (0 before the first claim)" }),
    actorType: t.expose("actorType", { type: ActorTypeEnum }),
    actorId: t.exposeID("actorId", { nullable: true }),
    at: t.expose("at", { type: "DateTime" }),
  }),
});

interface PendingConfirmationShape {
  stage: { index: number; name: string; prompt: unknown; startedAt: Date | null };
}

const PendingConfirmation = builder.objectRef<PendingConfirmationShape>("PendingConfirmation").implement({
  description: "The stage a suspended task waits on; answer it with confirmTaskStage.",
  fields: (t) => ({
    stageIndex: t.int({ resolve: (p) => p.stage.index }),
    stageName: t.string({ resolve: (p) => p.stage.name }),
    prompt: t.field({ type: "JSON", nullable: true, resolve: (p) => p.stage.prompt }),
  }),
});

// One shape for every field that reads the stages, so the plugin loads them once with the task.
const STAGES_QUERY = { orderBy: { index: "asc" as const } };

export const TaskType = builder.prismaObject("Task", {
  authScopes: membersOrAssignedMachine,
  description: "Work that runs once: an api-web task with stages, an api-v1 task, or a flow run (flow set).",
  fields: (t) => ({
    id: t.exposeID("id"),
    workspaceId: t.exposeID("workspaceId"),
    title: t.exposeString("title"),
    description: t.exposeString("description", { nullable: true }),
    instructions: t.exposeString("instructions", { nullable: true }),
    priority: t.expose("priority", { type: TaskPriorityEnum }),
    deadline: t.expose("deadline", { type: "DateTime", nullable: true }),
    requiredCapabilities: t.exposeStringList("requiredCapabilities", {
      description: "A machine must have all of these capabilities to claim the task (api-v1 required_tools)",
    }),
    targetMachineId: t.exposeID("targetMachineId", { nullable: true, description: "Only this machine may claim the task" }),
    targetAgentId: t.exposeID("targetAgentId", { nullable: true, description: "The agent the task is for (api-v1 agent_id); its machine is targetMachineId" }),
    targetAgent: t.relation("targetAgent", { nullable: true }),
    input: t.expose("input", { type: "JSON", nullable: true }),
    output: t.expose("output", { type: "JSON", nullable: true, description: "The result (api-v1 result, flow run output)" }),
    error: t.exposeString("error", { nullable: true }),
    triggeredBy: t.exposeString("triggeredBy", { nullable: true, description: "For flow runs: manual, schedule, webhook ..." }),
    status: t.expose("status", { type: TaskStatusEnum }),
    attempt: t.exposeInt("attempt", { description: "How many times the task was claimed; each claim is an attempt with its own lease" }),
    leaseExpiresAt: t.expose("leaseExpiresAt", { type: "DateTime", nullable: true }),
    leaseToken: t.string({
      nullable: true,
      description: "The current attempt's lease token. Only the machine holding the task sees it; it goes with every report.",
      resolve: (task, _args, ctx) => (ctx.services.tasks.holdsLease(ctx, task) ? task.leaseToken : null),
    }),
    createdById: t.exposeID("createdById", { nullable: true }),
    flowVersion: t.exposeInt("flowVersion", { nullable: true, description: "For flow runs: the flow version that ran" }),
    startedAt: t.expose("startedAt", { type: "DateTime", nullable: true }),
    finishedAt: t.expose("finishedAt", { type: "DateTime", nullable: true }),
    durationMs: t.int({ nullable: true, description: "finishedAt - startedAt", resolve: durationMs }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    updatedAt: t.expose("updatedAt", { type: "DateTime" }),
    workspace: t.relation("workspace"),
    project: t.relation("project", { nullable: true }),
    flow: t.relation("flow", { nullable: true }),
    machine: t.relation("machine", { nullable: true, description: "The machine of the current or last attempt" }),
    stages: t.relation("stages", { query: STAGES_QUERY }),
    currentStageIndex: t.exposeInt("currentStage", { nullable: true }),
    currentStage: t.field({
      type: TaskStageType,
      nullable: true,
      select: { stages: STAGES_QUERY },
      resolve: (task) => (task.currentStage == null ? null : (task.stages.find((s) => s.index === task.currentStage) ?? null)),
    }),
    pendingConfirmation: t.field({
      type: PendingConfirmation,
      nullable: true,
      description: "While SUSPENDED: the stage waiting for confirmation and its prompt; null otherwise.",
      select: { stages: STAGES_QUERY },
      resolve: (task) => {
        if (task.status !== "SUSPENDED") return null;
        const stage = task.stages.find((s) => s.index === task.currentStage);
        return stage ? { stage } : null;
      },
    }),
    events: t.relatedConnection("events", {
      cursor: "id",
      ...pageSize,
      totalCount: true,
      args: {
        type: t.arg.stringList({ description: "Only events of these types" }),
        search: t.arg.string({ description: "Case-insensitive text in the message" }),
        order: t.arg({ type: EventOrderEnum, defaultValue: "OLDEST_FIRST" }),
        offset: t.arg.int({ description: offsetArgDescription }),
      },
      query: (args) => {
        const where: Prisma.TaskEventWhereInput = {};
        if (args.type?.length) where.type = { in: args.type };
        const search = searchText(args.search);
        if (search) where.message = { contains: search, mode: "insensitive" };
        const dir = args.order === "NEWEST_FIRST" ? ("desc" as const) : ("asc" as const);
        return { where, orderBy: [{ at: dir }, { id: dir }], ...offsetSkip(args) };
      },
    }),
  }),
});

const TaskStatusCount = builder.objectRef<{ status: string; count: number }>("TaskStatusCount").implement({
  fields: (t) => ({
    status: t.field({ type: TaskStatusEnum, resolve: (c) => c.status as never }),
    count: t.exposeInt("count"),
  }),
});

const TaskPriorityCount = builder.objectRef<{ priority: string; count: number }>("TaskPriorityCount").implement({
  fields: (t) => ({
    priority: t.field({ type: TaskPriorityEnum, resolve: (c) => c.priority as never }),
    count: t.exposeInt("count"),
  }),
});

const TaskStats = builder
  .objectRef<{ total: number; byStatus: { status: string; count: number }[]; byPriority: { priority: string; count: number }[] }>("TaskStats")
  .implement({
    fields: (t) => ({
      total: t.exposeInt("total"),
      byStatus: t.field({ type: [TaskStatusCount], description: "Every status, zeros included", resolve: (s) => s.byStatus }),
      byPriority: t.field({ type: [TaskPriorityCount], description: "Every priority, zeros included", resolve: (s) => s.byPriority }),
    }),
  });

builder.prismaObjectFields("Workspace", (t) => ({
  tasks: t.relatedConnection("tasks", {
    cursor: "id",
    ...pageSize,
    totalCount: true,
    description: "Tasks and flow runs, newest first.",
    args: {
      status: t.arg({ type: [TaskStatusEnum] }),
      priority: t.arg({ type: [TaskPriorityEnum] }),
      projectId: t.arg.id(),
      machineId: t.arg.id({ description: "Tasks whose current or last attempt ran on this machine" }),
      targetMachineId: t.arg.id({ description: "Tasks only this machine may claim (whether for one of its agents or not)" }),
      targetAgentId: t.arg.id({ description: "Tasks for this agent (api-v1 agent_id)" }),
      flowId: t.arg.id({ description: "Runs of this flow" }),
      flowRuns: t.arg.boolean({ description: "true: only flow runs; false: only tasks that are not flow runs" }),
      search: t.arg.string({ description: "Case-insensitive text in the title or description" }),
      offset: t.arg.int({ description: offsetArgDescription }),
    },
    query: (args) => {
      const where: Prisma.TaskWhereInput = {};
      if (args.status?.length) where.status = { in: args.status };
      if (args.priority?.length) where.priority = { in: args.priority };
      const projectId = filterId(args.projectId, "projectId");
      if (projectId) where.projectId = projectId;
      const machineId = filterId(args.machineId, "machineId");
      if (machineId) where.machineId = machineId;
      const targetMachineId = filterId(args.targetMachineId, "targetMachineId");
      if (targetMachineId) where.targetMachineId = targetMachineId;
      const targetAgentId = filterId(args.targetAgentId, "targetAgentId");
      if (targetAgentId) where.targetAgentId = targetAgentId;
      const flowId = filterId(args.flowId, "flowId");
      if (flowId) where.flowId = flowId;
      if (args.flowRuns != null) where.flowId = flowId ?? (args.flowRuns ? { not: null } : null);
      const search = searchText(args.search);
      if (search) {
        where.OR = [{ title: { contains: search, mode: "insensitive" } }, { description: { contains: search, mode: "insensitive" } }];
      }
      return { where, orderBy: [{ createdAt: "desc" }, { id: "desc" }], ...offsetSkip(args) };
    },
  }),
}));

const TaskStageInput = builder.inputType("TaskStageInput", {
  fields: (t) => ({
    name: t.string({ required: true }),
    requiresConfirmation: t.boolean({ description: "The machine may suspend the task on this stage until a person confirms it" }),
    prompt: t.field({ type: "JSON", description: "What to ask the person (a question, choices), at most 16 KiB" }),
  }),
});

const CreateTaskInput = builder.inputType("CreateTaskInput", {
  fields: (t) => ({
    workspaceId: t.id({ required: true }),
    projectId: t.id({ description: "A project of the same workspace" }),
    projectKey: t.string({ description: "The project by its key (api-web projectKey), instead of projectId" }),
    title: t.string({ description: "1-200 characters; defaults to the first line of the description" }),
    description: t.string(),
    instructions: t.string(),
    priority: t.field({ type: TaskPriorityEnum, description: "NORMAL unless given" }),
    deadline: t.field({ type: "DateTime" }),
    requiredCapabilities: t.stringList({ description: "Capabilities a machine needs to claim the task" }),
    targetMachineId: t.id({ description: "Only this machine (of the same workspace) may claim the task" }),
    targetAgentId: t.id({ description: "For this agent (api-v1 agent_id): only the agent's machine may claim the task" }),
    input: t.field({ type: "JSON", description: `At most ${MAX_INPUT_BYTES / 1024} KiB` }),
    stages: t.field({ type: [TaskStageInput], description: `Up to ${MAX_STAGES}, in order. Left out: the project's pipeline.stages (stage definitions or plain names), if it has any` }),
    idempotencyKey: t.string({ description: IDEMPOTENCY_KEY_DESCRIPTION }),
  }),
});

const UpdateTaskInput = builder.inputType("UpdateTaskInput", {
  description:
    "Fields left out stay as they are; null clears an optional one. instructions, requiredCapabilities, targetMachineId, targetAgentId and input change only while the task is PENDING; a new target is named whole (a machine alone clears the agent).",
  fields: (t) => ({
    id: t.id({ required: true }),
    title: t.string(),
    description: t.string(),
    instructions: t.string(),
    priority: t.field({ type: TaskPriorityEnum }),
    deadline: t.field({ type: "DateTime" }),
    requiredCapabilities: t.stringList(),
    targetMachineId: t.id(),
    targetAgentId: t.id(),
    projectId: t.id(),
    input: t.field({ type: "JSON" }),
  }),
});

const ConfirmTaskStageInput = builder.inputType("ConfirmTaskStageInput", {
  fields: (t) => ({
    taskId: t.id({ required: true }),
    stageIndex: t.int({ required: true, description: "The stage the task is suspended on" }),
    result: t.string({ required: true, description: "The answer: a confirmation, a choice, or input for the stage" }),
  }),
});

const ClaimTasksInput = builder.inputType("ClaimTasksInput", {
  fields: (t) => ({ limit: t.int({ description: `How many tasks to take at most, 1 to ${MAX_CLAIM} (default 1)` }) }),
});

const StartTaskInput = builder.inputType("StartTaskInput", {
  fields: (t) => ({
    taskId: t.id({ required: true }),
    leaseToken: t.string({ required: true, description: "The lease token of the claim" }),
  }),
});

const ReportTaskStageInput = builder.inputType("ReportTaskStageInput", {
  fields: (t) => ({
    taskId: t.id({ required: true }),
    leaseToken: t.string({ required: true, description: "The lease token of the claim" }),
    stageIndex: t.int({ required: true }),
    status: t.field({ type: ReportedStageStatusEnum, required: true }),
    prompt: t.field({ type: "JSON", description: "For SUSPENDED: what to ask (replaces the stage's prompt)" }),
    output: t.field({ type: "JSON" }),
    error: t.string(),
  }),
});

const CompleteTaskInput = builder.inputType("CompleteTaskInput", {
  fields: (t) => ({
    taskId: t.id({ required: true }),
    leaseToken: t.string({ required: true, description: "The lease token of the claim" }),
    output: t.field({ type: "JSON", description: `At most ${MAX_OUTPUT_BYTES / 1024} KiB` }),
  }),
});

const FailTaskInput = builder.inputType("FailTaskInput", {
  fields: (t) => ({
    taskId: t.id({ required: true }),
    leaseToken: t.string({ required: true, description: "The lease token of the claim" }),
    error: t.string({ required: true }),
    output: t.field({ type: "JSON" }),
  }),
});

const AddTaskEventInput = builder.inputType("AddTaskEventInput", {
  fields: (t) => ({
    taskId: t.id({ required: true }),
    leaseToken: t.string({ required: true, description: "The lease token of the claim" }),
    type: t.string({ required: true, description: "Lower-case, e.g. log, progress, warning; task.* and stage.* are the server's" }),
    message: t.string({ required: true }),
    data: t.field({ type: "JSON", description: "At most 64 KiB" }),
  }),
});

builder.queryFields((t) => ({
  task: t.prismaField({
    type: TaskType,
    authScopes: { read: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: (query, _root, args, ctx) =>
      readById(ctx, "Task", String(args.id), query, (id) => ctx.prisma.task.findUnique({ ...query, where: { id } })),
  }),
  taskStats: t.field({
    type: TaskStats,
    description: "Task counts of a workspace by status and by priority (api-v1 /tasks/stats).",
    authScopes: { read: true },
    args: { workspaceId: t.arg.id({ required: true }), projectId: t.arg.id(), flowId: t.arg.id() },
    resolve: (_root, args, ctx) =>
      ctx.services.tasks.stats(ctx, { workspaceId: String(args.workspaceId), projectId: args.projectId?.toString(), flowId: args.flowId?.toString() }),
  }),
  assignedTasks: t.prismaConnection({
    type: TaskType,
    cursor: "id",
    ...pageSize,
    description:
      "For a machine: the tasks it holds (ASSIGNED, RUNNING, SUSPENDED), with their lease tokens, in claim order. Poll it to see a suspended stage confirmed.",
    authScopes: { machine: true },
    args: { status: t.arg({ type: [TaskStatusEnum], description: "Narrow to some of the held statuses" }) },
    resolve: (query, _root, args, ctx) =>
      ctx.prisma.task.findMany({
        ...query,
        where: ctx.services.tasks.assignedFilter(ctx, args.status),
        orderBy: [{ priorityRank: "desc" }, { createdAt: "asc" }, { id: "asc" }],
      }),
  }),
}));

builder.mutationFields((t) => ({
  createTask: t.prismaField({
    type: TaskType,
    description: "Creates a PENDING task. The project and target machine must belong to the same workspace.",
    authScopes: { write: true },
    args: { input: t.arg({ type: CreateTaskInput, required: true }) },
    resolve: async (query, _root, { input }, ctx) => {
      const { id } = await ctx.services.tasks.create(ctx, input);
      return ctx.prisma.task.findUniqueOrThrow({ ...query, where: { id } });
    },
  }),
  updateTask: t.prismaField({
    type: TaskType,
    authScopes: { write: true },
    args: { input: t.arg({ type: UpdateTaskInput, required: true }) },
    resolve: async (query, _root, { input }, ctx) => {
      const { id } = await ctx.services.tasks.update(ctx, input);
      return ctx.prisma.task.findUniqueOrThrow({ ...query, where: { id } });
    },
  }),
  cancelTask: t.prismaField({
    type: TaskType,
    description: "Cancels a PENDING, ASSIGNED, RUNNING or SUSPENDED task; the machine's next report learns it.",
    authScopes: { write: true },
    args: { id: t.arg.id({ required: true }), reason: t.arg.string() },
    resolve: async (query, _root, args, ctx) => {
      const { id } = await ctx.services.tasks.cancel(ctx, String(args.id), args.reason);
      return ctx.prisma.task.findUniqueOrThrow({ ...query, where: { id } });
    },
  }),
  retryTask: t.prismaField({
    type: TaskType,
    description: "Puts a FAILED or CANCELLED task back in the queue (PENDING), with its stages and results cleared.",
    authScopes: { write: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: async (query, _root, args, ctx) => {
      const { id } = await ctx.services.tasks.retry(ctx, String(args.id));
      return ctx.prisma.task.findUniqueOrThrow({ ...query, where: { id } });
    },
  }),
  confirmTaskStage: t.prismaField({
    type: TaskType,
    description: "Answers the stage a SUSPENDED task waits on: the stage succeeds with the result, the task runs on.",
    authScopes: { write: true },
    args: { input: t.arg({ type: ConfirmTaskStageInput, required: true }) },
    resolve: async (query, _root, { input }, ctx) => {
      const { id } = await ctx.services.tasks.confirmStage(ctx, input);
      return ctx.prisma.task.findUniqueOrThrow({ ...query, where: { id } });
    },
  }),
  claimTasks: t.prismaField({
    type: [TaskType],
    description:
      "For a machine: takes up to `limit` tasks it can run (its capabilities cover requiredCapabilities; no other target machine), highest priority then oldest first, each as a new attempt with a lease (leaseToken). A draining or unschedulable machine gets an empty list; one awaiting approval gets FORBIDDEN.",
    authScopes: { machine: true },
    args: { input: t.arg({ type: ClaimTasksInput }) },
    resolve: async (query, _root, { input }, ctx) => {
      const ids = await ctx.services.tasks.claim(ctx, input ?? {});
      // Queried even when nothing was claimed, so the plugin sees its selection used.
      const rows = await ctx.prisma.task.findMany({ ...query, where: { id: { in: ids } } });
      const order = new Map(ids.map((id, i) => [id, i]));
      return rows.sort((a, b) => order.get(a.id)! - order.get(b.id)!);
    },
  }),
  startTask: t.prismaField({
    type: TaskType,
    description: "For the machine holding the lease: ASSIGNED -> RUNNING.",
    authScopes: { machine: true },
    args: { input: t.arg({ type: StartTaskInput, required: true }) },
    resolve: async (query, _root, { input }, ctx) => {
      const { id } = await ctx.services.tasks.start(ctx, input);
      return ctx.prisma.task.findUniqueOrThrow({ ...query, where: { id } });
    },
  }),
  reportTaskStage: t.prismaField({
    type: TaskType,
    description: "For the machine holding the lease of a RUNNING task: a stage started, succeeded, failed, or suspends for confirmation.",
    authScopes: { machine: true },
    args: { input: t.arg({ type: ReportTaskStageInput, required: true }) },
    resolve: async (query, _root, { input }, ctx) => {
      const { id } = await ctx.services.tasks.reportStage(ctx, input);
      return ctx.prisma.task.findUniqueOrThrow({ ...query, where: { id } });
    },
  }),
  completeTask: t.prismaField({
    type: TaskType,
    description: "For the machine holding the lease: RUNNING -> SUCCEEDED with the output.",
    authScopes: { machine: true },
    args: { input: t.arg({ type: CompleteTaskInput, required: true }) },
    resolve: async (query, _root, { input }, ctx) => {
      const { id } = await ctx.services.tasks.complete(ctx, input);
      return ctx.prisma.task.findUniqueOrThrow({ ...query, where: { id } });
    },
  }),
  failTask: t.prismaField({
    type: TaskType,
    description: "For the machine holding the lease: ASSIGNED, RUNNING or SUSPENDED -> FAILED with the error.",
    authScopes: { machine: true },
    args: { input: t.arg({ type: FailTaskInput, required: true }) },
    resolve: async (query, _root, { input }, ctx) => {
      const { id } = await ctx.services.tasks.fail(ctx, input);
      return ctx.prisma.task.findUniqueOrThrow({ ...query, where: { id } });
    },
  }),
  addTaskEvent: t.prismaField({
    type: TaskEventType,
    description: "For the machine holding the lease: a note (log, progress, warning ...) among the task's events.",
    authScopes: { machine: true },
    args: { input: t.arg({ type: AddTaskEventInput, required: true }) },
    resolve: async (query, _root, { input }, ctx) => {
      const { id } = await ctx.services.tasks.addEvent(ctx, input);
      return ctx.prisma.taskEvent.findUniqueOrThrow({ ...query, where: { id } });
    },
  }),
}));
