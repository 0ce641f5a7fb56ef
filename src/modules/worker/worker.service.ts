// Workers: long-lived units a machine keeps running. An AiSpinner code worker is bound to a graph
// block (deployed by the block's id); a Spunto container worker runs an image, usually in a project.
// Status only moves along WORKER_ACTIONS; every move is one conditional update plus a
// WorkerTransition row in the same transaction, so two concurrent actions cannot both win.
import { z } from "zod";
import { requireMachine } from "../../auth/viewer.js";
import type { Prisma, Worker, WorkerStatus } from "../../generated/prisma/client.js";
import { conflict, notFound, parseInput, requireId, validationError } from "../../schema/errors.js";
import { envVars, id, idempotencyKey, int, jsonObject, name as nameOf, number, text, utf8Text, uuid } from "../../schema/validation.js";
import { type Actor, actorOf, audit, unaudited } from "../shared/audit.js";
import type { DomainDeps } from "../shared/deps.js";
import { noteStatus, noteTicks } from "../shared/live.js";
import { announceWorker } from "./worker-notices.js";
import { LIVE_WORKER_STATUSES } from "./worker-statuses.js";
import { placeOn, WAITING_FOR_MACHINE } from "./placement.js";
import type { RequestContext } from "../shared/request.js";
import type { WorkTx } from "../shared/unit-of-work.js";

type Tx = WorkTx;


/**
 * The worker state machine, the only place it is written down. `deploy` (creation) has no entry:
 * it is the one transition from nothing, to DEPLOYING.
 * - user actions: start, stop, restart, redeploy, destroy
 * - machine reports: running, fail (also the error budget running out)
 * - system: heal (auto-heal after the error budget ran out)
 * Decommissioning a machine fails its workers outside this table: machine-loss.ts (called by the
 * machine module) moves them to FAILED and records the transition as `machine.decommission`.
 */
export const WORKER_ACTIONS = {
  start: { from: ["STOPPED", "FAILED"], to: "DEPLOYING" },
  stop: { from: ["DEPLOYING", "RUNNING"], to: "STOPPED" },
  restart: { from: ["RUNNING", "FAILED"], to: "DEPLOYING" },
  redeploy: { from: ["DEPLOYING", "RUNNING", "STOPPED", "FAILED"], to: "DEPLOYING" },
  destroy: { from: ["DEPLOYING", "RUNNING", "STOPPED", "FAILED"], to: "DESTROYED" },
  running: { from: ["DEPLOYING"], to: "RUNNING" },
  fail: { from: ["DEPLOYING", "RUNNING"], to: "FAILED" },
  heal: { from: ["FAILED"], to: "DEPLOYING" },
} as const satisfies Record<string, { from: readonly WorkerStatus[]; to: WorkerStatus }>;
export type WorkerAction = keyof typeof WORKER_ACTIONS;

const ACTION_PHRASE: Record<WorkerAction, string> = {
  start: "start",
  stop: "stop",
  restart: "restart",
  redeploy: "redeploy",
  destroy: "destroy",
  running: "mark as RUNNING",
  fail: "mark as FAILED",
  heal: "heal",
};

const SYSTEM: Actor = { actorType: "SYSTEM", actorId: null, userId: null };

export const CODE_MAX_BYTES = 256 * 1024;
export const JSON_MAX_BYTES = 64 * 1024;

const name = nameOf(100);
const code = utf8Text(CODE_MAX_BYTES);
const runtime = nameOf(50);
const image = nameOf(500).regex(/^\S+$/, "must be an image reference without spaces, like ghcr.io/acme/app:1.2");
const command = text(4096);
const env = envVars(JSON_MAX_BYTES);
const connectedBlocks = jsonObject(JSON_MAX_BYTES);
const tickIntervalSeconds = int(1, 86400, "must be 1 to 86400 seconds");
const maxErrors = int(1, 100000);
const reason = text(500).trim().nullish();

const settingsFields = {
  tickIntervalSeconds: tickIntervalSeconds.nullish(),
  maxErrors: maxErrors.nullish(),
  autoHeal: z.boolean().nullish(),
  connectedBlocks: connectedBlocks.nullish(),
};

