// The flows dialect (../shared/seeds/004): flows (workflow definitions) and their runs, with steps
// and logs, for a browser signed in with the session cookie. snake_case fields, lower-case
// statuses, ids prefixed as the document shows them (wf_, run_, ws_ + the UUID's 32 hex digits,
// parsed back; anything else is 404), lists as {items: [...]}, errors as {"error"} (dialects.ts).
// A run is a Task of the flow; its log is the task's log.
import { randomUUID } from "node:crypto";
import { z } from "zod";
import {
  FlowsCreateDocument,
  FlowsDefaultWorkspaceDocument,
  FlowsDeleteDocument,
  FlowsFlowDocument,
  FlowsListDocument,
  FlowsLoginDocument,
  FlowsLogoutDocument,
  FlowsRecentLogsDocument,
  FlowsRecordRunDocument,
  FlowsRunDocument,
  FlowsRunLogsDocument,
  FlowsRunsDocument,
  FlowsRunStepsDocument,
  FlowsSessionDocument,
  FlowsTriggerDocument,
  FlowsUpdateDocument,
  FlowsWriteLogDocument,
  type FlowsFlowPartsFragment,
  type FlowsRunPartsFragment,
  type FlowsUserPartsFragment,
  type LogLevel,
  type TaskStageStatus,
  type TaskStatus,
} from "../generated/rest-graphql.js";
import { RestError, restNotFound, type Credential, type Route, type Run } from "./route.js";
import { collect, dialectRoute, type FieldNames } from "./shared.js";

const SIGNED_IN: Credential[] = ["cookie", "bearer"];
const MAX_LIST = 1000;

/** An id as flows shows it: `wf_` + the UUID's hex digits; a malformed one names no object (404). */
function prefixedId(prefix: string, what: string) {
  const pattern = new RegExp(`^${prefix}_([0-9a-f]{32})$`, "i");
  return {
    out: (uuid: string) => `${prefix}_${uuid.replaceAll("-", "")}`,
    in(value: string): string {
      const hex = pattern.exec(value)?.[1]?.toLowerCase();
      if (!hex) throw restNotFound(what);
      return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
    },
  };
}
const flowIds = prefixedId("wf", "flow");
const runIds = prefixedId("run", "run");
const workspaceIds = prefixedId("ws", "workspace");

/**
 * GraphQL's field names in a VALIDATION answer, as this dialect's client wrote them (the router
 * names its own checks `body.x` and `query.x` the same way). First match wins.
 */
const FIELD_NAMES: FieldNames = [
  ["input.definitionText", "body.definition_json"],
  ["input.triggeredBy", "body.triggered_by"],
  ["input.startedAt", "body.started_at"],
  ["input.finishedAt", "body.finished_at"],
  ["input.error", "body.error_text"],
  ["input.idempotencyKey", "Idempotency-Key"],
  ["input.sequence", "Idempotency-Key"],
  ["input.lines.0.at", "body.ts"],
  ["input.lines.0", "body"],
  ["input", "body"],
];
/** A route of this dialect; its handler's operations answer bad input in flows' field names. */
const flowsRoute = dialectRoute("flows", FIELD_NAMES);

/** The workspace a request means: `workspace_id` when it names one, else the caller's default. */
async function workspaceOf(run: Run, workspaceId: string | null | undefined): Promise<string> {
  if (workspaceId) return workspaceIds.in(workspaceId);
  const { defaultWorkspace } = await run(FlowsDefaultWorkspaceDocument, {});
  if (!defaultWorkspace) throw new RestError("NOT_FOUND", "You are in no workspace yet: create one or accept an invitation, or pass workspace_id");
  return defaultWorkspace.id;
}

// ---- Shapes ----------------------------------------------------------------------------------

const FLOW_STATUSES = ["draft", "active", "archived"] as const;
const RUN_STATUSES = ["pending", "running", "success", "failed"] as const;
type RunStatus = (typeof RUN_STATUSES)[number];

