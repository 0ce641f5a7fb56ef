// The machines' push channel (`machineAssignments`): for the calling machine, an item now and again
// each time what it must do changed: a worker or service placed on it, stopped, redeployed or given
// new settings; a task it holds cancelled or a stage of it confirmed; drain, approval; whether a
// task it may claim is waiting. The item only says "this changed": its fields are read when it is
// sent, so the machine always gets the state as it is, never a diff to apply in order.
//
// Woken by the machine's status notices (every change above notes its machine) and the workspace's
// events (new and requeued tasks), it reads a fingerprint of the machine's assignments and sends an
// item only when that changed. The fingerprints of all the machines of a workspace woken together
// are one statement (`gather`). Counters (ticks, usage, lease renewals) are left out of the
// fingerprint: they change all the time and ask nothing of the machine.
import { requireMachine } from "../../auth/viewer.js";
import type { Database } from "../../infra/db.js";
import { on, type LiveStreams } from "../../infra/streams.js";
import { failureItem, type StreamFailure, type StreamGuards } from "../shared/live.js";
import type { RequestContext } from "../shared/request.js";
import { literalList } from "../shared/sql.js";
import { HELD_TASK_STATUSES } from "../task/task-statuses.js";
import { LIVE_SERVICE_STATUSES, LIVE_WORKER_STATUSES } from "../worker/worker-statuses.js";

/** Read again this often without a notice: also how late a task whose lease ran out shows as claimable. */
const POLL_MS = 5_000;

/** One item of the stream; the GraphQL type reads the rest (workers, services, tasks) when it is sent. */
export interface AssignmentsItem {
  machineId: string;
  workspaceId: string;
  /** A task this machine may claim now is waiting (or its lease ran out). */
  claimable: boolean;
  at: Date;
}

interface MachineState {
  fingerprint: string;
  claimable: boolean;
}

// Columns that change without asking anything of the machine.
const WORKER_NOISE = `ARRAY['tickCount','errorCount','lastTickAt','cpuPercent','memoryBytes','updatedAt','statusReason']`;
const SERVICE_NOISE = `ARRAY['updatedAt','statusReason','restartCount','lastRestartAt','domainStatus','domainCheckedAt','domainToken']`;
const TASK_NOISE = `ARRAY['leaseExpiresAt','updatedAt']`;

/** The fingerprint and claimable flag of each machine asked for, in one statement. */
const STATE_SQL = `
  SELECT m."id"::text AS "id",
         md5(concat_ws('|',
           m."approval"::text, m."schedulable"::text, (m."drainingSince" IS NOT NULL)::text, array_to_string(m."capabilities", ','),
           (SELECT string_agg(md5((to_jsonb(w) - ${WORKER_NOISE})::text), ',' ORDER BY w."id")
              FROM "Worker" w WHERE w."machineId" = m."id" AND w."status" IN (${literalList(LIVE_WORKER_STATUSES)})),
           (SELECT string_agg(md5((to_jsonb(s) - ${SERVICE_NOISE})::text), ',' ORDER BY s."id")
              FROM "Service" s WHERE s."machineId" = m."id" AND s."status" IN (${literalList(LIVE_SERVICE_STATUSES)})),
           (SELECT string_agg(md5((to_jsonb(t) - ${TASK_NOISE})::text) || ':' ||
                   COALESCE((SELECT string_agg(st."status"::text, '' ORDER BY st."index") FROM "TaskStage" st WHERE st."taskId" = t."id"), ''),
                   ',' ORDER BY t."id")
              FROM "Task" t WHERE t."machineId" = m."id" AND t."status" IN (${literalList(HELD_TASK_STATUSES)}))
         )) AS "fingerprint",
         (m."approval" = 'APPROVED' AND m."schedulable" AND m."drainingSince" IS NULL AND EXISTS (
            SELECT 1 FROM "Task" t
             WHERE t."workspaceId" = m."workspaceId"
               AND (t."status" = 'PENDING'
                    OR (t."status" IN ('ASSIGNED', 'RUNNING') AND t."leaseExpiresAt" < (now() AT TIME ZONE 'UTC')))
               AND COALESCE(t."requiredCapabilities", '{}') <@ COALESCE(m."capabilities", '{}')
               AND (t."targetMachineId" IS NULL OR t."targetMachineId" = m."id"))) AS "claimable"
    FROM "Machine" m
   WHERE m."id" = ANY($1::uuid[]) AND m."workspaceId" = $2::uuid AND m."decommissionedAt" IS NULL`;

export function createAssignmentStreams(deps: { db: Pick<Database, "withConnection">; streams: LiveStreams; guards: StreamGuards }) {
  const { db, streams, guards } = deps;

  const readStates = (workspaceId: string, machineIds: string[]) =>
    db
      .withConnection((sql) => sql.query<MachineState & { id: string }>(STATE_SQL, [[...new Set(machineIds)], workspaceId]))
      .then((rows) => new Map(rows.map((row) => [row.id, row])));

  return {
    /** The calling machine's assignments now, then after each change; ends once its credential stops working. */
    open(ctx: Pick<RequestContext, "viewer">): AsyncIterable<AssignmentsItem | StreamFailure> {
      const me = requireMachine(ctx.viewer);
      let previous: string | undefined;
      return streams.open<AssignmentsItem | StreamFailure>({
        watches: [
          on("status", me.machineId, (_notice, control) => control.wake()),
          on("workspaceEvents", me.workspaceId, (_notice, control) => control.wake()),
        ],
        guard: guards.forMachine(me),
        pollMs: POLL_MS,
        async read() {
          const states = await streams.gather(`assignments:${me.workspaceId}`, me.machineId, (ids) => readStates(me.workspaceId, ids));
          const state = states.get(me.machineId);
          // Decommissioned: the guard ends the stream with the reason on its next check.
          if (!state) return { items: [] };
          const now = `${state.fingerprint}:${state.claimable}`;
          if (now === previous) return { items: [] };
          previous = now;
          return { items: [{ machineId: me.machineId, workspaceId: me.workspaceId, claimable: state.claimable, at: new Date() }] };
        },
        last: failureItem,
      });
    },
  };
}

export type AssignmentStreams = ReturnType<typeof createAssignmentStreams>;
