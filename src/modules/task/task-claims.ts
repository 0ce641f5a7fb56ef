// The machine side of tasks: claiming the work that fits a machine, and reporting on it (start,
// stages, events, success, failure) while the machine holds the attempt's lease. Also what the
// machine module asks of tasks when a machine's state changes: renewing the leases it holds
// (heartbeat), and giving its tasks up (decommission).
//
// Claiming is one SQL statement (FOR UPDATE SKIP LOCKED), so however many machines claim at once, a
// task goes to one of them. Each claim starts an attempt with a new lease token; the machine's
// heartbeat (machine module, running `leaseRenewal` in its statement) renews the lease. A machine whose lease ran out,
// or whose task was claimed again by another attempt, gets CONFLICT with `leaseLost: true` and must
// stop. Lease times use the database clock, as the renewal does.
import { z } from "zod";
import { requireMachine, type MachineViewer } from "../../auth/viewer.js";
import { Prisma, type StageStatus, type TaskStatus } from "../../generated/prisma/client.js";
import { AppError, conflict, forbidden, notFound, parseInput, requireId, validationError } from "../../schema/errors.js";
import { id, int, jsonValue, text } from "../../schema/validation.js";
import { type Actor, audit, unaudited } from "../shared/audit.js";
import type { DomainDeps } from "../shared/deps.js";
import { noteLogSourcesFinished, noteStatus, noteEvents } from "../shared/live.js";
import type { RequestContext } from "../shared/request.js";
import type { WorkTx } from "../shared/unit-of-work.js";
import { closeOpenStages, illegal, MAX_TEXT, writeTaskEvent } from "./task-common.js";
import { announceTask, json } from "./task-insert.js";
import { MAX_CLAIM, MAX_EVENT_DATA_BYTES, MAX_OUTPUT_BYTES, MAX_PROMPT_BYTES } from "./task-limits.js";
import { HELD_TASK_STATUSES, HELD_TASK_STATUSES_SQL } from "./task-statuses.js";

const leaseToken = z.uuid("must be the lease token the claim returned").transform((token) => token.toLowerCase());

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

