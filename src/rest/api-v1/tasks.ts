// api-v1's tasks (../shared/seeds/003, "Tasks"): Spindle tasks of the caller's default workspace.
// `agent_id` is the agent a task is for (Spindle's targetAgentId: only that agent's machine claims
// it), `required_tools` its requiredCapabilities, `result` its output. Statuses are Spindle's in
// lower case except SUCCEEDED, which api-v1 calls "completed"; priorities are low, normal, high,
// urgent (and, sent, medium = normal, critical = urgent). Lists are plain arrays, newest first. A task
// of another workspace, even one of the caller's, is the same 404 as an unknown id.
import { z } from "zod";
import {
  ApiV1TaskCancelDocument,
  ApiV1TaskCreateDocument,
  ApiV1TaskGetDocument,
  ApiV1TaskScopeDocument,
  ApiV1TaskStatsDocument,
  ApiV1TaskUpdateDocument,
  type TaskStatus,
} from "../../generated/rest-api-v1-graphql.js";
import type { Route, Run } from "../route.js";
import { inDefaultWorkspace } from "../shared.js";
import { BEARER, apiV1Route, lower, workspaceOf } from "./common.js";
import {
  API_V1_TASK_STATUSES,
  PRIORITY_CHOICES,
  TASK_PRIORITIES,
  TASK_STATUSES,
  priorityIn,
  taskOut,
  taskShape,
  taskStatusOut,
  workspaceTasks,
} from "./shapes.js";

/** A list answers this many tasks unless `limit` says otherwise, and at most MAX_LIMIT (pages of 100 underneath). */
const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 1000;
/** Spindle's task lists skip at most this many rows. */
const MAX_OFFSET = 10_000;

// ---- Inputs ----------------------------------------------------------------------------------

const text = () => z.string("must be a string");
const idParam = z.object({ id: z.string() });

const statusIn = (word: string): TaskStatus | undefined => {
  const index = (API_V1_TASK_STATUSES as readonly string[]).indexOf(word.trim().toLowerCase());
  return index < 0 ? undefined : TASK_STATUSES[index];
};

/** `a` or `a,b,c`: each word read by `read`; a word it does not know is a 422 listing the choices. */
function wordList<T>(read: (word: string) => T | undefined, choices: string) {
  return z.string().transform((value, ctx) => {
    const read_ = value.split(",").filter((word) => word.trim()).map(read);
    if (read_.length === 0 || read_.includes(undefined)) {
      ctx.addIssue({ code: "custom", message: `must be one or more (comma-separated) of ${choices}` });
      return z.NEVER;
    }
    return [...new Set(read_ as T[])];
  });
}

const priority = text().transform((word, ctx) => {
  const read = priorityIn(word);
  if (!read) ctx.addIssue({ code: "custom", message: `must be one of ${PRIORITY_CHOICES}` });
  return read ?? z.NEVER;
});

const deadline = z.iso.datetime({ offset: true, error: "must be an ISO-8601 time like 2027-01-01T00:00:00Z" }).describe("In the future");
const tools = z.array(text(), "must be a list of strings");

const whole = (name: string) => z.coerce.number(`must be ${name}`).int(`must be ${name}`);

const listQuery = z.object({
  status_filter: wordList(statusIn, API_V1_TASK_STATUSES.join(", ")).optional().describe("One status, or several comma-separated"),
  priority: wordList(priorityIn, PRIORITY_CHOICES).optional().describe("One priority, or several comma-separated"),
  agent_id: z.guid("must be an agent id (a UUID)").optional(),
  limit: whole("a whole number").min(1, `must be 1 to ${MAX_LIMIT}`).max(MAX_LIMIT, `must be 1 to ${MAX_LIMIT}`).default(DEFAULT_LIMIT).describe(`Default ${DEFAULT_LIMIT}, at most ${MAX_LIMIT}`),
  offset: whole("a whole number").min(0, "must be 0 or more").max(MAX_OFFSET, `must be at most ${MAX_OFFSET}`).optional(),
});

const createBody = z.object({
  title: text().optional().describe("1-200 characters; left out, the first line of the description"),
  description: text().nullish(),
  instructions: text().nullish(),
  priority: priority.nullish().describe(`${PRIORITY_CHOICES}; normal unless given`),
  agent_id: text().nullish().describe("An agent of your workspace: only its worker takes the task"),
  deadline: deadline.nullish(),
  required_tools: tools.nullish(),
});

/** What a worker reports, not a person: refused by name rather than dropped without a word. */
const notSettable = (what: string) =>
  z
    .unknown()
    .refine((value) => value === undefined, `cannot be set: ${what}`)
    .optional()
    .describe("Not settable (422)");
const REPORTED_BY_WORKER = "a task's worker reports it through Spindle's machine API (startTask, completeTask, failTask); POST /api/v1/tasks/{id}/cancel cancels";

const updateBody = z.object({
  title: text().optional().describe("1-200 characters"),
  description: text().nullish().describe("null clears it"),
  priority: priority.optional(),
  deadline: deadline.nullish().describe("null clears it"),
  instructions: text().nullish().describe("Only while pending; null clears it"),
  required_tools: tools.optional().describe("Only while pending"),
  agent_id: text().nullish().describe("Only while pending; null: no agent and no worker it is bound to"),
  status: notSettable(REPORTED_BY_WORKER),
  result: notSettable(REPORTED_BY_WORKER),
  error: notSettable(REPORTED_BY_WORKER),
});