const deployInput = z
  .object({
    workspaceId: uuid("a workspace"),
    kind: z.enum(["CODE", "CONTAINER"]),
    name: name.nullish(),
    blockId: nameOf(200).nullish(),
    code: code.nullish(),
    runtime: runtime.nullish(),
    projectId: uuid("a project").nullish(),
    image: image.nullish(),
    command: command.nullish(),
    env: env.nullish(),
    ...settingsFields,
    idempotencyKey: idempotencyKey.nullish(),
  })
  .superRefine((input, ctx) => {
    const need = (field: keyof typeof input, message: string) => {
      if (input[field] == null) ctx.addIssue({ code: "custom", path: [field], message });
    };
    const refuse = (field: keyof typeof input, message: string) => {
      if (input[field] != null) ctx.addIssue({ code: "custom", path: [field], message });
    };
    if (input.kind === "CODE") {
      need("blockId", "a CODE worker runs a graph block: give the block's id");
      need("code", "a CODE worker needs its code");
      refuse("image", "only CONTAINER workers run an image");
    } else {
      // Without an image, the command runs as a plain process on the machine.
      if (input.image == null && input.command == null) ctx.addIssue({ code: "custom", path: ["image"], message: "a CONTAINER worker needs an image, or a command to run as a process" });
      need("name", "a CONTAINER worker needs a name");
      refuse("blockId", "only CODE workers run a graph block");
      refuse("code", "only CODE workers take code");
    }
  });

const redeployInput = z.object({
  id,
  code: code.nullish(),
  runtime: runtime.nullish(),
  image: image.nullish(),
  command: command.nullish(),
  env: env.nullish(),
  ...settingsFields,
  reason,
});

const settingsInput = z
  .object({ id, ...settingsFields })
  .refine(
    (input) => Object.keys(settingsFields).some((key) => input[key as keyof typeof settingsFields] != null),
    "give at least one of tickIntervalSeconds, maxErrors, autoHeal, connectedBlocks",
  );

const revision = z.int("must be a whole number").min(1, "must be a revision the worker had");

const reportStatusInput = z.object({
  workerId: id,
  revision,
  status: z.enum(["RUNNING", "FAILED"]),
  reason,
});

const reportTicksInput = z.object({
  workerId: id,
  revision,
  ticks: int(0, 1_000_000, "must be 0 to 1000000 per report"),
  errors: int(0, 1_000_000, "must be 0 to 1000000 per report"),
  cpuPercent: number(0, 100_000, "must be 0 to 100000 (percent of one core)").nullish(),
  memoryBytes: z.number().int("must be a whole number of bytes").min(0, "must not be negative").max(Number.MAX_SAFE_INTEGER).nullish(),
  lastTickAt: z.date().nullish(),
});

/** Drops the keys the client left out (null or absent), so an update only touches what was given. */
function given<T extends Record<string, unknown>>(value: T): { [K in keyof T]?: Exclude<T[K], null | undefined> } {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v != null)) as never;
}

export function illegalWorkerAction(action: WorkerAction, id: string, status: WorkerStatus) {
  return conflict(`Cannot ${ACTION_PHRASE[action]} worker ${id}: it is ${status}`, { action, status });
}

const staleRevision = (id: string, reported: number, current: number) =>
  conflict(`Worker ${id} is at revision ${current}; the report is for revision ${reported}. Stop running the old revision.`, {
    revision: current,
    fields: [{ field: "input.revision", message: `the current revision is ${current}` }],
  });

