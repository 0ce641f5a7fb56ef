// Flows: workflow definitions (name, status, version, definition JSON). Running an ACTIVE flow
// creates a task (a run) whose stages are the definition's steps, recorded with the flow version
// it ran. A definition change bumps the version; an ARCHIVED flow is frozen until brought back to
// DRAFT. A run executed elsewhere (flows' POST /api/runs) is recorded as a task that no machine runs.
import { z } from "zod";
import type { FlowStatus, Prisma } from "../../generated/prisma/client.js";
import { conflict, notFound, parseInput, requireId, validationError } from "../../schema/errors.js";
import type { WorkspaceNeed } from "../shared/access.js";
import { audit } from "../shared/audit.js";
import type { DomainDeps } from "../shared/deps.js";
import { requestHash } from "../shared/idempotency.js";
import { id, idempotencyKey, jsonValue, list, name as nameOf, text, utf8Text, uuid } from "../../schema/validation.js";
import { MAX_INPUT_BYTES, MAX_OUTPUT_BYTES, MAX_STAGES, stageDefinition } from "../task/task-limits.js";
import type { TaskService } from "../task/task.service.js";
import type { RequestContext } from "../shared/request.js";

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
const definitionSchema = z.looseObject({
  steps: list(z.looseObject(stageDefinition.shape), MAX_STAGES, "steps"),
  requiredCapabilities: list(nameOf(100), 50, "capabilities").optional(),
});

const name = nameOf(200);
const description = text(10_000);
/** Storable and small enough here; its shape is parseDefinition's. */
const definition = jsonValue(MAX_DEFINITION_BYTES);
const definitionText = utf8Text(MAX_DEFINITION_BYTES);
const status = z.enum(["DRAFT", "ACTIVE", "ARCHIVED"]);
const oneDefinition = { message: "give definition or definitionText, not both", path: ["definitionText"] };
const triggeredBy = z
  .string()
  .regex(/^[a-z][a-z0-9_.:-]{0,49}$/, "must be 1-50 lower-case letters, digits, '.', ':', '_' or '-' (manual, schedule, webhook ...)");

const createInput = z
  .object({
    workspaceId: id,
    name,
    description: description.nullish(),
    definition: definition.nullish(),
    definitionText: definitionText.nullish(),
    status: status.nullish(),
    idempotencyKey: idempotencyKey.nullish(),
  })
  .refine((v) => v.definition == null || v.definitionText == null, oneDefinition);

const updateInput = z
  .object({
    id,
    name: name.optional(),
    description: description.nullish(),
    definition: definition.optional(),
    definitionText: definitionText.nullish(),
    status: status.nullish(),
  })
  .refine((v) => v.definition == null || v.definitionText == null, oneDefinition);

const runInput = z.object({
  flowId: id,
  input: jsonValue(MAX_INPUT_BYTES).nullish(),
  triggeredBy: triggeredBy.nullish(),
  projectId: uuid("a project").nullish(),
  idempotencyKey: idempotencyKey.nullish(),
});

/** How far ahead of this server's clock a recorded time may be (the other machine's clock may run fast). */
const CLOCK_SKEW_MS = 5 * 60_000;
const EPOCH = new Date(0);
const pastTime = z
  .date()
  .min(EPOCH, "must be after 1970-01-01")
  .refine((d) => d.getTime() <= Date.now() + CLOCK_SKEW_MS, "must not be in the future");

const recordInput = z
  .object({
    flowId: id,
    status: z.enum(["RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"], {
      error: "must be RUNNING, SUCCEEDED, FAILED or CANCELLED: a recorded run was executed elsewhere (runFlow queues a new one)",
    }),
    input: jsonValue(MAX_INPUT_BYTES).nullish(),
    output: jsonValue(MAX_OUTPUT_BYTES).nullish(),
    error: text(10_000).nullish(),
    triggeredBy: triggeredBy.nullish(),
    startedAt: pastTime.nullish(),
    finishedAt: pastTime.nullish(),
    idempotencyKey: idempotencyKey.nullish(),
  })
  .superRefine((v, ctx) => {
    if (v.status === "RUNNING" && v.finishedAt) ctx.addIssue({ code: "custom", path: ["finishedAt"], message: "a RUNNING run has not finished" });
    if (v.startedAt && v.finishedAt && v.finishedAt < v.startedAt) ctx.addIssue({ code: "custom", path: ["finishedAt"], message: "must not be before startedAt" });
  });