const statsShape = z.object({
  total: z.int(),
  by_status: z.record(z.enum(API_V1_TASK_STATUSES), z.int()).describe("Every status, zeros included"),
  by_priority: z.record(z.enum(TASK_PRIORITIES.map(lower) as ["low", "normal", "high", "urgent"]), z.int()).describe("Every priority, zeros included"),
});

// ---- Lookups ---------------------------------------------------------------------------------

/** The task, if it is in the caller's workspace (else 404, as for an unknown id). */
const ownTask = async (run: Run, id: string) => inDefaultWorkspace(await run(ApiV1TaskGetDocument, { id }), (r) => r.task, "task");

/** The same check before a change, reading only whose the task is. */
async function requireOwnTask(run: Run, id: string): Promise<void> {
  inDefaultWorkspace(await run(ApiV1TaskScopeDocument, { id }), (r) => r.task, "task");
}

/** Counts keyed by api-v1's words, every one present (zeros included) in Spindle's order. */
function countsBy<K extends string, W extends string>(keys: readonly K[], word: (key: K) => W, counts: { key: K; count: number }[]): Record<W, number> {
  const byKey = new Map(counts.map((c) => [c.key, c.count]));
  return Object.fromEntries(keys.map((key) => [word(key), byKey.get(key) ?? 0])) as Record<W, number>;
}

// ---- Routes ----------------------------------------------------------------------------------

export const apiV1TaskRoutes: Route[] = [
  apiV1Route({
    method: "GET",
    path: "/api/v1/tasks/",
    summary: `Tasks of your workspace, newest first. Query: status_filter, priority (each one value or comma-separated), agent_id, limit (default ${DEFAULT_LIMIT}, at most ${MAX_LIMIT}), offset`,
    auth: BEARER,
    query: listQuery,
    response: z.array(taskShape),
    async handler({ query, run }) {
      const workspaceId = await workspaceOf(run);
      const filters = { status: query.status_filter, priority: query.priority, targetAgentId: query.agent_id };
      return workspaceTasks(run, workspaceId, filters, query.limit, query.offset);
    },
  }),
  apiV1Route({
    method: "POST",
    path: "/api/v1/tasks/",
    summary: "Create a pending task; agent_id: the agent (of your workspace) it is for, whose worker alone takes it. Takes an Idempotency-Key",
    auth: BEARER,
    status: 201,
    body: createBody,
    response: taskShape,
    async handler({ body, run, idempotencyKey }) {
      const workspaceId = await workspaceOf(run);
      const input = {
        workspaceId,
        title: body.title,
        description: body.description,
        instructions: body.instructions,
        priority: body.priority,
        targetAgentId: body.agent_id,
        deadline: body.deadline,
        requiredCapabilities: body.required_tools,
        idempotencyKey,
      };
      return taskOut((await run(ApiV1TaskCreateDocument, { input })).createTask);
    },
  }),
  apiV1Route({
    method: "GET",
    path: "/api/v1/tasks/stats",
    summary: "How many tasks your workspace has, by status and by priority (every one listed, zeros included)",
    auth: BEARER,
    response: statsShape,
    async handler({ run }) {
      const { taskStats } = await run(ApiV1TaskStatsDocument, { workspaceId: await workspaceOf(run) });
      return {
        total: taskStats.total,
        by_status: countsBy(TASK_STATUSES, taskStatusOut, taskStats.byStatus.map((c) => ({ key: c.status, count: c.count }))),
        by_priority: countsBy(TASK_PRIORITIES, lower, taskStats.byPriority.map((c) => ({ key: c.priority, count: c.count }))),
      };
    },
  }),
  apiV1Route({
    method: "GET",
    path: "/api/v1/tasks/{id}",
    summary: "A task, with its result (or error)",
    auth: BEARER,
    params: idParam,
    response: taskShape,
    async handler({ params, run }) {
      return taskOut(await ownTask(run, params.id));
    },
  }),
  apiV1Route({
    method: "PATCH",
    path: "/api/v1/tasks/{id}",
    summary:
      "Change the fields sent (null clears an optional one): title, description, priority, deadline at any time; instructions, required_tools, agent_id only while pending (else 409). status, result and error are not settable (422)",
    auth: BEARER,
    params: idParam,
    body: updateBody,
    response: taskShape,
    async handler({ params, body, run }) {
      await requireOwnTask(run, params.id);
      const input = {
        id: params.id,
        title: body.title,
        description: body.description,
        priority: body.priority,
        deadline: body.deadline,
        instructions: body.instructions,
        requiredCapabilities: body.required_tools,
        targetAgentId: body.agent_id,
      };
      return taskOut((await run(ApiV1TaskUpdateDocument, { input })).updateTask);
    },
  }),
  apiV1Route({
    method: "POST",
    path: "/api/v1/tasks/{id}/cancel",
    summary: "Cancel a pending, assigned, running or suspended task (else 409); its worker learns it on its next report. Body (optional): reason",
    auth: BEARER,
    params: idParam,
    body: z.object({ reason: text().max(1000, "must be at most 1000 characters").nullish().describe("Kept in the task's error: 'Cancelled: <reason>'") }),
    response: taskShape,
    async handler({ params, body, run }) {
      await requireOwnTask(run, params.id);
      return taskOut((await run(ApiV1TaskCancelDocument, { id: params.id, reason: body.reason })).cancelTask);
    },
  }),
];
