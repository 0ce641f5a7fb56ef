// api-web's signed-in user (../shared/seeds/002): sign-in with access and refresh tokens, tasks
// (with stages, events and logs), machines, and the profile (password, TOTP, personal access
// tokens). camelCase JSON, lower-case statuses, Spindle's UUIDs as ids (a developer's id is the
// integer legacyId), lists as plain arrays, errors as {"error"} (dialects.ts). Every route works
// in the caller's one workspace (workspaceOf): a task or machine of another workspace is 404.
import { z } from "zod";
import {
  ApiWebCancelTaskDocument,
  ApiWebChangePasswordDocument,
  ApiWebConfirmStageDocument,
  ApiWebCreateTaskDocument,
  ApiWebCreateTokenDocument,
  ApiWebDrainMachineDocument,
  ApiWebEnableTotpDocument,
  ApiWebLoginDocument,
  ApiWebLogoutDocument,
  ApiWebMachineDocument,
  ApiWebMachinesDocument,
  ApiWebMachineSearchDocument,
  ApiWebPendingConfirmDocument,
  ApiWebProfileDocument,
  ApiWebRefreshDocument,
  ApiWebRetryTaskDocument,
  ApiWebRevokeTokenDocument,
  ApiWebSetupTotpDocument,
  ApiWebTaskDocument,
  ApiWebTaskEventsDocument,
  ApiWebTaskLogsDocument,
  ApiWebTasksDocument,
  ApiWebTaskWorkspaceDocument,
  ApiWebTokensDocument,
  ApiWebUndrainMachineDocument,
  ApiWebUpdateProfileDocument,
  type ApiWebEventPartsFragment,
  type ApiWebMachinePartsFragment,
  type ApiWebTaskPartsFragment,
  type ApiWebTokenPartsFragment,
  type ApiWebUserPartsFragment,
  type LogLevel,
  type TaskStatus,
} from "../../generated/rest-api-web-graphql.js";
import { RestError, restNotFound, type Credential, type Route, type Run } from "../route.js";
import { collect, dialectRoute, inDefaultWorkspace, type FieldNames } from "../shared.js";
import { API_WEB_FIELDS, BEARER, badInput, done, lower, machineOut, machineShape, projectIdOf, time, workspaceOf } from "./common.js";

const PUBLIC: Credential[] = ["none"];
/** The most a `limit` asks for at once (logLines' own page limit). */
const MAX_LIMIT = 1000;

/** Renames only these routes need: a task's title comes from its description, a token's name is its label. */
const USER_FIELDS: FieldNames = [
  ["input.title", "body.description"],
  ["input.name", "body.label"],
];
const webRoute = dialectRoute("api-web", [...USER_FIELDS, ...API_WEB_FIELDS]);

// ---- Shapes ----------------------------------------------------------------------------------

const lowerEnum = <T extends string>(values: readonly T[]) => z.enum(values.map(lower) as [Lowercase<T>, ...Lowercase<T>[]]);

const TASK_STATUSES = ["PENDING", "ASSIGNED", "RUNNING", "SUSPENDED", "SUCCEEDED", "FAILED", "CANCELLED"] as const satisfies readonly TaskStatus[];

const pendingShape = z.object({ stageIndex: z.int(), stageName: z.string(), prompt: z.unknown().describe("What the person is asked (JSON)") });

const stageShape = z.object({
  index: z.int(),
  name: z.string(),
  status: lowerEnum(["PENDING", "RUNNING", "SUSPENDED", "SUCCEEDED", "FAILED", "SKIPPED"]),
  requiresConfirmation: z.boolean(),
  prompt: z.unknown(),
  result: z.string().nullable().describe("A person's answer to a confirmed stage"),
  output: z.unknown(),
  error: z.string().nullable(),
  startedAt: time.nullable(),
  finishedAt: time.nullable(),
  durationMs: z.int().nullable(),
});