export function createWorkerService(deps: DomainDeps) {
  const { prisma, config } = deps;
  const offlineAfter = () => config.domain.machineOfflineAfterSeconds;
  const { work } = deps;

  /**
   * Moves a worker along WORKER_ACTIONS: a conditional update on the status it was read with (and
   * the revision, for machine reports), then the transition row. Returns the worker as updated.
   */
  async function transition(
    tx: Tx,
    worker: Worker,
    action: WorkerAction,
    options: {
      actor: Actor;
      reason?: string | null;
      data?: Prisma.WorkerUncheckedUpdateManyInput;
      revision?: number;
      at?: Date;
    },
  ): Promise<Worker> {
    const rule = WORKER_ACTIONS[action];
    if (!(rule.from as readonly WorkerStatus[]).includes(worker.status)) throw illegalWorkerAction(action, worker.id, worker.status);
    const data: Prisma.WorkerUncheckedUpdateManyInput = { ...options.data, status: rule.to, statusReason: options.reason ?? null };
    if (rule.to === "DEPLOYING") {
      // A new run: a fresh error budget, and a machine that can take it.
      const machineId = await placeOn(tx, worker.workspaceId, worker.machineId, offlineAfter());
      data.machineId = machineId;
      data.errorCount = 0;
      if (!machineId) data.statusReason = WAITING_FOR_MACHINE;
    }
    if (rule.to === "DESTROYED") data.destroyedAt = new Date();
    const { count } = await tx.worker.updateMany({
      where: { id: worker.id, status: worker.status, ...(options.revision != null ? { revision: options.revision } : {}) },
      data,
    });
    if (count === 0) {
      const now = await tx.worker.findUnique({ where: { id: worker.id }, select: { status: true, revision: true } });
      if (!now) throw notFound("worker", worker.id);
      if (options.revision != null && now.revision !== options.revision) throw staleRevision(worker.id, options.revision, now.revision);
      throw illegalWorkerAction(action, worker.id, now.status);
    }
    await tx.workerTransition.create({
      data: {
        workerId: worker.id,
        from: worker.status,
        to: rule.to,
        action,
        reason: options.reason ?? null,
        actorType: options.actor.actorType,
        actorId: options.actor.actorId,
        ...(options.at ? { at: options.at } : {}),
      },
    });
    const after = await tx.worker.findUniqueOrThrow({ where: { id: worker.id } });
    await announceWorker(tx, after, worker.status, [worker.machineId, after.machineId], options.reason ?? null);
    return after;
  }

  /** The worker, if the viewer may `need` it; a stranger gets the same NOT_FOUND as a missing id. */
  async function authorize(ctx: RequestContext, id: string, need: "read" | "write") {
    requireId(id, "worker");
    const row = await prisma.worker.findUnique({ where: { id }, select: { workspaceId: true } });
    if (!row) throw notFound("worker", id);
    await ctx.access.require(row.workspaceId, need, { type: "worker", id });
    return row;
  }

  /** A user action on one worker: authorize, then read, move and audit in one transaction. */
  async function act(
    ctx: RequestContext,
    id: string,
    action: "start" | "stop" | "restart" | "destroy",
    reasonText: string | null | undefined,
  ) {
    const { reason: why } = parseInput(z.object({ reason }), { reason: reasonText });
    await authorize(ctx, id, "write");
    return work.run(async (tx) => {
      const worker = await tx.worker.findUnique({ where: { id } });
      if (!worker) throw notFound("worker", id);
      const after = await transition(tx, worker, action, { actor: actorOf(ctx.viewer), reason: why });
      await audit(tx, ctx, {
        workspaceId: worker.workspaceId,
        action: `worker.${action}`,
        targetType: "Worker",
        targetId: id,
        data: { from: worker.status, to: after.status, ...(why ? { reason: why } : {}) },
      });
      return { id };
    });
  }

  /** A machine's report on a worker: only the worker's own machine, in its own workspace, sees it. */
  async function ownWorker(tx: Tx, ctx: RequestContext, workerId: string) {
    const machine = requireMachine(ctx.viewer);
    requireId(workerId, "worker");
    const worker = await tx.worker.findFirst({ where: { id: workerId, machineId: machine.machineId, workspaceId: machine.workspaceId } });
    if (!worker) throw notFound("worker", workerId);
    return worker;
  }

  return {
    /** The live (not destroyed) worker of a graph block, or null. */
    async byBlock(ctx: RequestContext, workspaceId: string, blockId: string) {
      requireId(workspaceId, "workspace");
      await ctx.access.require(workspaceId, "read");
      const worker = await prisma.worker.findFirst({
        where: { workspaceId, blockId, status: { not: "DESTROYED" } },
        select: { id: true },
        orderBy: { createdAt: "desc" },
      });
      return worker;
    },

    /**
     * Deploys a worker. A CODE worker is deployed by its block (AiSpinner's node_id): when the block
     * already has a live worker, that worker is redeployed (revision + 1) instead of a second one
     * being created. The block row is locked meanwhile, so two deploys to one block cannot both create.
     */
    async deploy(ctx: RequestContext, raw: unknown) {
      const input = parseInput(deployInput, raw);
      await ctx.access.require(input.workspaceId, "write");
      const actor = actorOf(ctx.viewer);
      return work.create({ viewer: ctx.viewer, operation: "deployWorker", key: input.idempotencyKey, input }, async (tx) => {
        if (input.projectId) {
          const project = await tx.project.findFirst({ where: { id: input.projectId, workspaceId: input.workspaceId }, select: { id: true } });
          if (!project) throw validationError([{ field: "input.projectId", message: "no such project in the workspace" }]);
        }
        let blockLabel: string | null = null;
        if (input.kind === "CODE") {
          // Graph edits lock the workspace row (graphVersion) and then blocks; a redeploy here may
          // write a workspace event, which locks that row too: take it first, in the same order.
          await tx.$queryRaw`SELECT 1 FROM "Workspace" WHERE "id" = ${input.workspaceId}::uuid FOR NO KEY UPDATE`;
          const blocks = await tx.$queryRaw<{ label: string }[]>`
            SELECT "label" FROM "GraphBlock" WHERE "workspaceId" = ${input.workspaceId}::uuid AND "id" = ${input.blockId} FOR UPDATE`;
          if (blocks.length === 0) {
            throw validationError([{ field: "input.blockId", message: `the workspace graph has no block ${input.blockId}` }]);
          }
          blockLabel = blocks[0]!.label;
          const live = await tx.worker.findFirst({
            where: { workspaceId: input.workspaceId, blockId: input.blockId, status: { not: "DESTROYED" } },
          });
          if (live) {
            const changes = given({
              name: input.name,
              projectId: input.projectId,
              code: input.code,
              runtime: input.runtime,
              env: input.env,
              tickIntervalSeconds: input.tickIntervalSeconds,
              maxErrors: input.maxErrors,
              autoHeal: input.autoHeal,
              connectedBlocks: input.connectedBlocks as Prisma.InputJsonValue | null | undefined,
            });
            const after = await transition(tx, live, "redeploy", { actor, data: { ...changes, revision: { increment: 1 } } });
            await audit(tx, ctx, {
              workspaceId: input.workspaceId,
              action: "worker.redeploy",
              targetType: "Worker",
              targetId: live.id,
              data: { revision: after.revision, blockId: input.blockId, via: "deployWorker" },
            });
            return { id: live.id };
          }
        }
        const machineId = await placeOn(tx, input.workspaceId, null, offlineAfter());
        const worker = await tx.worker.create({
          data: {
            workspaceId: input.workspaceId,
            kind: input.kind,
            name: input.name ?? blockLabel ?? input.blockId!,
            blockId: input.blockId ?? null,
            code: input.code ?? null,
            runtime: input.runtime ?? null,
            projectId: input.projectId ?? null,
            image: input.image ?? null,
            command: input.command ?? null,
            ...given({
              env: input.env,
              tickIntervalSeconds: input.tickIntervalSeconds,
              maxErrors: input.maxErrors,
              autoHeal: input.autoHeal,
              connectedBlocks: input.connectedBlocks as Prisma.InputJsonValue | null | undefined,
            }),
            status: "DEPLOYING",
            statusReason: machineId ? null : WAITING_FOR_MACHINE,
            machineId,
            createdById: actor.userId,
          },
        });
        await tx.workerTransition.create({
          data: { workerId: worker.id, from: null, to: "DEPLOYING", action: "deploy", actorType: actor.actorType, actorId: actor.actorId },
        });
        await announceWorker(tx, worker, null, [machineId], null);
        await audit(tx, ctx, {
          workspaceId: input.workspaceId,
          action: "worker.deploy",
          targetType: "Worker",
          targetId: worker.id,
          data: { kind: worker.kind, name: worker.name, blockId: worker.blockId, machineId },
        });
        return { id: worker.id };
      });
    },

    start: (ctx: RequestContext, id: string, why?: string | null) => act(ctx, id, "start", why),
    stop: (ctx: RequestContext, id: string, why?: string | null) => act(ctx, id, "stop", why),
    restart: (ctx: RequestContext, id: string, why?: string | null) => act(ctx, id, "restart", why),
    destroy: (ctx: RequestContext, id: string, why?: string | null) => act(ctx, id, "destroy", why),

    /** New code or image (and any settings given): revision + 1, back to DEPLOYING. */
    async redeploy(ctx: RequestContext, raw: unknown) {
      const input = parseInput(redeployInput, raw);
      await authorize(ctx, input.id, "write");
      return work.run(async (tx) => {
        const worker = await tx.worker.findUnique({ where: { id: input.id } });
        if (!worker) throw notFound("worker", input.id);
        const problems = [];
        const other = worker.kind === "CODE" ? (["image", "command"] as const) : (["code", "runtime"] as const);
        for (const field of other) {
          if (input[field] != null) problems.push({ field: `input.${field}`, message: `a ${worker.kind} worker has no ${field}` });
        }
        if (problems.length) throw validationError(problems);
        const { id: _id, reason: why, ...rest } = input;
        const changes = given({ ...rest, connectedBlocks: rest.connectedBlocks as Prisma.InputJsonValue | null | undefined });
        const after = await transition(tx, worker, "redeploy", {
          actor: actorOf(ctx.viewer),
          reason: why,
          data: { ...changes, revision: { increment: 1 } },
        });
        await audit(tx, ctx, {
          workspaceId: worker.workspaceId,
          action: "worker.redeploy",
          targetType: "Worker",
          targetId: worker.id,
          data: { revision: after.revision, changed: Object.keys(changes) },
        });
        return { id: worker.id };
      });
    },

    /** Tick interval, error budget, auto-heal, connected blocks: applied as they are, no redeploy. */
    async updateSettings(ctx: RequestContext, raw: unknown) {
      const input = parseInput(settingsInput, raw);
      await authorize(ctx, input.id, "write");
      return work.run(async (tx) => {
        const { id, ...rest } = input;
        const changes = given({ ...rest, connectedBlocks: rest.connectedBlocks as Prisma.InputJsonValue | null | undefined });
        const { count } = await tx.worker.updateMany({ where: { id, status: { not: "DESTROYED" } }, data: changes });
        if (count === 0) {
          const now = await tx.worker.findUnique({ where: { id }, select: { status: true } });
          if (!now) throw notFound("worker", id);
          throw conflict(`Cannot change the settings of worker ${id}: it is ${now.status}`, { status: now.status });
        }
        const worker = await tx.worker.findUniqueOrThrow({ where: { id }, select: { workspaceId: true, machineId: true } });
        noteStatus(tx, "WORKER", id, worker.workspaceId);
        // Its machine applies the new settings to the running worker (machineAssignments).
        noteStatus(tx, "MACHINE", worker.machineId, worker.workspaceId);
        await audit(tx, ctx, {
          workspaceId: worker.workspaceId,
          action: "worker.settings",
          targetType: "Worker",
          targetId: id,
          data: changes as Prisma.InputJsonValue,
        });
        return { id };
      });
    },

    /** What the calling machine must run now, oldest first. */
    assignedArgs(ctx: RequestContext) {
      const machine = requireMachine(ctx.viewer);
      return {
        where: { machineId: machine.machineId, workspaceId: machine.workspaceId, status: { in: [...LIVE_WORKER_STATUSES] } },
        orderBy: [{ createdAt: "asc" }, { id: "asc" }],
      } satisfies Prisma.WorkerFindManyArgs;
    },

    /**
     * The machine says the worker came up (RUNNING) or could not run (FAILED). A report for an old
     * revision is refused: the machine should be running the new one. Repeating the current status
     * changes nothing, so a machine may retry a report safely.
     */
    async reportStatus(ctx: RequestContext, raw: unknown) {
      const input = parseInput(reportStatusInput, raw);
      return work.run(async (tx) => {
        const worker = await ownWorker(tx, ctx, input.workerId);
        if (worker.revision !== input.revision) throw staleRevision(worker.id, input.revision, worker.revision);
        const action = input.status === "RUNNING" ? "running" : "fail";
        if (worker.status === WORKER_ACTIONS[action].to) {
          unaudited(tx, "unchanged");
          return { id: worker.id };
        }
        await transition(tx, worker, action, { actor: actorOf(ctx.viewer), reason: input.reason, revision: input.revision });
        await audit(tx, ctx, {
          workspaceId: worker.workspaceId,
          action: "worker.report",
          targetType: "Worker",
          targetId: worker.id,
          data: { revision: input.revision, status: input.status, ...(input.reason ? { reason: input.reason } : {}) },
        });
        return { id: worker.id };
      });
    },

    /**
     * Tick and error counts since the last report (they add up), and resource use. When the errors
     * reach maxErrors the worker FAILS; with autoHeal the system sends it straight back to
     * DEPLOYING with a fresh error budget. Plain counter reports are telemetry and are not audited;
     * the transitions they cause are.
     */
    async reportTicks(ctx: RequestContext, raw: unknown) {
      const input = parseInput(reportTicksInput, raw);
      return work.run(async (tx) => {
        const worker = await ownWorker(tx, ctx, input.workerId);
        if (worker.revision !== input.revision) throw staleRevision(worker.id, input.revision, worker.revision);
        if (!(LIVE_WORKER_STATUSES as readonly WorkerStatus[]).includes(worker.status)) {
          throw conflict(`Cannot report ticks for worker ${worker.id}: it is ${worker.status}`, { status: worker.status });
        }
        const lastTickAt = input.lastTickAt ?? (input.ticks > 0 ? new Date() : undefined);
        const { count } = await tx.worker.updateMany({
          where: { id: worker.id, revision: input.revision, status: { in: [...LIVE_WORKER_STATUSES] } },
          data: {
            tickCount: { increment: input.ticks },
            errorCount: { increment: input.errors },
            ...(lastTickAt ? { lastTickAt } : {}),
            ...(input.cpuPercent != null ? { cpuPercent: input.cpuPercent } : {}),
            ...(input.memoryBytes != null ? { memoryBytes: BigInt(input.memoryBytes) } : {}),
          },
        });
        if (count === 0) {
          const now = await tx.worker.findUniqueOrThrow({ where: { id: worker.id } });
          if (now.revision !== input.revision) throw staleRevision(worker.id, input.revision, now.revision);
          throw conflict(`Cannot report ticks for worker ${worker.id}: it is ${now.status}`, { status: now.status });
        }
        const counted = await tx.worker.findUniqueOrThrow({ where: { id: worker.id } });
        noteTicks(tx, worker.id, worker.workspaceId);
        if (counted.errorCount < counted.maxErrors) {
          unaudited(tx, "telemetry");
          return { id: worker.id };
        }

        const failedAt = new Date();
        const why = `${counted.errorCount} errors reached the limit of ${counted.maxErrors}`;
        const failed = await transition(tx, counted, "fail", { actor: actorOf(ctx.viewer), reason: why, revision: input.revision, at: failedAt });
        let healed: Worker | null = null;
        if (failed.autoHeal) {
          // One millisecond later, so the heal sorts after the failure it answers.
          healed = await transition(tx, failed, "heal", {
            actor: SYSTEM,
            reason: `auto-heal: ${why}`,
            at: new Date(failedAt.getTime() + 1),
          });
        }
        await audit(tx, ctx, {
          workspaceId: worker.workspaceId,
          action: healed ? "worker.heal" : "worker.fail",
          targetType: "Worker",
          targetId: worker.id,
          data: { revision: input.revision, errorCount: counted.errorCount, maxErrors: counted.maxErrors, healed: Boolean(healed) },
        });
        return { id: worker.id };
      });
    },

    /**
     * Gives machines to workers that were deployed while none qualified. For the machine module to
     * call when a machine becomes available (registration, approval, heartbeat after being offline,
     * undrain); a no-op when nothing waits.
     */
    async placeWaiting(workspaceId: string) {
      const waiting = await prisma.worker.findMany({
        where: { workspaceId, status: "DEPLOYING", machineId: null },
        select: { id: true },
        orderBy: { createdAt: "asc" },
      });
      let placed = 0;
      for (const { id } of waiting) {
        await work.run(async (tx) => {
          unaudited(tx, "server");
          const machineId = await placeOn(tx, workspaceId, null, offlineAfter());
          if (!machineId) return;
          const { count } = await tx.worker.updateMany({
            where: { id, status: "DEPLOYING", machineId: null },
            data: { machineId, statusReason: null },
          });
          if (count > 0) {
            noteStatus(tx, "WORKER", id, workspaceId);
            noteStatus(tx, "MACHINE", machineId, workspaceId);
          }
          placed += count;
        });
      }
      return placed;
    },
  };
}

export type WorkerService = ReturnType<typeof createWorkerService>;