/** The definition's shape (the input schema checked its size and content). */
function parseDefinition(raw: unknown, field: string): Prisma.InputJsonObject {
  if (raw === null || raw === undefined) return { steps: [] } as Prisma.InputJsonObject;
  if (typeof raw !== "object" || Array.isArray(raw)) throw validationError([{ field, message: "must be an object like { steps: [{ name }] }" }]);
  return parseInput(definitionSchema, raw, field) as Prisma.InputJsonObject;
}

/**
 * A definition a client keeps as text (flows' definition_json) is stored exactly as sent. Spindle's
 * own definition is taken from it when the text is one (an object whose steps Spindle can read);
 * any other JSON leaves the flow without steps, so a legacy editor's format is never refused.
 */
function fromText(raw: string, field: string): Prisma.InputJsonObject {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw validationError([{ field, message: "must be valid JSON text" }]);
  }
  const none = { steps: [] } as Prisma.InputJsonObject;
  // Storable first (a value nested 20,000 deep is not walked further).
  if (!definition.safeParse(parsed).success) return none;
  const shaped = definitionSchema.safeParse(parsed);
  return shaped.success ? (shaped.data as Prisma.InputJsonObject) : none;
}

/** The definition and its text an input sets; undefined when it gives neither. */
function definitionOf(input: { definition?: unknown; definitionText?: string | null }) {
  if (input.definitionText != null) return { definition: fromText(input.definitionText, "input.definitionText"), definitionText: input.definitionText };
  if (input.definition === undefined) return undefined;
  return { definition: parseDefinition(input.definition, "input.definition"), definitionText: null };
}

/** What flows ask of the task module: a run is a task, inserted in the flow's own transaction. */
export interface FlowCollaborators {
  insertTask: TaskService["insert"];
}

