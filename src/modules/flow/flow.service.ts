// Flows: workflow definitions (name, status, version, definition JSON). Running an ACTIVE flow
// creates a task (a run) whose stages are the definition's steps, recorded with the flow version
// it ran. A definition change bumps the version; an ARCHIVED flow is frozen until brought back to
// DRAFT.
import { z } from "zod";
import type { FlowStatus, Prisma } from "../../generated/prisma/client.js";
import { conflict, notFound, parseInput, requireId, validationError } from "../../schema/errors.js";
import type { WorkspaceNeed } from "../shared/access.js";
import { audit } from "../shared/audit.js";
import type { DomainDeps } from "../shared/deps.js";
import { idempotentCreate, requestHash } from "../shared/idempotency.js";
import { liveFor } from "../shared/live.js";
import { insertTask, jsonUpTo, MAX_INPUT_BYTES, MAX_STAGES, stageDefinition, type RequestCtx } from "../task/task.service.js";

export const MAX_DEFINITION_BYTES = 256 * 1024;

/** Legal status changes, by target: where each can come from. */
const TRANSITIONS: Record<FlowStatus, FlowStatus[]> = {
  ACTIVE: ["DRAFT"],
  DRAFT: ["ACTIVE", "ARCHIVED"],
  ARCHIVED: ["DRAFT", "ACTIVE"],
};
const refusal = (id: string, to: FlowStatus, current: FlowStatus) =>
  conflict(`Cannot ${to === "ACTIVE" ? `activate flow ${id}` : to === "ARCHIVED" ? `archive flow ${id}` : `move flow ${id} back to DRAFT`}: it is ${current}`, {
    status: current,
  });

/**
 * `{ steps: [{ name, requiresConfirmation?, prompt?, ...anything else the editor keeps }],
 * requiredCapabilities?: [..], ...}`; unknown keys are kept as they are.
 */
const definitionSchema = z
  .looseObject({
    steps: z.array(z.looseObject(stageDefinition.shape)).max(MAX_STAGES, `at most ${MAX_STAGES} steps`),
    requiredCapabilities: z.array(z.string().trim().min(1).max(100)).max(50).optional(),
  })
  .superRefine((value, ctx) => {
    const size = Buffer.byteLength(JSON.stringify(value));
    if (size > MAX_DEFINITION_BYTES) {
      ctx.addIssue({ code: "custom", message: `must be at most ${MAX_DEFINITION_BYTES / 1024} KiB of JSON (this is ${Math.ceil(size / 1024)} KiB)` });
    }
  });

const name = z.string().trim().min(1, "must not be empty").max(200, "must be at most 200 characters");
const description = z.string().max(10_000, "must be at most 10000 characters");

const createInput = z.object({
  workspaceId: z.string(),
  name,
  description: description.nullish(),
  definition: z.unknown().nullish(),
  idempotencyKey: z.string().nullish(),
});

const updateInput = z.object({
  id: z.string(),
  name: name.optional(),
  description: description.nullish(),
  definition: z.unknown().optional(),
});

const runInput = z.object({
  flowId: z.string(),
  input: jsonUpTo(MAX_INPUT_BYTES).nullish(),
  triggeredBy: z
    .string()
    .regex(/^[a-z][a-z0-9_.:-]{0,49}$/, "must be 1-50 lower-case letters, digits, '.', ':', '_' or '-' (manual, schedule, webhook ...)")
    .nullish(),
  projectId: z.uuid("must be a project id").nullish(),
  idempotencyKey: z.string().nullish(),
});

/** The definition checked; its size first, so a huge one is refused without walking it. */
function parseDefinition(raw: unknown, field: string): Prisma.InputJsonObject {
  if (raw === null || raw === undefined) return { steps: [] } as Prisma.InputJsonObject;
  const size = Buffer.byteLength(JSON.stringify(raw));
  if (size > MAX_DEFINITION_BYTES) {
    throw validationError([{ field, message: `must be at most ${MAX_DEFINITION_BYTES / 1024} KiB of JSON (this is ${Math.ceil(size / 1024)} KiB)` }]);
  }
  if (typeof raw !== "object" || Array.isArray(raw)) throw validationError([{ field, message: "must be an object like { steps: [{ name }] }" }]);
  return parseInput(definitionSchema, raw, field) as Prisma.InputJsonObject;
}

