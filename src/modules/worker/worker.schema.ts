import type { Prisma } from "../../generated/prisma/client.js";
import { graphBlockKey } from "../loaders.js";
import { builder, pageSize } from "../../schema/builder.js";
import { readById } from "../shared/point-read.js";
import { maySeeSecrets, membersOrAssignedMachine } from "../shared/object-auth.js";
import { ActorTypeEnum, IDEMPOTENCY_KEY_DESCRIPTION } from "../shared/common.schema.js";
import { CODE_MAX_BYTES, JSON_MAX_BYTES } from "./worker.service.js";
import { WORKER_STATUSES } from "./worker-statuses.js";

export const WorkerKindEnum = builder.enumType("WorkerKind", {
  values: {
    CODE: { description: "AiSpinner code worker: runs the code of a graph block every tick" },
    CONTAINER: { description: "Spunto container worker: runs an image (through the machine's container runtime), or only a command as a process" },
  } as const,
});

export const WorkerStatusEnum = builder.enumType("WorkerStatus", {
  description:
    "deployWorker -> DEPLOYING; the machine reports RUNNING or FAILED; stop: DEPLOYING|RUNNING -> STOPPED; start: STOPPED|FAILED -> DEPLOYING; restart: RUNNING|FAILED -> DEPLOYING; redeploy: any but DESTROYED -> DEPLOYING; destroy: any but DESTROYED -> DESTROYED (final).",
  values: WORKER_STATUSES,
});

builder.prismaObject("WorkerTransition", {
  description: "One status change of a worker: from, to, why, who and when.",
  fields: (t) => ({
    id: t.exposeID("id"),
    from: t.expose("from", { type: WorkerStatusEnum, nullable: true, description: "Null for the deploy that created the worker" }),
    to: t.expose("to", { type: WorkerStatusEnum }),
    action: t.exposeString("action", {
      description: "deploy, start, stop, restart, redeploy, destroy (users); running, fail (the machine); heal (the system); machine.decommission (a decommissioned machine's workers)",
    }),
    reason: t.exposeString("reason", { nullable: true }),
    actorType: t.expose("actorType", { type: ActorTypeEnum }),
    actorId: t.exposeID("actorId", { nullable: true, description: "The user, API key or machine; null for the system" }),
    at: t.expose("at", { type: "DateTime" }),
  }),
});