const taskShape = z.object({
  id: z.string(),
  title: z.string(),
  description: z.string().nullable(),
  instructions: z.string().nullable(),
  status: lowerEnum(TASK_STATUSES),
  priority: lowerEnum(["LOW", "NORMAL", "HIGH", "URGENT"]),
  projectKey: z.string().nullable(),
  targetMachineId: z.string().nullable().describe("The machine (id) the task was created for, if any"),
  machine: z
    .object({ id: z.string(), machineId: z.string().nullable().describe("The id the machine chose for itself"), name: z.string() })
    .nullable()
    .describe("The machine of the current or last attempt"),
  attempt: z.int(),
  currentStageIndex: z.int().nullable(),
  stages: z.array(stageShape),
  pendingConfirmation: pendingShape.nullable().describe("While suspended: the stage waiting for confirmation"),
  input: z.unknown(),
  output: z.unknown(),
  error: z.string().nullable(),
  requiredCapabilities: z.array(z.string()),
  deadline: time.nullable(),
  createdAt: time,
  updatedAt: time,
  startedAt: time.nullable(),
  finishedAt: time.nullable(),
  durationMs: z.int().nullable(),
});
type TaskOut = z.infer<typeof taskShape>;

function taskOut(task: ApiWebTaskPartsFragment): TaskOut {
  return {
    id: task.id,
    title: task.title,
    description: task.description ?? null,
    instructions: task.instructions ?? null,
    status: lower(task.status),
    priority: lower(task.priority),
    projectKey: task.project?.key ?? null,
    targetMachineId: task.targetMachineId ?? null,
    machine: task.machine ? { id: task.machine.id, machineId: task.machine.externalId ?? null, name: task.machine.name } : null,
    attempt: task.attempt,
    currentStageIndex: task.currentStageIndex ?? null,
    stages: task.stages.map((stage) => ({
      index: stage.index,
      name: stage.name,
      status: lower(stage.status),
      requiresConfirmation: stage.requiresConfirmation,
      prompt: stage.prompt ?? null,
      result: stage.result ?? null,
      output: stage.output ?? null,
      error: stage.error ?? null,
      startedAt: stage.startedAt ?? null,
      finishedAt: stage.finishedAt ?? null,
      durationMs: stage.durationMs ?? null,
    })),
    pendingConfirmation: task.pendingConfirmation ? pendingOut(task.pendingConfirmation) : null,
    input: task.input ?? null,
    output: task.output ?? null,
    error: task.error ?? null,
    requiredCapabilities: task.requiredCapabilities,
    deadline: task.deadline ?? null,
    createdAt: task.createdAt,
    updatedAt: task.updatedAt,
    startedAt: task.startedAt ?? null,
    finishedAt: task.finishedAt ?? null,
    durationMs: task.durationMs ?? null,
  };
}

const pendingOut = (pending: { stageIndex: number; stageName: string; prompt?: unknown }) => ({
  stageIndex: pending.stageIndex,
  stageName: pending.stageName,
  prompt: pending.prompt ?? null,
});

const pendingConfirmShape = z.object({
  taskId: z.string(),
  status: taskShape.shape.status,
  pending: z.boolean().describe("Whether the task waits for a person (suspended); the stage fields are null otherwise"),
  stageIndex: z.int().nullable(),
  stageName: z.string().nullable(),
  prompt: z.unknown(),
});

const eventShape = z.object({
  id: z.string(),
  type: z.string().describe("task.created, stage.suspended, ... or a type the machine chose (log, progress ...)"),
  message: z.string(),
  data: z.unknown(),
  attempt: z.int(),
  actorType: lowerEnum(["USER", "API_KEY", "MACHINE", "SYSTEM"]),
  at: time,
});
const eventOut = (event: ApiWebEventPartsFragment): z.infer<typeof eventShape> => ({
  id: event.id,
  type: event.type,
  message: event.message,
  data: event.data ?? null,
  attempt: event.attempt,
  actorType: lower(event.actorType),
  at: event.at,
});

const logShape = z.object({
  line: z.int().describe("The line's number in the task's log, from 1: `offset=n` reads from line n + 1"),
  level: lowerEnum(["DEBUG", "INFO", "WARN", "ERROR"] as const satisfies readonly LogLevel[]),
  message: z.string(),
  step: z.string().nullable().describe("The stage the line belongs to, when its writer named one"),
  at: time,
});

