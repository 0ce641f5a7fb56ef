import { readById } from "../shared/point-read.js";
import type { Prisma } from "../../generated/prisma/client.js";
import { builder, pageSize } from "../../schema/builder.js";
import { workspaceMembers } from "../shared/object-auth.js";
import { IDEMPOTENCY_KEY_DESCRIPTION } from "../shared/common.schema.js";
import { offsetSkip, searchText, TaskStatusEnum, TaskType } from "../task/task.schema.js";
import { MAX_OUTPUT_BYTES } from "../task/task-limits.js";
import { MAX_DEFINITION_BYTES } from "./flow.service.js";

export const FlowStatusEnum = builder.enumType("FlowStatus", {
  values: {
    DRAFT: { description: "Being edited; cannot run" },
    ACTIVE: { description: "Can run" },
    ARCHIVED: { description: "Frozen: cannot run or change until moved back to DRAFT" },
  } as const,
});

export const FlowType = builder.prismaObject("Flow", {
  authScopes: workspaceMembers,
  description: "A workflow definition; running it creates a task (a run) with one stage per step.",
  fields: (t) => ({
    id: t.exposeID("id"),
    workspaceId: t.exposeID("workspaceId"),
    name: t.exposeString("name"),
    description: t.exposeString("description", { nullable: true }),
    status: t.expose("status", { type: FlowStatusEnum }),
    version: t.exposeInt("version", { description: "Goes up by one with every change of the definition" }),
    definition: t.expose("definition", { type: "JSON", description: "{ steps: [{ name, requiresConfirmation?, prompt?, ... }], ... }" }),
    definitionText: t.exposeString("definitionText", {
      nullable: true,
      description: "The definition exactly as a client sent it as text (flows' definition_json); null when it was sent as JSON",
    }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    updatedAt: t.expose("updatedAt", { type: "DateTime" }),
    workspace: t.relation("workspace"),
    runs: t.relatedConnection("runs", {
      type: TaskType,
      cursor: "id",
      ...pageSize,
      totalCount: true,
      description: "Runs of this flow, newest first.",
      args: { status: t.arg({ type: [TaskStatusEnum] }), offset: t.arg.int() },
      query: (args) => ({
        where: args.status?.length ? { status: { in: args.status } } : {},
        orderBy: [{ createdAt: "desc" }, { id: "desc" }],
        ...offsetSkip(args),
      }),
    }),
  }),
});

builder.prismaObjectFields("Workspace", (t) => ({
  flows: t.relatedConnection("flows", {
    cursor: "id",
    ...pageSize,
    totalCount: true,
    description: "Flows, newest first.",
    args: {
      status: t.arg({ type: [FlowStatusEnum] }),
      search: t.arg.string({ description: "Case-insensitive text in the name or description" }),
      offset: t.arg.int(),
    },
    query: (args) => {
      const where: Prisma.FlowWhereInput = {};
      if (args.status?.length) where.status = { in: args.status };
      const search = searchText(args.search);
      if (search) where.OR = [{ name: { contains: search, mode: "insensitive" } }, { description: { contains: search, mode: "insensitive" } }];
      return { where, orderBy: [{ createdAt: "desc" }, { id: "desc" }], ...offsetSkip(args) };
    },
  }),
}));

const definitionDescription = `{ steps: [{ name, requiresConfirmation?, prompt? }], requiredCapabilities? }, at most ${MAX_DEFINITION_BYTES / 1024} KiB`;
const definitionTextDescription = `Instead of definition: JSON text kept exactly as sent (at most ${MAX_DEFINITION_BYTES / 1024} KiB). When it is a definition (an object with readable steps), definition is taken from it; any other JSON leaves the flow without steps`;

const CreateFlowInput = builder.inputType("CreateFlowInput", {
  fields: (t) => ({
    workspaceId: t.id({ required: true }),
    name: t.string({ required: true }),
    description: t.string(),
    definition: t.field({ type: "JSON", description: `${definitionDescription}; { steps: [] } if left out` }),
    definitionText: t.string({ description: definitionTextDescription }),
    status: t.field({ type: FlowStatusEnum, description: "DRAFT unless given" }),
    idempotencyKey: t.string({ description: IDEMPOTENCY_KEY_DESCRIPTION }),
  }),
});

const UpdateFlowInput = builder.inputType("UpdateFlowInput", {
  description: "Fields left out stay as they are. An ARCHIVED flow cannot change, except its status.",
  fields: (t) => ({
    id: t.id({ required: true }),
    name: t.string(),
    description: t.string(),
    definition: t.field({ type: "JSON", description: `${definitionDescription}; a different definition bumps the version` }),
    definitionText: t.string({ description: `${definitionTextDescription}; a different text bumps the version` }),
    status: t.field({
      type: FlowStatusEnum,
      description: "Moves the flow as setFlowStatus does, in the same transaction (its current status is no move); archiving comes after the other changes",
    }),
  }),
});

const RunFlowInput = builder.inputType("RunFlowInput", {
  fields: (t) => ({
    flowId: t.id({ required: true }),
    input: t.field({ type: "JSON" }),
    triggeredBy: t.string({ description: "manual (default), schedule, webhook ..." }),
    projectId: t.id(),
    idempotencyKey: t.string({ description: IDEMPOTENCY_KEY_DESCRIPTION }),
  }),
});

const RecordFlowRunInput = builder.inputType("RecordFlowRunInput", {
  description: "A run of the flow executed elsewhere, recorded as it stands.",
  fields: (t) => ({
    flowId: t.id({ required: true }),
    status: t.field({ type: TaskStatusEnum, required: true, description: "RUNNING, SUCCEEDED, FAILED or CANCELLED" }),
    input: t.field({ type: "JSON" }),
    output: t.field({ type: "JSON", description: `At most ${MAX_OUTPUT_BYTES / 1024} KiB` }),
    error: t.string(),
    triggeredBy: t.string({ description: "manual (default), schedule, webhook ..." }),
    startedAt: t.field({ type: "DateTime", description: "Default: finishedAt (now for a RUNNING run)" }),
    finishedAt: t.field({ type: "DateTime", description: "Default: now; none for a RUNNING run" }),
    idempotencyKey: t.string({ description: IDEMPOTENCY_KEY_DESCRIPTION }),
  }),
});

builder.queryFields((t) => ({
  flow: t.prismaField({
    type: FlowType,
    authScopes: { read: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: (query, _root, args, ctx) =>
      readById(ctx, "Flow", String(args.id), query, (id) => ctx.prisma.flow.findUnique({ ...query, where: { id } })),
  }),
}));

builder.mutationFields((t) => ({
  createFlow: t.prismaField({
    type: FlowType,
    description: "Creates a DRAFT flow, version 1.",
    authScopes: { write: true },
    args: { input: t.arg({ type: CreateFlowInput, required: true }) },
    resolve: async (query, _root, { input }, ctx) => {
      const { id } = await ctx.services.flows.create(ctx, input);
      return ctx.prisma.flow.findUniqueOrThrow({ ...query, where: { id } });
    },
  }),
  updateFlow: t.prismaField({
    type: FlowType,
    authScopes: { write: true },
    args: { input: t.arg({ type: UpdateFlowInput, required: true }) },
    resolve: async (query, _root, { input }, ctx) => {
      const { id } = await ctx.services.flows.update(ctx, input);
      return ctx.prisma.flow.findUniqueOrThrow({ ...query, where: { id } });
    },
  }),
  setFlowStatus: t.prismaField({
    type: FlowType,
    description: "DRAFT -> ACTIVE, ACTIVE -> DRAFT, DRAFT or ACTIVE -> ARCHIVED, ARCHIVED -> DRAFT. Anything else is a CONFLICT.",
    authScopes: { write: true },
    args: { id: t.arg.id({ required: true }), status: t.arg({ type: FlowStatusEnum, required: true }) },
    resolve: async (query, _root, args, ctx) => {
      const { id } = await ctx.services.flows.setStatus(ctx, String(args.id), args.status);
      return ctx.prisma.flow.findUniqueOrThrow({ ...query, where: { id } });
    },
  }),
  runFlow: t.prismaField({
    type: TaskType,
    description: "Runs an ACTIVE flow: a PENDING task titled after the flow, one stage per step, of the current version.",
    authScopes: { write: true },
    args: { input: t.arg({ type: RunFlowInput, required: true }) },
    resolve: async (query, _root, { input }, ctx) => {
      const { id } = await ctx.services.flows.run(ctx, input);
      return ctx.prisma.task.findUniqueOrThrow({ ...query, where: { id } });
    },
  }),
  recordFlowRun: t.prismaField({
    type: TaskType,
    description:
      "Records a run executed elsewhere (flows' POST /api/runs): a task of the flow at its current version with the given status, times, output and error, which no machine runs. Not for ARCHIVED flows. Its log stays open for lines written afterwards.",
    authScopes: { write: true },
    args: { input: t.arg({ type: RecordFlowRunInput, required: true }) },
    resolve: async (query, _root, { input }, ctx) => {
      const { id } = await ctx.services.flows.record(ctx, input);
      return ctx.prisma.task.findUniqueOrThrow({ ...query, where: { id } });
    },
  }),
  deleteFlow: t.id({
    description: "Deletes a flow (workspace admins). Its runs stay, as tasks without a flow. Returns the id.",
    authScopes: { write: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, args, ctx) => (await ctx.services.flows.delete(ctx, String(args.id))).id,
  }),
}));