export const WorkerType = builder.prismaObject("Worker", {
  authScopes: membersOrAssignedMachine,
  description: "A long-lived unit a machine keeps running: a CODE worker bound to a graph block, or a CONTAINER worker.",
  fields: (t) => ({
    id: t.exposeID("id"),
    workspaceId: t.exposeID("workspaceId"),
    workspace: t.relation("workspace"),
    kind: t.expose("kind", { type: WorkerKindEnum }),
    name: t.exposeString("name"),
    blockId: t.exposeString("blockId", { nullable: true, description: "The graph block a CODE worker runs (AiSpinner node_id)" }),
    block: t.prismaField({
      type: "GraphBlock",
      nullable: true,
      description: "The graph block a CODE worker runs; null once the block was removed from the graph",
      select: { workspaceId: true, blockId: true },
      resolve: (_query, worker, _args, ctx) =>
        // Worker.blockId is the client's block id, not a foreign key: the request's loader batches it.
        worker.blockId ? ctx.loaders.graphBlock.load(graphBlockKey(worker.workspaceId, worker.blockId)) : null,
    }),
    code: t.exposeString("code", { nullable: true }),
    runtime: t.exposeString("runtime", { nullable: true, description: "Null: the machine's default runtime" }),
    projectId: t.exposeID("projectId", { nullable: true }),
    project: t.relation("project", { nullable: true }),
    image: t.exposeString("image", { nullable: true }),
    command: t.exposeString("command", { nullable: true }),
    env: t.field({
      type: "JSON",
      nullable: true,
      description: "Environment variables, an object of strings. Null for viewers: only members and above, and the machine that runs the worker, see them",
      resolve: async (row, _args, ctx) => ((await maySeeSecrets(ctx, row)) ? row.env : null),
    }),
    tickIntervalSeconds: t.exposeInt("tickIntervalSeconds"),
    maxErrors: t.exposeInt("maxErrors", { description: "Errors in one run after which the worker FAILS" }),
    autoHeal: t.exposeBoolean("autoHeal", { description: "Redeploy by itself when the error budget runs out" }),
    connectedBlocks: t.expose("connectedBlocks", { type: "JSON" }),
    status: t.expose("status", { type: WorkerStatusEnum }),
    statusReason: t.exposeString("statusReason", { nullable: true }),
    revision: t.exposeInt("revision", { description: "Bumped by every deploy and redeploy; machines report against it" }),
    tickCount: t.exposeInt("tickCount", { description: "Ticks over the worker's life" }),
    errorCount: t.exposeInt("errorCount", { description: "Errors in the current run (reset on every start, restart, redeploy, heal)" }),
    lastTickAt: t.expose("lastTickAt", { type: "DateTime", nullable: true }),
    cpuPercent: t.exposeFloat("cpuPercent", { nullable: true, description: "Last reported CPU use" }),
    memoryBytes: t.float({
      nullable: true,
      description: "Last reported memory use in bytes (a Float: exact up to 2^53 bytes)",
      select: { memoryBytes: true },
      resolve: (worker) => (worker.memoryBytes == null ? null : Number(worker.memoryBytes)),
    }),
    machineId: t.exposeID("machineId", { nullable: true }),
    machine: t.relation("machine", { nullable: true, description: "Where it runs; null while waiting for a machine" }),
    createdById: t.exposeID("createdById", { nullable: true }),
    destroyedAt: t.expose("destroyedAt", { type: "DateTime", nullable: true }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    updatedAt: t.expose("updatedAt", { type: "DateTime" }),
    transitions: t.relatedConnection("transitions", {
      cursor: "id",
      ...pageSize,
      totalCount: true,
      description: "Status changes, newest first",
      query: () => ({ orderBy: [{ at: "desc" }, { id: "desc" }] }),
    }),
  }),
});

builder.prismaObjectFields("Workspace", (t) => ({
  workers: t.relatedConnection("workers", {
    cursor: "id",
    ...pageSize,
    totalCount: true,
    description: "Workers, newest first. Destroyed ones only when `status` asks for them.",
    args: {
      status: t.arg({ type: [WorkerStatusEnum], description: "Any of these (default: all but DESTROYED)" }),
      kind: t.arg({ type: WorkerKindEnum }),
      projectId: t.arg.id(),
      machineId: t.arg.id(),
      blockId: t.arg.string(),
      search: t.arg.string({ description: "Part of the name, any case" }),
    },
    query: (args) => {
      const where: Prisma.WorkerWhereInput = {
        status: args.status?.length ? { in: args.status } : { not: "DESTROYED" },
      };
      if (args.kind) where.kind = args.kind;
      if (args.projectId) where.projectId = String(args.projectId);
      if (args.machineId) where.machineId = String(args.machineId);
      if (args.blockId) where.blockId = args.blockId;
      if (args.search) where.name = { contains: args.search, mode: "insensitive" };
      return { where, orderBy: [{ createdAt: "desc" }, { id: "desc" }] };
    },
  }),
}));

const DeployWorkerInput = builder.inputType("DeployWorkerInput", {
  description:
    "A CODE worker needs blockId and code; a CONTAINER worker needs a name and an image or a command (a command alone runs as a process). Deploying to a block that already has a live CODE worker redeploys that worker (revision + 1) instead of creating a second one.",
  fields: (t) => ({
    workspaceId: t.id({ required: true }),
    kind: t.field({ type: WorkerKindEnum, required: true }),
    name: t.string({ description: "Default for CODE workers: the block's label" }),
    blockId: t.string({ description: "CODE: the graph block to run (AiSpinner node_id)" }),
    code: t.string({ description: `CODE: the source, at most ${CODE_MAX_BYTES / 1024} KiB` }),
    runtime: t.string(),
    projectId: t.id({ description: "A project of the same workspace (Spunto workers live in a project)" }),
    image: t.string({ description: "CONTAINER: the image to run" }),
    command: t.string({ description: "CONTAINER: overrides the image's command; without an image, what runs (/bin/sh -c) as a process" }),
    env: t.field({ type: "JSON", description: `An object of string values, at most ${JSON_MAX_BYTES / 1024} KiB` }),
    tickIntervalSeconds: t.int({ description: "1 to 86400 (default 10)" }),
    maxErrors: t.int({ description: "Errors in one run before it FAILS (default 5)" }),
    autoHeal: t.boolean({ description: "Default true" }),
    connectedBlocks: t.field({ type: "JSON", description: `A JSON object, at most ${JSON_MAX_BYTES / 1024} KiB` }),
    idempotencyKey: t.string({ description: IDEMPOTENCY_KEY_DESCRIPTION }),
  }),
});

const RedeployWorkerInput = builder.inputType("RedeployWorkerInput", {
  description: "New code or image and any settings; what is left out stays. Revision + 1, status DEPLOYING.",
  fields: (t) => ({
    id: t.id({ required: true }),
    code: t.string({ description: "CODE workers only" }),
    runtime: t.string({ description: "CODE workers only" }),
    image: t.string({ description: "CONTAINER workers only" }),
    command: t.string({ description: "CONTAINER workers only" }),
    env: t.field({ type: "JSON" }),
    tickIntervalSeconds: t.int(),
    maxErrors: t.int(),
    autoHeal: t.boolean(),
    connectedBlocks: t.field({ type: "JSON" }),
    reason: t.string(),
  }),
});

const UpdateWorkerSettingsInput = builder.inputType("UpdateWorkerSettingsInput", {
  description: "Applied at once, without a redeploy and without a status change. Give at least one.",
  fields: (t) => ({
    id: t.id({ required: true }),
    tickIntervalSeconds: t.int({ description: "1 to 86400" }),
    maxErrors: t.int({ description: "1 to 100000" }),
    autoHeal: t.boolean(),
    connectedBlocks: t.field({ type: "JSON" }),
  }),
});

const ReportedWorkerStatusEnum = builder.enumType("ReportedWorkerStatus", { values: ["RUNNING", "FAILED"] as const });

const ReportWorkerStatusInput = builder.inputType("ReportWorkerStatusInput", {
  fields: (t) => ({
    workerId: t.id({ required: true }),
    revision: t.int({ required: true, description: "The revision the machine runs" }),
    status: t.field({ type: ReportedWorkerStatusEnum, required: true }),
    reason: t.string(),
  }),
});

const ReportWorkerTicksInput = builder.inputType("ReportWorkerTicksInput", {
  description: "Counts since the previous report: they are added up.",
  fields: (t) => ({
    workerId: t.id({ required: true }),
    revision: t.int({ required: true }),
    ticks: t.int({ required: true }),
    errors: t.int({ required: true }),
    cpuPercent: t.float(),
    memoryBytes: t.float({ description: "Whole bytes" }),
    lastTickAt: t.field({ type: "DateTime", description: "Default: now, when ticks > 0" }),
  }),
});

builder.queryFields((t) => ({
  worker: t.prismaField({
    type: WorkerType,
    authScopes: { read: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: (query, _root, args, ctx) =>
      readById(ctx, "Worker", String(args.id), query, (id) => ctx.prisma.worker.findUnique({ ...query, where: { id } })),
  }),
  workerByBlock: t.prismaField({
    type: WorkerType,
    nullable: true,
    description: "The live (not destroyed) worker of a graph block (AiSpinner's /workers/{workspace}/{node}), or null.",
    authScopes: { read: true },
    args: { workspaceId: t.arg.id({ required: true }), blockId: t.arg.string({ required: true }) },
    resolve: async (query, _root, args, ctx) => {
      const found = await ctx.services.workers.byBlock(ctx, String(args.workspaceId), args.blockId);
      // Queried even when there is none, so the plugin sees its selection used.
      return ctx.prisma.worker.findFirst({ ...query, where: found ? { id: found.id } : { id: { in: [] } } });
    },
  }),
  assignedWorkers: t.prismaField({
    type: [WorkerType],
    description: "For a machine: the workers it must run now (DEPLOYING or RUNNING), with their code and settings. Anything else it runs, it should stop.",
    authScopes: { machine: true },
    resolve: (query, _root, _args, ctx) => ctx.prisma.worker.findMany({ ...query, ...ctx.services.workers.assignedArgs(ctx) }),
  }),
}));

builder.mutationFields((t) => {
  const byId = (action: "start" | "stop" | "restart" | "destroy", description: string) =>
    t.prismaField({
      type: WorkerType,
      description,
      authScopes: { write: true },
      args: { id: t.arg.id({ required: true }), reason: t.arg.string({ description: "Recorded with the transition" }) },
      resolve: async (query, _root, args, ctx) => {
        const { id } = await ctx.services.workers[action](ctx, String(args.id), args.reason);
        return ctx.prisma.worker.findUniqueOrThrow({ ...query, where: { id } });
      },
    });
  return {
    deployWorker: t.prismaField({
      type: WorkerType,
      description:
        "Deploys a worker (status DEPLOYING) on the least loaded machine that qualifies, or with no machine (\"waiting for a machine\"). A CODE worker deployed to a block that already has a live worker redeploys that worker instead.",
      authScopes: { write: true },
      args: { input: t.arg({ type: DeployWorkerInput, required: true }) },
      resolve: async (query, _root, args, ctx) => {
        const { id } = await ctx.services.workers.deploy(ctx, args.input);
        return ctx.prisma.worker.findUniqueOrThrow({ ...query, where: { id } });
      },
    }),
    startWorker: byId("start", "STOPPED or FAILED -> DEPLOYING"),
    stopWorker: byId("stop", "DEPLOYING or RUNNING -> STOPPED"),
    restartWorker: byId("restart", "RUNNING or FAILED -> DEPLOYING"),
    destroyWorker: byId("destroy", "Any status but DESTROYED -> DESTROYED, for good"),
    redeployWorker: t.prismaField({
      type: WorkerType,
      description: "New code, image or settings: revision + 1, any status but DESTROYED -> DEPLOYING",
      authScopes: { write: true },
      args: { input: t.arg({ type: RedeployWorkerInput, required: true }) },
      resolve: async (query, _root, args, ctx) => {
        const { id } = await ctx.services.workers.redeploy(ctx, args.input);
        return ctx.prisma.worker.findUniqueOrThrow({ ...query, where: { id } });
      },
    }),
    updateWorkerSettings: t.prismaField({
      type: WorkerType,
      description: "Changes settings at once: no redeploy, no status change",
      authScopes: { write: true },
      args: { input: t.arg({ type: UpdateWorkerSettingsInput, required: true }) },
      resolve: async (query, _root, args, ctx) => {
        const { id } = await ctx.services.workers.updateSettings(ctx, args.input);
        return ctx.prisma.worker.findUniqueOrThrow({ ...query, where: { id } });
      },
    }),
    reportWorkerStatus: t.prismaField({
      type: WorkerType,
      description:
        "For the worker's machine: the revision came up (DEPLOYING -> RUNNING) or could not run (-> FAILED). An old revision is a CONFLICT; repeating the current status changes nothing.",
      authScopes: { machine: true },
      args: { input: t.arg({ type: ReportWorkerStatusInput, required: true }) },
      resolve: async (query, _root, args, ctx) => {
        const { id } = await ctx.services.workers.reportStatus(ctx, args.input);
        return ctx.prisma.worker.findUniqueOrThrow({ ...query, where: { id } });
      },
    }),
    reportWorkerTicks: t.prismaField({
      type: WorkerType,
      description:
        "For the worker's machine: ticks and errors since the last report, CPU and memory. Reaching maxErrors FAILS the worker; with autoHeal it is redeployed at once.",
      authScopes: { machine: true },
      args: { input: t.arg({ type: ReportWorkerTicksInput, required: true }) },
      resolve: async (query, _root, args, ctx) => {
        const { id } = await ctx.services.workers.reportTicks(ctx, args.input);
        return ctx.prisma.worker.findUniqueOrThrow({ ...query, where: { id } });
      },
    }),
  };
});