/** A machine as the user sees it: the shared shape, with when it last changed. */
const userMachineShape = machineShape.extend({ updatedAt: time });
const userMachineOut = (machine: ApiWebMachinePartsFragment): z.infer<typeof userMachineShape> => ({ ...machineOut(machine), updatedAt: machine.updatedAt });

const profileShape = z.object({
  id: z.int().describe("The developer id"),
  username: z.string(),
  name: z.string().describe("The display name, else the username"),
  email: z.string().nullable().describe("Null for an account made without one (it signs in by username)"),
  gitName: z.string().nullable(),
  gitEmail: z.string().nullable(),
  role: lowerEnum(["ADMIN", "USER"]),
  totpEnabled: z.boolean(),
  createdAt: time,
});
const profileOut = (user: ApiWebUserPartsFragment): z.infer<typeof profileShape> => ({
  id: user.legacyId,
  username: user.username,
  name: user.displayName ?? user.username,
  email: user.email ?? null,
  gitName: user.gitName ?? null,
  gitEmail: user.gitEmail ?? null,
  role: lower(user.role),
  totpEnabled: user.totpEnabled,
  createdAt: user.createdAt,
});

const tokenShape = z.object({
  id: z.string(),
  label: z.string(),
  prefix: z.string().describe("The token's first characters, to tell tokens apart"),
  scopes: z.array(lowerEnum(["READ", "WRITE", "ADMIN"])),
  workspaceId: z.string().nullable().describe("The workspace the token is bound to"),
  revoked: z.boolean(),
  createdAt: time,
  expiresAt: time.nullable(),
  lastUsedAt: time.nullable(),
  revokedAt: time.nullable(),
});
const tokenOut = (token: ApiWebTokenPartsFragment): z.infer<typeof tokenShape> => ({
  id: token.id,
  label: token.name,
  prefix: token.prefix,
  scopes: token.scopes.map(lower),
  workspaceId: token.workspaceId ?? null,
  revoked: token.revokedAt != null,
  createdAt: token.createdAt,
  expiresAt: token.expiresAt ?? null,
  lastUsedAt: token.lastUsedAt ?? null,
  revokedAt: token.revokedAt ?? null,
});

const tokenPair = z.object({ accessToken: z.string(), refreshToken: z.string() });

// ---- Inputs ----------------------------------------------------------------------------------

const idParam = z.object({ id: z.string() });
const text = (what = "a string") => z.string(`must be ${what}`);
const required = () => text().min(1, "must not be empty");
const limit = z.coerce.number().int("must be a whole number").min(1, `must be 1 to ${MAX_LIMIT}`).max(MAX_LIMIT, `must be 1 to ${MAX_LIMIT}`).optional();
const offset = (max: number) => z.coerce.number().int("must be a whole number").min(0, "must be 0 or more").max(max, `must be at most ${max}`).optional();
/** Offset paging as Spindle's task lists allow it. */
const paging = z.object({ limit, offset: offset(10_000) });

/** `status=failed` or `status=failed,cancelled`: lower-case task statuses. */
const statusFilter = z
  .string()
  .transform((value, ctx) => {
    const statuses = value.split(",").map((s) => s.trim().toUpperCase());
    const bad = statuses.filter((s) => !(TASK_STATUSES as readonly string[]).includes(s));
    if (bad.length) {
      ctx.addIssue({ code: "custom", message: `must be one or more (comma-separated) of ${TASK_STATUSES.map(lower).join(", ")}` });
      return z.NEVER;
    }
    return statuses as TaskStatus[];
  })
  .optional();


// ---- Lookups ---------------------------------------------------------------------------------

// Each operation reads the caller's workspace beside the object, in one request (inDefaultWorkspace).
const ownTask = async (run: Run, id: string) => inDefaultWorkspace(await run(ApiWebTaskDocument, { id }), (r) => r.task, "task");
const requireOwnTask = async (run: Run, id: string) => inDefaultWorkspace(await run(ApiWebTaskWorkspaceDocument, { id }), (r) => r.task, "task");
const ownMachine = async (run: Run, id: string) => inDefaultWorkspace(await run(ApiWebMachineDocument, { id }), (r) => r.machine, "machine");

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * api-web's `machineId` is the id a machine chose for itself (Spindle's externalId), matched exactly
 * among the workspace's machines; failing that, a Spindle machine id passes on to createTask, which
 * checks it is in the workspace.
 */