export function createFlowService(deps: DomainDeps, { insertTask }: FlowCollaborators) {
  const { prisma } = deps;
  const { work } = deps;

  async function loadForUser(ctx: RequestContext, id: string, need: WorkspaceNeed) {
    const flow = await prisma.flow.findUnique({
      where: { id: requireId(id, "flow") },
      select: { id: true, workspaceId: true, status: true, version: true, name: true, definition: true, definitionText: true },
    });
    if (!flow) throw notFound("flow", id);
    await ctx.access.require(flow.workspaceId, need, { type: "flow", id });
    return flow;
  }

  return {
    async create(ctx: RequestContext, raw: unknown): Promise<{ id: string }> {
      const input = parseInput(createInput, raw);
      const { definition, definitionText } = definitionOf(input) ?? { definition: parseDefinition(null, "input.definition"), definitionText: null };
      const workspaceId = requireId(input.workspaceId, "workspace");
      await ctx.access.require(workspaceId, "write");
      return work.create({ viewer: ctx.viewer, operation: "createFlow", key: input.idempotencyKey, input: raw }, async (tx) => {
        const flow = await tx.flow.create({
          data: { workspaceId, name: input.name, description: input.description ?? null, definition, definitionText, status: input.status ?? "DRAFT" },
          select: { id: true },
        });
        await audit(tx, ctx, { workspaceId, action: "flow.create", targetType: "Flow", targetId: flow.id, data: { name: input.name, status: input.status ?? "DRAFT" } });
        return flow;
      });
    },

    /**
     * Name, description, definition (or its text) and status, in one transaction; a definition that
     * differs from the current one bumps the version. The status moves as setStatus moves it (its
     * current value is no move); archiving comes after the other changes, leaving ARCHIVED before.
     */
    async update(ctx: RequestContext, raw: unknown): Promise<{ id: string }> {
      const input = parseInput(updateInput, raw);
      const next = definitionOf(input);
      const flow = await loadForUser(ctx, input.id, "write");
      const changed = next !== undefined && (requestHash(next.definition) !== requestHash(flow.definition) || next.definitionText !== flow.definitionText);
      const fields = [
        ...(input.name !== undefined ? ["name"] : []),
        ...(input.description !== undefined ? ["description"] : []),
        ...(next !== undefined ? ["definition"] : []),
      ];
      const to = input.status ?? undefined;
      if (fields.length === 0 && !to) throw validationError([{ field: "input", message: "change at least one of name, description, definition, status" }]);
      return work.run(async (tx) => {
        const writeFields = async () => {
          if (fields.length === 0) return;
          const { count } = await tx.flow.updateMany({
            where: { id: flow.id, status: { not: "ARCHIVED" } },
            // updatedAt always, so that an unchanged definition still matches a row (and counts 1).
            data: {
              updatedAt: new Date(),
              ...(input.name !== undefined ? { name: input.name } : {}),
              ...(input.description !== undefined ? { description: input.description } : {}),
              ...(changed ? { ...next, version: { increment: 1 } } : {}),
            },
          });
          if (count === 0) {
            throw conflict(`Cannot update flow ${flow.id}: it is ARCHIVED (move it back to DRAFT first)`, { status: "ARCHIVED" });
          }
        };
        const writeStatus = async () => {
          if (!to) return;
          const { count } = await tx.flow.updateMany({ where: { id: flow.id, status: { in: [to, ...TRANSITIONS[to]] } }, data: { status: to } });
          if (count === 0) throw refusal(flow.id, to, (await tx.flow.findUniqueOrThrow({ where: { id: flow.id }, select: { status: true } })).status);
        };
        if (to === "ARCHIVED") {
          await writeFields();
          await writeStatus();
        } else {
          await writeStatus();
          await writeFields();
        }
        await audit(tx, ctx, {
          workspaceId: flow.workspaceId,
          action: "flow.update",
          targetType: "Flow",
          targetId: flow.id,
          data: { fields, versionBumped: changed, ...(to && to !== flow.status ? { status: { from: flow.status, to } } : {}) },
        });
        return { id: flow.id };
      });
    },

    /** DRAFT <-> ACTIVE, either -> ARCHIVED, ARCHIVED -> DRAFT; anything else (same status too) is CONFLICT. */
    async setStatus(ctx: RequestContext, id: string, status: FlowStatus): Promise<{ id: string }> {
      const flow = await loadForUser(ctx, id, "write");
      return work.run(async (tx) => {
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
    async delete(ctx: RequestContext, id: string): Promise<{ id: string }> {
      const flow = await loadForUser(ctx, id, "admin");
      return work.run(async (tx) => {
        await tx.flow.delete({ where: { id: flow.id } });
        await audit(tx, ctx, { workspaceId: flow.workspaceId, action: "flow.delete", targetType: "Flow", targetId: flow.id, data: { name: flow.name } });
        return { id: flow.id };
      });
    },

    /** A run: a PENDING task titled after the flow, one stage per step, of this flow version. */
    async run(ctx: RequestContext, raw: unknown): Promise<{ id: string }> {
      const input = parseInput(runInput, raw);
      const flow = await loadForUser(ctx, input.flowId, "write");
      if (input.projectId) {
        const project = await prisma.project.findFirst({ where: { id: input.projectId, workspaceId: flow.workspaceId }, select: { archivedAt: true } });
        if (!project) throw validationError([{ field: "input.projectId", message: "no such project in this workspace" }]);
        if (project.archivedAt) throw validationError([{ field: "input.projectId", message: "the project is archived" }]);
      }
      // The run's task.created event is announced once the transaction has committed.
      return work.create({ viewer: ctx.viewer, operation: "runFlow", key: input.idempotencyKey, input: raw }, async (tx) => {
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
      });
    },

    /**
     * A run executed elsewhere (flows' POST /api/runs), recorded as it stands: a task of the flow at
     * its current version, with the given status, times, output and error, that no machine claims.
     * Its log stays open: the lines of a run recorded afterwards can still be written.
     */
    async record(ctx: RequestContext, raw: unknown): Promise<{ id: string }> {
      const input = parseInput(recordInput, raw);
      const flow = await loadForUser(ctx, input.flowId, "write");
      const now = new Date();
      const finishedAt = input.status === "RUNNING" ? null : (input.finishedAt ?? now);
      const startedAt = input.startedAt ?? finishedAt ?? now;
      if (finishedAt && startedAt > finishedAt) throw validationError([{ field: "input.startedAt", message: "must not be after finishedAt (now, when left out)" }]);
      return work.create({ viewer: ctx.viewer, operation: "recordFlowRun", key: input.idempotencyKey, input: raw }, async (tx) => {
        const current = await tx.flow.findUnique({ where: { id: flow.id }, select: { name: true, status: true, version: true } });
        if (!current) throw notFound("flow", flow.id);
        if (current.status === "ARCHIVED") throw conflict(`Cannot record a run of flow ${flow.id}: it is ARCHIVED`, { status: current.status });
        const task = await insertTask(tx, ctx, {
          workspaceId: flow.workspaceId,
          flowId: flow.id,
          flowVersion: current.version,
          title: current.name,
          input: input.input,
          triggeredBy: input.triggeredBy ?? "manual",
          recorded: { status: input.status, output: input.output, error: input.error, startedAt, finishedAt },
        });
        await audit(tx, ctx, {
          workspaceId: flow.workspaceId,
          action: "flow.recordRun",
          targetType: "Flow",
          targetId: flow.id,
          data: { taskId: task.id, version: current.version, status: input.status },
        });
        return task;
      });
    },
  };
}

export type FlowService = ReturnType<typeof createFlowService>;