/** Spindle's seven task statuses in flows' four (lossy: a cancelled run is failed). */
const RUN_STATUS: Record<TaskStatus, RunStatus> = {
  PENDING: "pending",
  ASSIGNED: "pending",
  RUNNING: "running",
  SUSPENDED: "running",
  SUCCEEDED: "success",
  FAILED: "failed",
  CANCELLED: "failed",
};
const TASK_STATUSES = Object.fromEntries(
  RUN_STATUSES.map((legacy) => [legacy, (Object.keys(RUN_STATUS) as TaskStatus[]).filter((status) => RUN_STATUS[status] === legacy)]),
) as Record<RunStatus, TaskStatus[]>;

const STEP_STATUS: Record<TaskStageStatus, string> = {
  PENDING: "pending",
  RUNNING: "running",
  SUSPENDED: "running",
  SUCCEEDED: "success",
  FAILED: "failed",
  SKIPPED: "skipped",
};

const time = z.string().describe("ISO-8601 UTC, e.g. 2026-01-01T00:00:00.000Z");

const userShape = z.object({ id: z.string(), email: z.string(), username: z.string(), name: z.string() });
const userOut = (user: FlowsUserPartsFragment) => ({ id: user.id, email: user.email, username: user.username, name: user.displayName ?? user.username });

const flowShape = z.object({
  id: z.string().describe("wf_..."),
  name: z.string(),
  status: z.enum(FLOW_STATUSES),
  version: z.int(),
  workspace_id: z.string().describe("ws_..."),
  definition_json: z.string().describe("The definition as JSON text, exactly as last sent"),
  created_at: time,
  updated_at: time,
});
const flowOut = (flow: FlowsFlowPartsFragment): z.infer<typeof flowShape> => ({
  id: flowIds.out(flow.id),
  name: flow.name,
  status: flow.status.toLowerCase() as z.infer<typeof flowShape>["status"],
  version: flow.version,
  workspace_id: workspaceIds.out(flow.workspaceId),
  definition_json: flow.definitionText ?? JSON.stringify(flow.definition),
  created_at: flow.createdAt,
  updated_at: flow.updatedAt,
});

const runShape = z.object({
  id: z.string().describe("run_..."),
  workflow_id: z.string().describe("wf_..."),
  workflow_name: z.string(),
  status: z.enum(RUN_STATUSES),
  triggered_by: z.string().nullable().describe("manual, schedule, webhook ..."),
  duration_ms: z.int().nullable(),
  started_at: time.nullable(),
  finished_at: time.nullable(),
  output: z.unknown(),
  error_text: z.string().nullable(),
});
/** A run: a task of a flow. A task of no flow (or of a deleted one) is not a run here. */
function runOut(task: FlowsRunPartsFragment): z.infer<typeof runShape> {
  if (!task.flow) throw restNotFound("run");
  return {
    id: runIds.out(task.id),
    workflow_id: flowIds.out(task.flow.id),
    workflow_name: task.flow.name,
    status: RUN_STATUS[task.status],
    triggered_by: task.triggeredBy ?? null,
    duration_ms: task.durationMs ?? null,
    started_at: task.startedAt ?? null,
    finished_at: task.finishedAt ?? null,
    output: task.output ?? null,
    error_text: task.error ?? null,
  };
}

const stepShape = z.object({
  index: z.int(),
  name: z.string(),
  status: z.enum(["pending", "running", "success", "failed", "skipped"]),
  started_at: time.nullable(),
  finished_at: time.nullable(),
  duration_ms: z.int().nullable(),
  output: z.unknown(),
  error_text: z.string().nullable(),
  get logs() {
    return z.array(logShape).describe("The run's log entries written for this step, oldest first");
  },
});