async function targetMachineOf(run: Run, workspaceId: string, machineId: string): Promise<string> {
  const candidates = await collect(async (page) => (await run(ApiWebMachineSearchDocument, { workspaceId, search: machineId, ...page })).workspace.machines);
  const match = candidates.find((machine) => machine.externalId === machineId);
  if (match) return match.id;
  if (UUID.test(machineId)) return machineId;
  throw badInput("body.machineId", "no machine with this machineId in your workspace");
}

/** A project filter by key: an unknown key is bad input, not a missing page. */
async function projectFilter(run: Run, workspaceId: string, key: string): Promise<string> {
  try {
    return await projectIdOf(run, workspaceId, key);
  } catch (error) {
    if (error instanceof RestError && error.code === "NOT_FOUND") throw badInput("query.project", `no project with key ${key} in your workspace`);
    throw error;
  }
}

/** The task's log lines from line offset + 1 on, page after page, up to `max`. */
async function taskLog(run: Run, taskId: string, max = Number.POSITIVE_INFINITY, offset = 0): Promise<z.infer<typeof logShape>[]> {
  const lines: z.infer<typeof logShape>[] = [];
  // Cursors count a task's lines 1, 2, 3 ...: after cursor n is after the first n lines.
  let after = offset > 0 ? String(offset) : undefined;
  for (;;) {
    const source = { type: "TASK" as const, id: taskId };
    const { logLines } = await run(ApiWebTaskLogsDocument, { input: { source, after, limit: Math.min(MAX_LIMIT, max - lines.length) } });
    lines.push(
      ...logLines.lines.map((line) => ({ line: Number(line.cursor), level: lower(line.level), message: line.message, step: line.step ?? null, at: line.at })),
    );
    if (!logLines.hasMore || lines.length >= max) return lines;
    after = logLines.nextCursor;
  }
}

/** A task list of the workspace (all of it, or a machine's), with api-web's filters and offset paging. */
async function workspaceTasks(run: Run, workspaceId: string, filters: { status?: TaskStatus[]; projectId?: string; machineId?: string; limit?: number; offset?: number }) {
  const { limit: max, offset: skip, ...where } = filters;
  const tasks = await collect(async (page) => (await run(ApiWebTasksDocument, { workspaceId, ...where, ...page })).workspace.tasks, max, skip);
  return tasks.map(taskOut);
}

// ---- Routes: auth ----------------------------------------------------------------------------

const authRoutes: Route[] = [
  webRoute({
    method: "POST",
    path: "/api/auth/login",
    summary: "Sign in with username (or email) + password, and the TOTP code when two-factor sign-in is on",
    auth: PUBLIC,
    accepts: (body) => typeof body === "object" && body !== null && "username" in body,
    body: z.object({ username: required(), password: required(), totpCode: text().nullish().describe("When two-factor sign-in is on") }),
    response: tokenPair,
    async handler({ body, run }) {
      const { login } = await run(ApiWebLoginDocument, { input: { login: body.username, password: body.password, totpCode: body.totpCode ?? undefined } });
      return { accessToken: login.accessToken, refreshToken: login.refreshToken };
    },
  }),
  webRoute({
    method: "POST",
    path: "/api/auth/refresh",
    summary: "A new token pair for a refresh token; each refresh token works once (reusing one ends its session)",
    auth: PUBLIC,
    body: z.object({ refreshToken: required() }),
    response: tokenPair,
    async handler({ body, run }) {
      const { refreshToken } = await run(ApiWebRefreshDocument, { input: { refreshToken: body.refreshToken } });
      return { accessToken: refreshToken.accessToken, refreshToken: refreshToken.refreshToken };
    },
  }),
  webRoute({
    method: "POST",
    path: "/api/auth/logout",
    summary: "Sign out: ends the session of the bearer access token, so its refresh token stops working, and the session of the body's refreshToken if it is another of the caller's",
    auth: BEARER,
    body: z.object({ refreshToken: text().optional() }),
    response: done,
    async handler({ body, run }) {
      await run(ApiWebLogoutDocument, { refreshToken: body.refreshToken });
      return { ok: true };
    },
  }),
];