function leaseLost(taskId: string, why: string, status: TaskStatus): AppError {
  return conflict(`Lease lost for task ${taskId}: ${why}. Stop working on this attempt`, { leaseLost: true, status });
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

/**
 * Locks the task and checks that the calling machine holds the live lease of its current attempt.
 * A task of another workspace, or one this machine never claimed, is NOT_FOUND; a lease of an
 * earlier attempt, or one that ran out, is CONFLICT "lease lost"; a status `action` cannot start
 * from is CONFLICT naming it.
 */
async function holdLease(tx: WorkTx, machine: MachineViewer, taskId: string, token: string, action: string, from: TaskStatus[]): Promise<HeldTask> {
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


/**
 * The statement that extends the lease of every task the machine holds whose lease is still live,
 * returning their ids. The machine module runs it inside its heartbeat statement (one round trip
 * for the hot path of a fleet); its text is the task module's. A lease that ran out is not revived: that attempt is lost and the task may be
 * someone else's by now.
 */
export function leaseRenewal(machineId: string, leaseSeconds: number): Prisma.Sql {
  // Timestamps are stored as UTC wall time (timestamp without time zone), hence AT TIME ZONE.
  return Prisma.sql`
    UPDATE "Task"
       SET "leaseExpiresAt" = (now() AT TIME ZONE 'UTC') + make_interval(secs => ${leaseSeconds}::double precision)
     WHERE "machineId" = ${machineId}::uuid
       AND "status" IN (${HELD_TASK_STATUSES_SQL})
       AND "leaseExpiresAt" > (now() AT TIME ZONE 'UTC')
    RETURNING "id"`;
}

/**
 * A machine leaves the fleet (decommission): the work it was given but has not started (ASSIGNED)
 * or that waits for a person (SUSPENDED) goes back to the queue, RUNNING work fails with `reason`.
 * Writes the tasks' events and notes their status notices, finished logs and workspace events
 * (requeued tasks are task.updated, failed ones task.failed); the machine's own notice and the
 * audit entry are the caller's.
 */
export async function releaseMachine(
  tx: WorkTx,
  machine: { id: string; name: string; workspaceId: string },
  reason: string,
  actor: Actor,
  now: Date,
): Promise<{ requeuedTaskIds: string[]; failedTaskIds: string[] }> {
  const { id } = machine;
  const requeued = await tx.task.updateManyAndReturn({
    where: { machineId: id, status: { in: ["ASSIGNED", "SUSPENDED"] } },
    data: { status: "PENDING", machineId: null, leaseToken: null, leaseExpiresAt: null },
    select: { id: true, attempt: true },
  });
  const failed = await tx.task.updateManyAndReturn({
    where: { machineId: id, status: "RUNNING" },
    data: { status: "FAILED", error: reason, finishedAt: now, leaseToken: null, leaseExpiresAt: null },
    select: { id: true, attempt: true },
  });
  if (failed.length > 0) {
    // As a failure the machine reports (`fail`): the stage under way fails, the ones after it are skipped.
    await closeOpenStages(tx, { in: failed.map((task) => task.id) }, reason, now);
  }
  const event = (task: { id: string; attempt: number }, type: string, message: string) => ({
    taskId: task.id,
    workspaceId: machine.workspaceId,
    type,
    message,
    data: { machineId: id, reason },
    attempt: task.attempt,
    actorType: actor.actorType,
    actorId: actor.actorId,
    at: now,
  });
  await tx.taskEvent.createMany({
    data: [
      ...requeued.map((task) => event(task, "task.requeued", `Back in the queue: machine ${machine.name} was decommissioned (${reason})`)),
      ...failed.map((task) => event(task, "task.failed", reason)),
    ],
  });

  const ws = machine.workspaceId;
  for (const task of [...requeued, ...failed]) noteStatus(tx, "TASK", task.id, ws);
  await noteLogSourcesFinished(tx, failed.map((task) => ({ sourceId: task.id, sourceType: "TASK" as const, workspaceId: ws })));
  noteEvents(tx, [
    ...requeued.map((task) => ({
      workspaceId: ws,
      type: "task.updated" as const,
      subjectType: "TASK",
      subjectId: task.id,
      data: { taskId: task.id, action: "requeued", status: "PENDING", machineId: id, reason },
    })),
    ...failed.map((task) => ({
      workspaceId: ws,
      type: "task.failed" as const,
      subjectType: "TASK",
      subjectId: task.id,
      data: { taskId: task.id, action: "failed", status: "FAILED", attempt: task.attempt, machineId: id, error: reason },
    })),
  ]);
  return { requeuedTaskIds: requeued.map((t) => t.id), failedTaskIds: failed.map((t) => t.id) };
}

/** What machines do with tasks: claim them, and report on the ones they hold. */
export function createTaskClaims(deps: Pick<DomainDeps, "prisma" | "config" | "work">) {
  const { prisma, config, work } = deps;

  return {
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
      return work.run(async (tx) => {
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
          noteEvents(
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
        } else {
          unaudited(tx, "unchanged");
        }
        return rows.map((r) => r.id);
      });
    },

    async start(ctx: RequestContext, raw: unknown): Promise<{ id: string }> {
      const me = requireMachine(ctx.viewer);
      const input = parseInput(leaseInput, raw);
      return work.run(async (tx) => {
        const task = await holdLease(tx, me, input.taskId, input.leaseToken, "start", ["ASSIGNED"]);
        await tx.task.update({ where: { id: task.id }, data: { status: "RUNNING", startedAt: new Date() } });
        await writeTaskEvent(tx, ctx, task, "task.started", `Attempt ${task.attempt} started`);
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
      return work.run(async (tx) => {
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
        await writeTaskEvent(tx, ctx, task, `stage.${input.status.toLowerCase()}`, `Stage ${stage.index} (${stage.name}) ${verb}${input.error ? `: ${input.error}` : ""}`, {
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
      return work.run(async (tx) => {
        const task = await holdLease(tx, me, input.taskId, input.leaseToken, "complete", ["RUNNING"]);
        await tx.task.update({ where: { id: task.id }, data: { status: "SUCCEEDED", output: json(input.output), finishedAt: new Date() } });
        await tx.taskStage.updateMany({ where: { taskId: task.id, status: "PENDING" }, data: { status: "SKIPPED" } });
        await writeTaskEvent(tx, ctx, task, "task.succeeded", `Attempt ${task.attempt} succeeded`);
        await announceTask(tx, task, "task.completed", { action: "succeeded", status: "SUCCEEDED", attempt: task.attempt }, [me.machineId]);
        await audit(tx, ctx, { workspaceId: task.workspaceId, action: "task.complete", targetType: "Task", targetId: task.id });
        return { id: task.id };
      });
    },

    async fail(ctx: RequestContext, raw: unknown): Promise<{ id: string }> {
      const me = requireMachine(ctx.viewer);
      const input = parseInput(failInput, raw);
      return work.run(async (tx) => {
        const task = await holdLease(tx, me, input.taskId, input.leaseToken, "fail", HELD_TASK_STATUSES);
        const now = new Date();
        await tx.task.update({
          where: { id: task.id },
          data: { status: "FAILED", error: input.error, finishedAt: now, ...(input.output !== undefined ? { output: json(input.output) } : {}) },
        });
        await closeOpenStages(tx, task.id, input.error, now);
        await writeTaskEvent(tx, ctx, task, "task.failed", input.error);
        await announceTask(tx, task, "task.failed", { action: "failed", status: "FAILED", attempt: task.attempt, error: input.error.slice(0, 500) }, [me.machineId]);
        await audit(tx, ctx, { workspaceId: task.workspaceId, action: "task.fail", targetType: "Task", targetId: task.id, data: { error: input.error.slice(0, 500) } });
        return { id: task.id };
      });
    },

    /** A machine's note on the task it holds (progress, a warning); readers see it among the events. */
    async addEvent(ctx: RequestContext, raw: unknown): Promise<{ id: string }> {
      const me = requireMachine(ctx.viewer);
      const input = parseInput(eventInput, raw);
      return work.run(async (tx) => {
        const task = await holdLease(tx, me, input.taskId, input.leaseToken, "add an event to", HELD_TASK_STATUSES);
        const created = await writeTaskEvent(tx, ctx, task, input.type, input.message, input.data === null || input.data === undefined ? undefined : (input.data as Prisma.InputJsonValue));
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