export function createFlowService(deps: DomainDeps) {
  const { prisma } = deps;
  const live = liveFor(deps);

  async function loadForUser(ctx: RequestCtx, id: string, need: WorkspaceNeed) {
    const flow = await prisma.flow.findUnique({
      where: { id: requireId(id, "flow") },
      select: { id: true, workspaceId: true, status: true, version: true, name: true, definition: true },
    });
    if (!flow) throw notFound("flow", id);
    await ctx.access.require(flow.workspaceId, need, { type: "flow", id });
    return flow;
  }

  return {
    requireReadable: (ctx: RequestCtx, id: string) => loadForUser(ctx, id, "read"),

    async create(ctx: RequestCtx, raw: unknown): Promise<{ id: string }> {
      const input = parseInput(createInput, raw);
      const definition = parseDefinition(input.definition, "input.definition");
      const workspaceId = requireId(input.workspaceId, "workspace");
      await ctx.access.require(workspaceId, "write");
      return idempotentCreate(prisma, ctx.viewer, "createFlow", input.idempotencyKey, raw, async (tx) => {
        const flow = await tx.flow.create({
          data: { workspaceId, name: input.name, description: input.description ?? null, definition },
          select: { id: true },
        });
        await audit(tx, ctx, { workspaceId, action: "flow.create", targetType: "Flow", targetId: flow.id, data: { name: input.name } });
        return flow;
      });
    },

    /** Name, description, definition; a definition that differs from the current one bumps the version. */
    async update(ctx: RequestCtx, raw: unknown): Promise<{ id: string }> {
      const input = parseInput(updateInput, raw);
      const definition = input.definition === undefined ? undefined : parseDefinition(input.definition, "input.definition");
      const flow = await loadForUser(ctx, input.id, "write");
      const changed = definition !== undefined && requestHash(definition) !== requestHash(flow.definition);
      const fields = [
        ...(input.name !== undefined ? ["name"] : []),
        ...(input.description !== undefined ? ["description"] : []),
        ...(definition !== undefined ? ["definition"] : []),
      ];
      if (fields.length === 0) throw validationError([{ field: "input", message: "change at least one of name, description, definition" }]);
      return prisma.$transaction(async (tx) => {
        const { count } = await tx.flow.updateMany({
          where: { id: flow.id, status: { not: "ARCHIVED" } },
          // updatedAt always, so that an unchanged definition still matches a row (and counts 1).
          data: {
            updatedAt: new Date(),
            ...(input.name !== undefined ? { name: input.name } : {}),
            ...(input.description !== undefined ? { description: input.description } : {}),
            ...(changed ? { definition, version: { increment: 1 } } : {}),
          },
        });
        if (count === 0) {
          throw conflict(`Cannot update flow ${flow.id}: it is ARCHIVED (move it back to DRAFT first)`, { status: "ARCHIVED" });
        }
        await audit(tx, ctx, { workspaceId: flow.workspaceId, action: "flow.update", targetType: "Flow", targetId: flow.id, data: { fields, versionBumped: changed } });
        return { id: flow.id };
      });
    },

    /** DRAFT <-> ACTIVE, either -> ARCHIVED, ARCHIVED -> DRAFT; anything else (same status too) is CONFLICT. */
    async setStatus(ctx: RequestCtx, id: string, status: FlowStatus): Promise<{ id: string }> {
      const flow = await loadForUser(ctx, id, "write");
      return prisma.$transaction(async (tx) => {
        const { count } = await tx.flow.updateMany({ where: { id: flow.id, status: { in: TRANSITIONS[status] } }, data: { status } });
        if (count === 0) {
          const current = (await tx.flow.findUniqueOrThrow({ where: { id: flow.id }, select: { status: true } })).status;
          throw refusal(flow.id, status, current);
        }
        await audit(tx, ctx, { workspaceId: flow.workspaceId, action: "flow.setStatus", targetType: "Flow", targetId: flow.id, data: { from: flow.status, to: status } });
        return { id: flow.id };
      });
    },

    /** Runs (PENDING, RUNNING ...) survive as tasks without their flow; the flow's name stays their title. */
    async delete(ctx: RequestCtx, id: string): Promise<{ id: string }> {
      const flow = await loadForUser(ctx, id, "admin");
      return prisma.$transaction(async (tx) => {
        await tx.flow.delete({ where: { id: flow.id } });
        await audit(tx, ctx, { workspaceId: flow.workspaceId, action: "flow.delete", targetType: "Flow", targetId: flow.id, data: { name: flow.name } });
        return { id: flow.id };
      });
    },

    /** A run: a PENDING task titled after the flow, one stage per step, of this flow version. */
    async run(ctx: RequestCtx, raw: unknown): Promise<{ id: string }> {
      const input = parseInput(runInput, raw);
      const flow = await loadForUser(ctx, input.flowId, "write");
      if (input.projectId) {
        const project = await prisma.project.findFirst({ where: { id: input.projectId, workspaceId: flow.workspaceId }, select: { archivedAt: true } });
        if (!project) throw validationError([{ field: "input.projectId", message: "no such project in this workspace" }]);
        if (project.archivedAt) throw validationError([{ field: "input.projectId", message: "the project is archived" }]);
      }
      // The run's task.created event is announced once the transaction has committed.
      return live.run((batch) => idempotentCreate(prisma, ctx.viewer, "runFlow", input.idempotencyKey, raw, batch.within(async (tx) => {
        // Read inside the transaction: name, status, version and definition of one moment.
        const current = await tx.flow.findUnique({ where: { id: flow.id }, select: { name: true, status: true, version: true, definition: true } });
        if (!current) throw notFound("flow", flow.id);
        if (current.status !== "ACTIVE") throw conflict(`Cannot run flow ${flow.id}: it is ${current.status}, not ACTIVE`, { status: current.status });
        const definition = definitionSchema.safeParse(current.definition);
        const steps = definition.success ? definition.data.steps : [];
        const task = await insertTask(tx, ctx, {
          workspaceId: flow.workspaceId,
          projectId: input.projectId ?? null,
          flowId: flow.id,
          flowVersion: current.version,
          title: current.name,
          requiredCapabilities: definition.success ? definition.data.requiredCapabilities : undefined,
          input: input.input,
          triggeredBy: input.triggeredBy ?? "manual",
          stages: steps.map((s) => ({ name: s.name, requiresConfirmation: s.requiresConfirmation, prompt: s.prompt })),
        });
        await audit(tx, ctx, {
          workspaceId: flow.workspaceId,
          action: "flow.run",
          targetType: "Flow",
          targetId: flow.id,
          data: { taskId: task.id, version: current.version, triggeredBy: input.triggeredBy ?? "manual" },
        });
        return task;
      })));
    },
  };
}

export type FlowService = ReturnType<typeof createFlowService>;