// ---- Routes: tasks ---------------------------------------------------------------------------

const taskRoutes: Route[] = [
  webRoute({
    method: "GET",
    path: "/api/web/tasks",
    summary: "Tasks of your workspace, newest first. Query: status (comma-separated), project (key), limit, offset",
    auth: BEARER,
    query: paging.extend({ status: statusFilter, project: z.string().optional().describe("A project key, any case") }),
    response: z.array(taskShape),
    async handler({ query, run }) {
      const workspaceId = await workspaceOf(run);
      const projectId = query.project ? await projectFilter(run, workspaceId, query.project) : undefined;
      return workspaceTasks(run, workspaceId, { status: query.status, projectId, limit: query.limit, offset: query.offset });
    },
  }),
  webRoute({
    method: "POST",
    path: "/api/web/tasks",
    summary: "Create a task in a project (projectKey, any case), with the stages of the project's pipeline; machineId: the machine that must run it. Takes an Idempotency-Key",
    auth: BEARER,
    status: 201,
    body: z.object({
      projectKey: required().describe("Any case"),
      description: text().describe("Its first line is the task's title"),
      machineId: text().trim().min(1, "must not be empty").max(200, "must be at most 200 characters").nullish().describe("The id the machine chose for itself at registration, or its Spindle id"),
    }),
    response: taskShape,
    async handler({ body, run, idempotencyKey }) {
      const workspaceId = await workspaceOf(run);
      const targetMachineId = body.machineId ? await targetMachineOf(run, workspaceId, body.machineId) : undefined;
      const { createTask } = await run(ApiWebCreateTaskDocument, {
        input: { workspaceId, projectKey: body.projectKey.trim().toUpperCase(), description: body.description, targetMachineId, idempotencyKey },
      });
      return taskOut(createTask);
    },
  }),
  webRoute({
    method: "GET",
    path: "/api/web/tasks/:id",
    summary: "A task with its stages and the confirmation it waits for",
    auth: BEARER,
    params: idParam,
    response: taskShape,
    async handler({ params, run }) {
      return taskOut(await ownTask(run, params.id));
    },
  }),
  webRoute({
    method: "POST",
    path: "/api/web/tasks/:id/cancel",
    summary: "Cancel a pending, assigned, running or suspended task (else 409)",
    auth: BEARER,
    params: idParam,
    body: z.object({ reason: text().max(1000, "must be at most 1000 characters").nullish() }),
    response: taskShape,
    async handler({ params, body, run }) {
      await requireOwnTask(run, params.id);
      return taskOut((await run(ApiWebCancelTaskDocument, { id: params.id, reason: body.reason })).cancelTask);
    },
  }),
  webRoute({
    method: "POST",
    path: "/api/web/tasks/:id/retry",
    summary: "Put a failed or cancelled task back in the queue (else 409), its stages cleared",
    auth: BEARER,
    params: idParam,
    response: taskShape,
    async handler({ params, run }) {
      await requireOwnTask(run, params.id);
      return taskOut((await run(ApiWebRetryTaskDocument, { id: params.id })).retryTask);
    },
  }),
  webRoute({
    method: "POST",
    path: "/api/web/tasks/:id/confirm-stage",
    summary: "Answer the stage a suspended task waits on (a confirmation, a choice or input): the task runs on",
    auth: BEARER,
    params: idParam,
    body: z.object({ stageIndex: z.int("must be a whole number").min(0, "must be 0 or more"), result: text() }),
    response: taskShape,
    async handler({ params, body, run }) {
      await requireOwnTask(run, params.id);
      const { confirmTaskStage } = await run(ApiWebConfirmStageDocument, { input: { taskId: params.id, stageIndex: body.stageIndex, result: body.result } });
      return taskOut(confirmTaskStage);
    },
  }),
  webRoute({
    method: "GET",
    path: "/api/web/tasks/:id/events",
    summary: "A task's events, oldest first. Query: limit, offset, type (comma-separated), search (text in the message)",
    auth: BEARER,
    params: idParam,
    query: paging.extend({ type: z.string().optional(), search: z.string().max(200, "must be at most 200 characters").optional() }),
    response: z.array(eventShape),
    async handler({ params, query, run }) {
      await requireOwnTask(run, params.id);
      const types = query.type?.split(",").map((t) => t.trim()).filter(Boolean);
      const type = types?.length ? types : undefined;
      const events = await collect(
        async (page) => (await run(ApiWebTaskEventsDocument, { id: params.id, type, search: query.search || undefined, ...page })).task.events,
        query.limit,
        query.offset,
      );
      return events.map(eventOut);
    },
  }),
  webRoute({
    method: "GET",
    path: "/api/web/tasks/:id/logs",
    summary: "A task's raw log lines, oldest first. Query: limit, offset (lines to skip)",
    auth: BEARER,
    params: idParam,
    query: z.object({ limit, offset: offset(Number.MAX_SAFE_INTEGER) }),
    response: z.array(logShape),
    async handler({ params, query, run }) {
      await requireOwnTask(run, params.id);
      return taskLog(run, params.id, query.limit, query.offset);
    },
  }),
  webRoute({
    method: "GET",
    path: "/api/web/tasks/:id/pending-confirm",
    summary: "The stage a suspended task waits on and its prompt (pending: false when it waits for nothing)",
    auth: BEARER,
    params: idParam,
    response: pendingConfirmShape,
    async handler({ params, run }) {
      const task = inDefaultWorkspace(await run(ApiWebPendingConfirmDocument, { id: params.id }), (r) => r.task, "task");
      const pending = task.pendingConfirmation;
      return { taskId: task.id, status: lower(task.status), pending: Boolean(pending), stageIndex: pending?.stageIndex ?? null, stageName: pending?.stageName ?? null, prompt: pending?.prompt ?? null };
    },
  }),
];