const logShape = z.object({
  id: z.string().describe("log_<run hex>_<n>: the run's n-th line"),
  run_id: z.string().describe("run_..."),
  level: z.enum(["debug", "info", "warn", "error"]),
  message: z.string(),
  step: z.string().nullable().describe("The step the entry belongs to, when its writer named one"),
  ts: time,
});
const logOut = (runUuid: string, line: { cursor: string; level: LogLevel; message: string; step?: string | null; at: string }): z.infer<typeof logShape> => ({
  id: `log_${runUuid.replaceAll("-", "")}_${line.cursor}`,
  run_id: runIds.out(runUuid),
  level: line.level.toLowerCase() as z.infer<typeof logShape>["level"],
  message: line.message,
  step: line.step ?? null,
  ts: line.at,
});

/** Every log entry of a run, oldest first, page after page. */
async function allRunLogs(run: Run, runId: string): Promise<z.infer<typeof logShape>[]> {
  const lines: z.infer<typeof logShape>[] = [];
  let after: string | undefined;
  for (;;) {
    const { task, logLines } = await run(FlowsRunLogsDocument, { runId, input: { source: { type: "TASK", id: runId }, limit: MAX_LIST, after } });
    if (!task.flow) throw restNotFound("run");
    lines.push(...logLines.lines.map((line) => logOut(runId, line)));
    if (!logLines.hasMore) return lines;
    after = logLines.nextCursor;
  }
}

const items = <T extends z.ZodType>(item: T) => z.object({ items: z.array(item) });
const done = z.object({ ok: z.literal(true) });

// ---- Inputs ----------------------------------------------------------------------------------

const jsonText = (value: string) => {
  try {
    JSON.parse(value);
    return true;
  } catch {
    return false;
  }
};
const definitionJson = z.string("must be a string of JSON text").refine(jsonText, "must be valid JSON text");
const flowStatus = z.enum(FLOW_STATUSES, `must be one of ${FLOW_STATUSES.join(", ")}`);
const timestamp = z.iso.datetime({ offset: true, error: "must be an ISO-8601 time like 2026-01-01T00:00:00Z" });
const limit = (max: number, fallback: number) =>
  z.coerce.number().int("must be a whole number").min(1, `must be 1 to ${max}`).max(max, `must be 1 to ${max}`).default(fallback);
const workspaceQuery = z.object({ workspace_id: z.string().optional().describe("ws_...; default: your default workspace") });
const idParam = z.object({ id: z.string() });

const toStatus = (status: (typeof FLOW_STATUSES)[number] | null | undefined) => (status ? (status.toUpperCase() as Uppercase<typeof status>) : undefined);

/** flows' run record: a finished run's end (or start) from duration_ms when only one of them is given. */
function runTimes(body: { status: string; started_at?: string | null; finished_at?: string | null; duration_ms?: number | null }) {
  let startedAt = body.started_at ? new Date(body.started_at) : undefined;
  let finishedAt = body.finished_at ? new Date(body.finished_at) : undefined;
  const duration = body.status === "running" ? undefined : (body.duration_ms ?? undefined);
  if (duration !== undefined && !(startedAt && finishedAt)) {
    finishedAt ??= startedAt ? new Date(startedAt.getTime() + duration) : new Date();
    startedAt ??= new Date(finishedAt.getTime() - duration);
  }
  return { startedAt: startedAt?.toISOString(), finishedAt: finishedAt?.toISOString() };
}

const LOG_LEVELS: Record<string, LogLevel> = { debug: "DEBUG", info: "INFO", warn: "WARN", warning: "WARN", error: "ERROR" };

/** The run's uuid, if it is a run the caller may read: a task of a flow. */
async function requireRun(run: Run, value: string): Promise<string> {
  const id = runIds.in(value);
  if (!(await run(FlowsRunDocument, { id })).task.flow) throw restNotFound("run");
  return id;
}

/** How a run recorded here ended (or that it still runs), in Spindle's words. */
const RECORDED_STATUS = { running: "RUNNING", success: "SUCCEEDED", failed: "FAILED" } as const;

// ---- Routes ----------------------------------------------------------------------------------