// ---- Routes: machines ------------------------------------------------------------------------

const machineRoutes: Route[] = [
  webRoute({
    method: "GET",
    path: "/api/web/machines",
    summary: "The machines of your workspace (decommissioned ones left out), newest first",
    auth: BEARER,
    response: z.array(userMachineShape),
    async handler({ run }) {
      const workspaceId = await workspaceOf(run);
      const machines = await collect(async (page) => (await run(ApiWebMachinesDocument, { workspaceId, ...page })).workspace.machines);
      return machines.map(userMachineOut);
    },
  }),
  webRoute({
    method: "GET",
    path: "/api/web/machines/:id",
    summary: "A machine",
    auth: BEARER,
    params: idParam,
    response: userMachineShape,
    async handler({ params, run }) {
      return userMachineOut(await ownMachine(run, params.id));
    },
  }),
  webRoute({
    method: "GET",
    path: "/api/web/machines/:id/tasks",
    summary: "The tasks a machine holds or ran, newest first. Query: status (comma-separated), limit, offset",
    auth: BEARER,
    params: idParam,
    query: paging.extend({ status: statusFilter }),
    response: z.array(taskShape),
    async handler({ params, query, run }) {
      const machine = await ownMachine(run, params.id);
      return workspaceTasks(run, machine.workspaceId, { machineId: machine.id, status: query.status, limit: query.limit, offset: query.offset });
    },
  }),
  webRoute({
    method: "POST",
    path: "/api/web/machines/:id/drain",
    summary: "Stop new work on a machine: draining until what it holds ends, then drained (409 when already draining)",
    auth: BEARER,
    params: idParam,
    response: userMachineShape,
    async handler({ params, run }) {
      await ownMachine(run, params.id);
      return userMachineOut((await run(ApiWebDrainMachineDocument, { id: params.id })).drainMachine);
    },
  }),
  webRoute({
    method: "POST",
    path: "/api/web/machines/:id/undrain",
    summary: "Cancel a machine's drain (409 when it is not draining)",
    auth: BEARER,
    params: idParam,
    response: userMachineShape,
    async handler({ params, run }) {
      await ownMachine(run, params.id);
      return userMachineOut((await run(ApiWebUndrainMachineDocument, { id: params.id })).undrainMachine);
    },
  }),
];

// ---- Routes: profile -------------------------------------------------------------------------

const profileRoutes: Route[] = [
  webRoute({
    method: "GET",
    path: "/api/web/profile",
    summary: "Your profile",
    auth: BEARER,
    response: profileShape,
    async handler({ run }) {
      return profileOut((await run(ApiWebProfileDocument, {})).me);
    },
  }),
  webRoute({
    method: "PUT",
    path: "/api/web/profile",
    summary: "Change your git name and email (null clears one; one left out stays)",
    auth: BEARER,
    body: z.object({ gitName: text().nullish(), gitEmail: text().nullish() }),
    response: profileShape,
    async handler({ body, run }) {
      return profileOut((await run(ApiWebUpdateProfileDocument, { input: { gitName: body.gitName, gitEmail: body.gitEmail } })).updateProfile);
    },
  }),
  webRoute({
    method: "PUT",
    path: "/api/web/profile/password",
    summary: "Change your password (signed in with it, not a token); your other sessions end",
    auth: BEARER,
    body: z.object({ currentPassword: required(), newPassword: required() }),
    response: done,
    async handler({ body, run }) {
      await run(ApiWebChangePasswordDocument, { input: { currentPassword: body.currentPassword, newPassword: body.newPassword } });
      return { ok: true };
    },
  }),
  webRoute({
    method: "POST",
    path: "/api/web/profile/totp/setup",
    summary: "Start two-factor set-up: a secret and its otpauth:// URI (for the QR code); nothing changes until verify",
    auth: BEARER,
    response: z.object({ secret: z.string(), uri: z.string(), qrCodeUri: z.string().describe("The otpauth:// URI to show as a QR code (the same as uri)") }),
    async handler({ run }) {
      const { setupTotp } = await run(ApiWebSetupTotpDocument, {});
      return { secret: setupTotp.secret, uri: setupTotp.uri, qrCodeUri: setupTotp.uri };
    },
  }),
  webRoute({
    method: "POST",
    path: "/api/web/profile/totp/verify",
    summary: "Confirm two-factor set-up with a code from the device: sign-in asks for a code from then on",
    auth: BEARER,
    body: z.object({ code: required() }),
    response: profileShape,
    async handler({ body, run }) {
      return profileOut((await run(ApiWebEnableTotpDocument, { input: { code: body.code } })).enableTotp);
    },
  }),
  webRoute({
    method: "GET",
    path: "/api/web/profile/tokens",
    summary: "Your personal access tokens, newest first (revoked ones included)",
    auth: BEARER,
    response: z.array(tokenShape),
    async handler({ run }) {
      const tokens = await collect(async (page) => (await run(ApiWebTokensDocument, page)).apiKeys);
      return tokens.map(tokenOut);
    },
  }),
  webRoute({
    method: "POST",
    path: "/api/web/profile/tokens",
    summary: "Create a personal access token (read and write, for your workspace); `token` is shown only here, once",
    auth: BEARER,
    status: 201,
    body: z.object({
      label: text(),
      expiresAt: z.iso.datetime({ offset: true, error: "must be an ISO-8601 time like 2027-01-01T00:00:00Z" }).nullish(),
    }),
    response: tokenShape.extend({ token: z.string().describe("The secret: send it as Authorization: Bearer <token>") }),
    async handler({ body, run }) {
      const workspaceId = await workspaceOf(run);
      const { createApiKey } = await run(ApiWebCreateTokenDocument, { input: { name: body.label, scopes: ["WRITE"], workspaceId, expiresAt: body.expiresAt } });
      return { ...tokenOut(createApiKey.apiKey), token: createApiKey.key };
    },
  }),
  webRoute({
    method: "POST",
    path: "/api/web/profile/tokens/:id/revoke",
    summary: "Revoke one of your personal access tokens at once",
    auth: BEARER,
    params: idParam,
    response: done,
    async handler({ params, run }) {
      // The profile is the caller's own: a workspace admin revokes others' keys elsewhere, not here.
      const own = await collect(async (page) => (await run(ApiWebTokensDocument, page)).apiKeys);
      if (!own.some((token) => token.id === params.id)) throw restNotFound("personal access token");
      await run(ApiWebRevokeTokenDocument, { id: params.id });
      return { ok: true };
    },
  }),
];

export const apiWebUserRoutes: Route[] = [...authRoutes, ...taskRoutes, ...machineRoutes, ...profileRoutes];