export const flowsRoutes: Route[] = [
  flowsRoute({
    method: "POST",
    path: "/api/auth/login",
    summary: "Login with email + password: sets the session cookie",
    auth: ["none"],
    accepts: (body) => typeof body === "object" && body !== null && "email" in body,
    body: z.object({ email: z.string().min(1, "must not be empty"), password: z.string().min(1, "must not be empty") }),
    response: z.object({ ok: z.literal(true), user: userShape, expires_at: time }),
    async handler({ body, run }) {
      const { login } = await run(FlowsLoginDocument, { input: { login: body.email, password: body.password } });
      return { ok: true, user: userOut(login.user), expires_at: login.refreshTokenExpiresAt };
    },
  }),
  flowsRoute({
    method: "GET",
    path: "/api/auth/session",
    summary: "Get current session + user",
    auth: SIGNED_IN,
    response: z.object({ user: userShape, session: z.object({ id: z.string(), created_at: time, expires_at: time }) }),
    async handler({ run }) {
      let after: string | undefined;
      for (;;) {
        const { me, sessions } = await run(FlowsSessionDocument, { after });
        const current = sessions.edges.find((edge) => edge.node.current)?.node;
        if (current) return { user: userOut(me), session: { id: current.id, created_at: current.createdAt, expires_at: current.expiresAt } };
        if (!sessions.pageInfo.hasNextPage || !sessions.pageInfo.endCursor) throw new RestError("NOT_AUTHENTICATED", "No session: sign in first");
        after = sessions.pageInfo.endCursor;
      }
    },
  }),
  flowsRoute({
    method: "DELETE",
    path: "/api/auth/session",
    summary: "Logout (invalidate session)",
    auth: SIGNED_IN,
    response: done,
    async handler({ run }) {
      await run(FlowsLogoutDocument, {});
      return { ok: true };
    },
  }),

  flowsRoute({
    method: "GET",
    path: "/api/flows",
    summary: "List flows in workspace → {items:[]}",
    auth: SIGNED_IN,
    query: workspaceQuery,
    response: items(flowShape),
    async handler({ query, run }) {
      const workspaceId = await workspaceOf(run, query.workspace_id);
      const flows = await collect(async (page) => (await run(FlowsListDocument, { workspaceId, ...page })).workspace.flows);
      return { items: flows.map(flowOut) };
    },
  }),
  flowsRoute({
    method: "POST",
    path: "/api/flows",
    summary: "Create new flow",
    auth: SIGNED_IN,
    status: 201,
    body: z.object({
      name: z.string("must be a string"),
      status: flowStatus.nullish().describe("draft unless given"),
      definition_json: definitionJson.nullish(),
      workspace_id: z.string().nullish().describe("ws_...; default: your default workspace"),
    }),
    response: flowShape,
    async handler({ body, run, idempotencyKey }) {
      const workspaceId = await workspaceOf(run, body.workspace_id);
      const { createFlow } = await run(FlowsCreateDocument, {
        input: { workspaceId, name: body.name, definitionText: body.definition_json, status: toStatus(body.status), idempotencyKey },
      });
      return flowOut(createFlow);
    },
  }),
  flowsRoute({
    method: "GET",
    path: "/api/workflows/:id",
    summary: "Get flow by ID",
    auth: SIGNED_IN,
    params: idParam,
    response: flowShape,
    async handler({ params, run }) {
      return flowOut((await run(FlowsFlowDocument, { id: flowIds.in(params.id) })).flow);
    },
  }),
  flowsRoute({
    method: "PUT",
    path: "/api/workflows/:id",
    summary: "Update flow",
    auth: SIGNED_IN,
    params: idParam,
    body: z.object({
      name: z.string("must be a string").nullish(),
      status: flowStatus.nullish(),
      definition_json: definitionJson.nullish(),
    }),
    response: flowShape,
    async handler({ params, body, run }) {
      const { updateFlow } = await run(FlowsUpdateDocument, {
        input: { id: flowIds.in(params.id), name: body.name ?? undefined, definitionText: body.definition_json, status: toStatus(body.status) },
      });
      return flowOut(updateFlow);
    },
  }),
  flowsRoute({
    method: "DELETE",
    path: "/api/workflows/:id",
    summary: "Delete flow",
    auth: SIGNED_IN,
    params: idParam,
    response: done,
    async handler({ params, run }) {
      await run(FlowsDeleteDocument, { id: flowIds.in(params.id) });
      return { ok: true };
    },
  }),
  flowsRoute({
    method: "POST",
    path: "/api/workflows/:id/run",
    summary: "Trigger a run of this flow (an active one): a pending run the machines pick up",
    auth: SIGNED_IN,
    status: 201,
    params: idParam,
    body: z.object({
      input: z.unknown().optional().describe("What the run starts from (JSON)"),
      triggered_by: z.string().nullish().describe("manual (default), schedule, webhook ..."),
    }),
    response: runShape,
    async handler({ params, body, run, idempotencyKey }) {
      const { runFlow } = await run(FlowsTriggerDocument, {
        input: { flowId: flowIds.in(params.id), input: body.input, triggeredBy: body.triggered_by, idempotencyKey },
      });
      return runOut(runFlow);
    },
  }),

  flowsRoute({
    method: "GET",
    path: "/api/runs",
    summary: "List runs, newest first. Query: ?limit=50&status=success",
    auth: SIGNED_IN,
    query: workspaceQuery.extend({
      limit: limit(MAX_LIST, 50),
      offset: z.coerce.number().int("must be a whole number").min(0, "must be 0 or more").max(10_000, "must be at most 10000").optional(),
      status: z.enum(RUN_STATUSES, `must be one of ${RUN_STATUSES.join(", ")}`).optional(),
    }),
    response: items(runShape),
    async handler({ query, run }) {
      const workspaceId = await workspaceOf(run, query.workspace_id);
      const status = query.status ? TASK_STATUSES[query.status] : undefined;
      const runs = await collect(async (page) => (await run(FlowsRunsDocument, { workspaceId, status, ...page })).workspace.tasks, query.limit, query.offset);
      return { items: runs.map(runOut) };
    },
  }),
  flowsRoute({
    method: "POST",
    path: "/api/runs",
    summary: "Create run record manually: a run executed elsewhere, recorded as it stands",
    auth: SIGNED_IN,
    status: 201,
    body: z.object({
      workflow_id: z.string("must be a flow id (wf_...)"),
      status: z.enum(Object.keys(RECORDED_STATUS) as (keyof typeof RECORDED_STATUS)[], "must be running, success or failed: the run was executed elsewhere (POST /api/workflows/:id/run queues a new one)"),
      triggered_by: z.string().nullish().describe("manual (default), schedule, webhook ..."),
      started_at: timestamp.nullish(),
      finished_at: timestamp.nullish().describe("Default: started_at + duration_ms, else now"),
      duration_ms: z.int("must be a whole number").min(0, "must be 0 or more").nullish(),
      output: z.unknown().optional(),
      error_text: z.string().nullish(),
      input: z.unknown().optional(),
    }),
    response: runShape,
    async handler({ body, run, idempotencyKey }) {
      const { recordFlowRun } = await run(FlowsRecordRunDocument, {
        input: {
          flowId: flowIds.in(body.workflow_id),
          status: RECORDED_STATUS[body.status],
          triggeredBy: body.triggered_by,
          ...runTimes(body),
          output: body.output,
          error: body.error_text,
          input: body.input,
          idempotencyKey,
        },
      });
      return runOut(recordFlowRun);
    },
  }),
  flowsRoute({
    method: "GET",
    path: "/api/runs/:id",
    summary: "Get run by ID",
    auth: SIGNED_IN,
    params: idParam,
    response: runShape,
    async handler({ params, run }) {
      return runOut((await run(FlowsRunDocument, { id: runIds.in(params.id) })).task);
    },
  }),
  flowsRoute({
    method: "GET",
    path: "/api/runs/:id/steps",
    summary: "Get the steps of a run, in order",
    auth: SIGNED_IN,
    params: idParam,
    response: items(stepShape),
    async handler({ params, run }) {
      const runId = runIds.in(params.id);
      const { task } = await run(FlowsRunStepsDocument, { id: runId });
      if (!task.flow) throw restNotFound("run");
      const logs = await allRunLogs(run, runId);
      return {
        items: task.stages.map((stage) => ({
          logs: logs.filter((line) => line.step === stage.name),
          index: stage.index,
          name: stage.name,
          status: STEP_STATUS[stage.status] as z.infer<typeof stepShape>["status"],
          started_at: stage.startedAt ?? null,
          finished_at: stage.finishedAt ?? null,
          duration_ms: stage.durationMs ?? null,
          output: stage.output ?? null,
          error_text: stage.error ?? null,
        })),
      };
    },
  }),

  flowsRoute({
    method: "GET",
    path: "/api/logs",
    summary: "List logs, newest first: a run's (run_id) or all runs' of the workspace. Query: ?run_id=&limit=",
    auth: SIGNED_IN,
    query: workspaceQuery.extend({ run_id: z.string().optional().describe("run_..."), limit: limit(MAX_LIST, 100) }),
    response: items(logShape),
    async handler({ query, run }) {
      if (query.run_id) {
        const runId = runIds.in(query.run_id);
        const { task, logLines } = await run(FlowsRunLogsDocument, { runId, input: { source: { type: "TASK", id: runId }, limit: query.limit, tail: true } });
        if (!task.flow) throw restNotFound("run");
        return { items: logLines.lines.map((line) => logOut(runId, line)).reverse() };
      }
      const workspaceId = await workspaceOf(run, query.workspace_id);
      const { workspace } = await run(FlowsRecentLogsDocument, { workspaceId, limit: query.limit });
      return { items: workspace.recentLogLines.map((line) => logOut(line.sourceId, line)) };
    },
  }),
  flowsRoute({
    method: "POST",
    path: "/api/logs",
    summary: "Write a log entry for a run",
    auth: SIGNED_IN,
    status: 201,
    body: z.object({
      run_id: z.string("must be a run id (run_...)"),
      level: z
        .string()
        .toLowerCase()
        .pipe(z.enum(Object.keys(LOG_LEVELS) as [string, ...string[]], `must be one of ${Object.keys(LOG_LEVELS).join(", ")}`))
        .default("info"),
      message: z.string("must be a string"),
      step: z.string("must be a string").nullish().describe("The step (by name) the entry belongs to"),
      ts: timestamp.nullish().describe("When it was written; default: when it arrives"),
    }),
    response: logShape,
    async handler({ body, run, idempotencyKey }) {
      const runId = await requireRun(run, body.run_id);
      const source = { type: "TASK" as const, id: runId };
      const line = { level: LOG_LEVELS[body.level]!, message: body.message, step: body.step, at: body.ts };
      const { appendLogs } = await run(FlowsWriteLogDocument, { input: { source, sequence: idempotencyKey ?? randomUUID(), lines: [line] } });
      // The line as stored: without ts its time is the server's, the same for a retry.
      const { logLines } = await run(FlowsRunLogsDocument, { runId, input: { source, after: String(BigInt(appendLogs.firstCursor) - 1n), limit: 1 } });
      return logOut(runId, logLines.lines[0]!);
    },
  }),
  flowsRoute({
    method: "GET",
    path: "/api/logs/:runId",
    summary: "Get all logs for a run, oldest first",
    auth: SIGNED_IN,
    params: z.object({ runId: z.string() }),
    response: items(logShape),
    async handler({ params, run }) {
      return { items: await allRunLogs(run, runIds.in(params.runId)) };
    },
  }),

  flowsRoute({
    method: "GET",
    path: "/api/health",
    summary: "Health check. No auth required.",
    auth: ["none"],
    response: z.object({ ok: z.literal(true), ts: time }),
    async handler({ health }) {
      // Down means the database does not answer: 503 with the dialect's error body.
      const { status } = await health();
      if (status === "down") throw new RestError("SERVICE_UNAVAILABLE", "The database does not answer");
      return { ok: true, ts: new Date().toISOString() };
    },
  }),
];
