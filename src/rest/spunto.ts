// The Spunto dialect (../shared/seeds/001): organizations (workspaces) with projects, container
// workers, nodes (machines), deployments of services, API keys and the user's settings.
//
// The document shows no bodies, so these conventions hold throughout: a bearer credential (session
// token or `spk_` API key); camelCase JSON with Spindle's field names and UUID ids; lower-case enum
// values (statuses, roles, approval, log levels); a list is a plain JSON array of every item; one
// object answers the object, a create 201 with it, a DELETE `{"ok": true}`, an action
// (start/stop/deploy/drain) the object after the change; errors `{"error"}` (dialects.ts).
// Spindle finds objects by id alone, so every nested path checks the object's organization and
// parent; a wrong one, a malformed id, a destroyed worker and a decommissioned node are all 404.
import { z } from "zod";
import {
  SpuntoAddServiceDocument,
  SpuntoCreateDeploymentDocument,
  SpuntoCreateNodeDocument,
  SpuntoCreateOrgDocument,
  SpuntoCreateProjectDocument,
  SpuntoDecommissionNodeDocument,
  SpuntoDeleteDeploymentDocument,
  SpuntoDeleteProjectDocument,
  SpuntoDeployDeploymentDocument,
  SpuntoDeploymentDocument,
  SpuntoDeploymentsDocument,
  SpuntoDeployWorkerDocument,
  SpuntoDestroyWorkerDocument,
  SpuntoDrainNodeDocument,
  SpuntoLogLinesDocument,
  SpuntoMembersDocument,
  SpuntoNodeDocument,
  SpuntoNodesDocument,
  SpuntoOrgDocument,
  SpuntoOrgsDocument,
  SpuntoProjectDocument,
  SpuntoProjectsDocument,
  SpuntoRemoveServiceDocument,
  SpuntoRotateNodeTokenDocument,
  SpuntoStartDeploymentDocument,
  SpuntoStartWorkerDocument,
  SpuntoStopDeploymentDocument,
  SpuntoStopWorkerDocument,
  SpuntoUpdateDeploymentDocument,
  SpuntoUpdateProjectDocument,
  SpuntoUpdateServiceDocument,
  SpuntoWorkerDocument,
  SpuntoWorkersDocument,
  type LogSourceType,
  type SpuntoDeploymentPartsFragment,
  type SpuntoLogLinePartsFragment,
  type SpuntoNodePartsFragment,
  type SpuntoOrgPartsFragment,
  type SpuntoProjectPartsFragment,
  type SpuntoServicePartsFragment,
  type SpuntoWorkerPartsFragment,
} from "../generated/rest-spunto-graphql.js";
import { RestError, restNotFound, type Credential, type Route, type Run } from "./route.js";
import { collect, dialectRoute, type FieldNames } from "./shared.js";

export const BEARER: Credential[] = ["bearer"];

/**
 * GraphQL's field names in a VALIDATION answer, as Spunto's client wrote them (the router names
 * its own checks `path.x`, `query.x` and `body.x` the same way). First match wins.
 */
const FIELD_NAMES: FieldNames = [
  ["input.workspaceId", "path.orgId"],
  ["input.projectId", "path.projectId"],
  ["input.deploymentId", "path.deploymentId"],
  ["input.serviceId", "path.serviceId"],
  ["input.idempotencyKey", "Idempotency-Key"],
  ["input.source", "path"],
  ["input.limit", "query.limit"],
  ["input.after", "query.after"],
  ["input.tail", "query.tail"],
  ["input", "body"],
  ["reason", "body.reason"],
];
const baseRoute = dialectRoute("spunto", FIELD_NAMES);

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PARAM_OBJECTS: Record<string, string> = {
  orgId: "organization",
  projectId: "project",
  workerId: "worker",
  nodeId: "node",
  deploymentId: "deployment",
  serviceId: "service",
  keyId: "API key",
};

/**
 * A route of this dialect. Path ids are Spindle's UUIDs: anything else names no object, so it is
 * 404 before any operation runs (GraphQL would answer NOT_FOUND for some and VALIDATION for ids
 * inside an input).
 */
export function spuntoRoute<P = undefined, Q = undefined, B = undefined>(definition: Omit<Route<P, Q, B>, "dialect">): Route<P, Q, B> {
  return baseRoute<P, Q, B>({
    ...definition,
    handler(request) {
      for (const [name, value] of Object.entries((request.params ?? {}) as Record<string, string>)) {
        if (!UUID.test(value)) throw restNotFound(PARAM_OBJECTS[name] ?? name);
      }
      return definition.handler(request);
    },
  });
}

export const lower = <T extends string>(value: T) => value.toLowerCase() as Lowercase<T>;

// ---- Paths --------------------------------------------------------------------------------------

const uuidParam = z.string().describe("A UUID");
export const orgPath = z.object({ orgId: uuidParam });
const projectPath = orgPath.extend({ projectId: uuidParam });
const workerPath = projectPath.extend({ workerId: uuidParam });
export const nodePath = orgPath.extend({ nodeId: uuidParam });
const deploymentPath = orgPath.extend({ deploymentId: uuidParam });
const servicePath = deploymentPath.extend({ serviceId: uuidParam });

// ---- Shapes -------------------------------------------------------------------------------------

export const time = z.string().describe("ISO-8601 UTC, e.g. 2026-01-01T00:00:00.000Z");
const env = z.record(z.string(), z.string()).nullable().describe("Environment variables; null for viewers");
export const done = z.object({ ok: z.literal(true) });

const ROLES = ["owner", "admin", "member", "viewer"] as const;

const orgShape = z.object({
  id: z.string(),
  name: z.string(),
  viewerRole: z.enum(ROLES).nullable().describe("The caller's role in the organization"),
  createdAt: time,
  updatedAt: time,
});
const orgOut = (org: SpuntoOrgPartsFragment): z.infer<typeof orgShape> => ({
  id: org.id,
  name: org.name,
  viewerRole: org.viewerRole ? lower(org.viewerRole) : null,
  createdAt: org.createdAt,
  updatedAt: org.updatedAt,
});

const memberShape = z.object({
  user: z.object({ id: z.string(), username: z.string(), displayName: z.string().nullable() }),
  role: z.enum(ROLES),
  joinedAt: time,
});

const projectShape = z.object({
  id: z.string(),
  workspaceId: z.string().describe("The organization"),
  key: z.string().describe("Upper-case, unique in the organization"),
  name: z.string(),
  description: z.string().nullable(),
  repoUrl: z.string().nullable(),
  pipeline: z.record(z.string(), z.unknown()).describe("Pipeline settings (a JSON object)"),
  agentType: z.string().nullable(),
  archived: z.boolean(),
  archivedAt: time.nullable(),
  createdAt: time,
  updatedAt: time,
});
const projectOut = (project: SpuntoProjectPartsFragment): z.infer<typeof projectShape> => ({
  id: project.id,
  workspaceId: project.workspace.id,
  key: project.key,
  name: project.name,
  description: project.description ?? null,
  repoUrl: project.repoUrl ?? null,
  pipeline: project.pipeline,
  agentType: project.agentType ?? null,
  archived: project.archived,
  archivedAt: project.archivedAt ?? null,
  createdAt: project.createdAt,
  updatedAt: project.updatedAt,
});

const WORKER_STATUSES = ["deploying", "running", "stopped", "failed", "destroyed"] as const;
const workerShape = z.object({
  id: z.string(),
  workspaceId: z.string(),
  projectId: z.string(),
  name: z.string(),
  image: z.string().nullable(),
  command: z.string().nullable(),
  env,
  runtime: z.string().nullable().describe("null: the node's default runtime"),
  status: z.enum(WORKER_STATUSES),
  statusReason: z.string().nullable(),
  revision: z.int(),
  machineId: z.string().nullable().describe("The node it runs on; null while waiting for one"),
  createdAt: time,
  updatedAt: time,
});
const workerOut = (worker: SpuntoWorkerPartsFragment): z.infer<typeof workerShape> => ({
  id: worker.id,
  workspaceId: worker.workspaceId,
  projectId: worker.projectId!,
  name: worker.name,
  image: worker.image ?? null,
  command: worker.command ?? null,
  env: worker.env ?? null,
  runtime: worker.runtime ?? null,
  status: lower(worker.status),
  statusReason: worker.statusReason ?? null,
  revision: worker.revision,
  machineId: worker.machineId ?? null,
  createdAt: worker.createdAt,
  updatedAt: worker.updatedAt,
});

const statsShape = z.object({
  workerId: z.string(),
  status: z.enum(WORKER_STATUSES),
  cpuPercent: z.number().nullable().describe("Last reported by the node (percent of one core); null before any report"),
  memoryBytes: z.number().nullable().describe("Last reported by the node; null before any report"),
  lastTickAt: time.nullable().describe("When the node last reported the worker's activity"),
});

const NODE_STATUSES = ["online", "offline", "draining", "drained", "decommissioned"] as const;
const nodeShape = z.object({
  id: z.string(),
  workspaceId: z.string(),
  name: z.string(),
  externalId: z.string().nullable().describe("The node's own id for itself (hostname)"),
  status: z.enum(NODE_STATUSES),
  approval: z.enum(["approved", "pending", "rejected"]).describe("A member's node waits (pending) for an admin"),
  online: z.boolean(),
  draining: z.boolean(),
  drainingSince: time.nullable(),
  schedulable: z.boolean(),
  acceptingWork: z.boolean(),
  labels: z.array(z.string()),
  capabilities: z.array(z.string()),
  hardware: z.record(z.string(), z.unknown()),
  cpuPercent: z.number().nullable(),
  memoryPercent: z.number().nullable(),
  diskPercent: z.number().nullable(),
  lastHeartbeatAt: time.nullable(),
  credentialPrefix: z.string().describe("The first characters of the current node token"),
  credentialRotatedAt: time.nullable(),
  createdAt: time,
  updatedAt: time,
});
const nodeOut = (node: SpuntoNodePartsFragment): z.infer<typeof nodeShape> => ({
  id: node.id,
  workspaceId: node.workspaceId,
  name: node.name,
  externalId: node.externalId ?? null,
  status: lower(node.status),
  approval: lower(node.approval),
  online: node.online,
  draining: node.draining,
  drainingSince: node.drainingSince ?? null,
  schedulable: node.schedulable,
  acceptingWork: node.acceptingWork,
  labels: node.labels,
  capabilities: node.capabilities,
  hardware: node.hardware,
  cpuPercent: node.cpuPercent ?? null,
  memoryPercent: node.memoryPercent ?? null,
  diskPercent: node.diskPercent ?? null,
  lastHeartbeatAt: node.lastHeartbeatAt ?? null,
  credentialPrefix: node.credentialPrefix,
  credentialRotatedAt: node.credentialRotatedAt ?? null,
  createdAt: node.createdAt,
  updatedAt: node.updatedAt,
});
const nodeToken = z.string().describe("The node token (spm_...): shown only here, once");

const serviceShape = z.object({
  id: z.string(),
  workspaceId: z.string(),
  deploymentId: z.string(),
  name: z.string(),
  image: z.string().nullable(),
  command: z.string().nullable(),
  env,
  domain: z.string().nullable(),
  domainStatus: z.enum(["none", "pending", "verified", "failed"]),
  status: z.enum(["deploying", "running", "stopped", "failed"]),
  statusReason: z.string().nullable(),
  revision: z.int(),
  restartCount: z.int(),
  machineId: z.string().nullable().describe("The node it runs on; null until deployed or while waiting for one"),
  lastRestartAt: time.nullable(),
  createdAt: time,
  updatedAt: time,
});
const serviceOut = (service: SpuntoServicePartsFragment): z.infer<typeof serviceShape> => ({
  id: service.id,
  workspaceId: service.workspaceId,
  deploymentId: service.deploymentId,
  name: service.name,
  image: service.image ?? null,
  command: service.command ?? null,
  env: service.env ?? null,
  domain: service.domain ?? null,
  domainStatus: lower(service.domainStatus),
  status: lower(service.status),
  statusReason: service.statusReason ?? null,
  revision: service.revision,
  restartCount: service.restartCount,
  machineId: service.machineId ?? null,
  lastRestartAt: service.lastRestartAt ?? null,
  createdAt: service.createdAt,
  updatedAt: service.updatedAt,
});

const deploymentShape = z.object({
  id: z.string(),
  workspaceId: z.string(),
  name: z.string(),
  status: z.enum(["deploying", "empty", "failed", "partial", "running", "stopped"]).describe("A summary of its services' statuses"),
  revision: z.int(),
  serviceCount: z.int(),
  services: z.array(serviceShape).describe("By name"),
  createdAt: time,
  updatedAt: time,
});
const deploymentOut = (deployment: SpuntoDeploymentPartsFragment): z.infer<typeof deploymentShape> => ({
  id: deployment.id,
  workspaceId: deployment.workspaceId,
  name: deployment.name,
  status: lower(deployment.status),
  revision: deployment.revision,
  serviceCount: deployment.serviceCount,
  services: deployment.services.map(serviceOut),
  createdAt: deployment.createdAt,
  updatedAt: deployment.updatedAt,
});

const logLineShape = z.object({
  cursor: z.string().describe("Grows by one per line; pass as ?after= to read on"),
  level: z.enum(["debug", "info", "warn", "error"]),
  message: z.string(),
  at: time,
});
const logLineOut = (line: SpuntoLogLinePartsFragment): z.infer<typeof logLineShape> => ({
  cursor: line.cursor,
  level: lower(line.level),
  message: line.message,
  at: line.at,
});

// ---- Inputs -------------------------------------------------------------------------------------

export const text = () => z.string("must be a string");
const envInput = z.record(z.string(), z.string("must be a string"), "must be an object of string values");
const jsonObject = z.record(z.string(), z.unknown(), "must be a JSON object");
const strings = z.array(z.string("must be a string"), "must be an array of strings");
const reasonBody = z.object({ reason: text().nullish().describe("Recorded with the status change") });

const booleanText = z.enum(["true", "false", "1", "0"], "must be true or false").transform((value) => value === "true" || value === "1");
const logsQuery = z
  .object({
    limit: z.coerce.number("must be a number").int("must be a whole number").min(1, "must be 1 to 1000").max(1000, "must be 1 to 1000").optional().describe("Default 100"),
    after: z.string().regex(/^\d+$/, "must be a line's cursor").optional().describe("Lines after this cursor"),
    tail: booleanText.optional().describe("The newest lines instead of the oldest"),
  })
  .refine((query) => !(query.tail && query.after), { path: ["tail"], message: "cannot be combined with after" });

const projectFields = {
  description: text().nullish(),
  repoUrl: text().nullish().describe("https://, ssh://, git:// or git@host:path"),
  pipeline: jsonObject.optional(),
  agentType: text().nullish(),
};

const serviceFields = {
  image: text().nullish(),
  command: text().nullish(),
  env: envInput.nullish(),
  domain: text().nullish().describe("A host name; it starts pending until verified"),
};

// ---- Loading what a path names ------------------------------------------------------------------

async function projectIn(run: Run, path: z.infer<typeof projectPath>) {
  const { project } = await run(SpuntoProjectDocument, { id: path.projectId });
  if (project.workspace.id !== path.orgId) throw restNotFound("project");
  return project;
}

/** A container worker of the path's project; a destroyed one is gone. */
async function workerIn(run: Run, path: z.infer<typeof workerPath>) {
  const { worker } = await run(SpuntoWorkerDocument, { id: path.workerId });
  const here = worker.workspaceId === path.orgId && worker.projectId === path.projectId && worker.kind === "CONTAINER";
  if (!here || worker.status === "DESTROYED") throw restNotFound("worker");
  return worker;
}

/** A node of the organization; a decommissioned one is gone. */
export async function nodeIn(run: Run, path: z.infer<typeof nodePath>) {
  const { machine } = await run(SpuntoNodeDocument, { id: path.nodeId });
  if (machine.workspaceId !== path.orgId || machine.status === "DECOMMISSIONED") throw restNotFound("node");
  return machine;
}

async function deploymentIn(run: Run, path: z.infer<typeof deploymentPath>) {
  const { deployment } = await run(SpuntoDeploymentDocument, { id: path.deploymentId });
  if (deployment.workspaceId !== path.orgId) throw restNotFound("deployment");
  return deployment;
}

/** The service, read from its deployment (one read checks both). */
async function serviceIn(run: Run, path: z.infer<typeof servicePath>) {
  const deployment = await deploymentIn(run, path);
  const service = deployment.services.find((s) => s.id === path.serviceId);
  if (!service) throw restNotFound("service");
  return service;
}

/** The one service of a deployment an action answered. */
function serviceOf(deployment: SpuntoDeploymentPartsFragment, serviceId: string) {
  const service = deployment.services.find((s) => s.id === serviceId);
  if (!service) throw restNotFound("service");
  return serviceOut(service);
}

/** Stored lines of a worker or service: oldest first from `after`, or the newest with `tail`. */
async function logsOf(run: Run, type: LogSourceType, id: string, query: z.infer<typeof logsQuery>) {
  const { logLines } = await run(SpuntoLogLinesDocument, { input: { source: { type, id }, limit: query.limit, after: query.after, tail: query.tail } });
  return logLines.lines.map(logLineOut);
}

// ---- Project keys -------------------------------------------------------------------------------

const KEY_BASE_MAX = 10;

/** The key Spunto never sends: the name's letters and digits from its first letter, upper-cased. */
function keyBase(name: string): string {
  const letters = name
    .normalize("NFKD")
    .toUpperCase()
    .replace(/[^A-Z0-9]/g, "")
    .replace(/^[0-9]+/, "");
  return (letters || "PROJECT").slice(0, KEY_BASE_MAX);
}

/** A CONFLICT over the key, or over an Idempotency-Key an earlier try of this request used with another key. */
function isKeyConflict(error: unknown): boolean {
  if (!(error instanceof RestError) || error.code !== "CONFLICT") return false;
  const fields = (error.extensions.fields ?? []) as { field: string }[];
  return fields.some((f) => f.field === "input.key" || f.field === "input.idempotencyKey");
}

type ProjectInput = { workspaceId: string; name: string; description?: string | null; repoUrl?: string | null; pipeline?: unknown; agentType?: string | null; idempotencyKey?: string };

/**
 * Creates a project under a key derived from its name: BASE, then BASE2, BASE3 ... past the keys
 * taken. With an Idempotency-Key the taken keys are tried too, in order: one of them may be the key
 * the first try of this same request took, which then answers that project again.
 */
async function createProjectWithDerivedKey(run: Run, input: ProjectInput) {
  const base = keyBase(input.name);
  const existing = await collect(async (page) => (await run(SpuntoProjectsDocument, { orgId: input.workspaceId, search: base, ...page })).workspace.projects);
  const taken = new Set(existing.map((p) => p.key));
  let lastConflict: unknown;
  for (let n = 1, tries = 0; tries < taken.size + 5; n++) {
    const key = n === 1 ? base : `${base}${n}`;
    if (taken.has(key) && !input.idempotencyKey) continue;
    tries++;
    try {
      return (await run(SpuntoCreateProjectDocument, { input: { ...input, key } })).createProject;
    } catch (error) {
      if (!isKeyConflict(error)) throw error;
      lastConflict = error;
    }
  }
  throw lastConflict ?? new RestError("CONFLICT", `No free project key from ${base}: send a key`);
}

// ---- Deployment actions -------------------------------------------------------------------------

type Action = "start" | "stop" | "deploy";
type Target = { id: string; serviceId?: string };

/** Start, stop or deploy a deployment's services: all of them, or `serviceId` alone. */
const DEPLOYMENT_ACTIONS: Record<Action, (run: Run, input: Target) => Promise<SpuntoDeploymentPartsFragment>> = {
  start: async (run, input) => (await run(SpuntoStartDeploymentDocument, { input })).startDeployment,
  stop: async (run, input) => (await run(SpuntoStopDeploymentDocument, { input })).stopDeployment,
  deploy: async (run, input) => (await run(SpuntoDeployDeploymentDocument, { input })).deployDeployment,
};

function deploymentAction(action: Action, summary: string): Route {
  return spuntoRoute({
    method: "POST",
    path: `/api/orgs/:orgId/deployments/:deploymentId/${action}`,
    summary,
    auth: BEARER,
    params: deploymentPath,
    response: deploymentShape,
    async handler({ params, run }) {
      await deploymentIn(run, params);
      return deploymentOut(await DEPLOYMENT_ACTIONS[action](run, { id: params.deploymentId }));
    },
  });
}

function serviceAction(action: Action, summary: string): Route {
  return spuntoRoute({
    method: "POST",
    path: `/api/orgs/:orgId/deployments/:deploymentId/services/:serviceId/${action}`,
    summary,
    auth: BEARER,
    params: servicePath,
    response: serviceShape,
    async handler({ params, run }) {
      await serviceIn(run, params);
      return serviceOf(await DEPLOYMENT_ACTIONS[action](run, { id: params.deploymentId, serviceId: params.serviceId }), params.serviceId);
    },
  });
}

// ---- Worker actions -----------------------------------------------------------------------------

type WorkerAction = "stop" | "start";
type WorkerChange = { id: string; reason?: string | null };

const WORKER_ACTIONS: Record<WorkerAction, (run: Run, change: WorkerChange) => Promise<SpuntoWorkerPartsFragment>> = {
  stop: async (run, change) => (await run(SpuntoStopWorkerDocument, change)).stopWorker,
  start: async (run, change) => (await run(SpuntoStartWorkerDocument, change)).startWorker,
};

/** Stop or start a container worker, with an optional reason; answers the worker after the change. */
function workerAction(action: WorkerAction, summary: string): Route {
  return spuntoRoute({
    method: "POST",
    path: `/api/orgs/:orgId/projects/:projectId/workers/:workerId/${action}`,
    summary,
    auth: BEARER,
    params: workerPath,
    body: reasonBody,
    response: workerShape,
    async handler({ params, body, run }) {
      await workerIn(run, params);
      return workerOut(await WORKER_ACTIONS[action](run, { id: params.workerId, reason: body.reason }));
    },
  });
}

// ---- Deletes ------------------------------------------------------------------------------------

interface Delete<P> {
  path: string;
  summary: string;
  params: z.ZodType<P>;
  /** Loads what the path names: 404 when it is not there (or not under that parent). */
  find: (run: Run, params: P) => Promise<unknown>;
  remove: (run: Run, params: P) => Promise<unknown>;
}

/** A DELETE: finds the object the path names, removes it, and answers {"ok": true}. */
function deleteRoute<P>({ find, remove, ...route }: Delete<P>): Route {
  return spuntoRoute({
    ...route,
    method: "DELETE",
    auth: BEARER,
    response: done,
    async handler({ params, run }) {
      await find(run, params);
      await remove(run, params);
      return { ok: true };
    },
  });
}

// ---- Routes -------------------------------------------------------------------------------------

const orgRoutes: Route[] = [
  spuntoRoute({
    method: "GET",
    path: "/api/orgs",
    summary: "List organizations: every organization the caller belongs to",
    auth: BEARER,
    response: z.array(orgShape),
    async handler({ run }) {
      const orgs = await collect(async (page) => (await run(SpuntoOrgsDocument, page)).workspaces);
      return orgs.map(orgOut);
    },
  }),
  spuntoRoute({
    method: "POST",
    path: "/api/orgs",
    summary: "Create organization: the caller becomes its owner",
    auth: BEARER,
    status: 201,
    body: z.object({ name: text() }),
    response: orgShape,
    async handler({ body, run, idempotencyKey }) {
      return orgOut((await run(SpuntoCreateOrgDocument, { input: { name: body.name, idempotencyKey } })).createWorkspace);
    },
  }),
  spuntoRoute({
    method: "GET",
    path: "/api/orgs/:orgId",
    summary: "Get organization details",
    auth: BEARER,
    params: orgPath,
    response: orgShape,
    async handler({ params, run }) {
      return orgOut((await run(SpuntoOrgDocument, { id: params.orgId })).workspace);
    },
  }),
  spuntoRoute({
    method: "GET",
    path: "/api/orgs/:orgId/members",
    summary: "List members, in the order they joined",
    auth: BEARER,
    params: orgPath,
    response: z.array(memberShape),
    async handler({ params, run }) {
      const members = await collect(async (page) => (await run(SpuntoMembersDocument, { orgId: params.orgId, ...page })).workspace.members);
      return members.map((m) => ({ user: { id: m.user.id, username: m.user.username, displayName: m.user.displayName ?? null }, role: lower(m.role), joinedAt: m.joinedAt }));
    },
  }),
];

const projectRoutes: Route[] = [
  spuntoRoute({
    method: "GET",
    path: "/api/orgs/:orgId/projects",
    summary: "List projects, newest first",
    auth: BEARER,
    params: orgPath,
    response: z.array(projectShape),
    async handler({ params, run }) {
      const projects = await collect(async (page) => (await run(SpuntoProjectsDocument, { orgId: params.orgId, ...page })).workspace.projects);
      return projects.map(projectOut);
    },
  }),
  spuntoRoute({
    method: "POST",
    path: "/api/orgs/:orgId/projects",
    summary: "Create project (members and above; the creator maintains it)",
    auth: BEARER,
    status: 201,
    params: orgPath,
    body: z.object({
      name: text(),
      key: text().nullish().describe("1-20 letters, digits or _, from a letter; default: derived from the name, unique in the organization"),
      ...projectFields,
    }),
    response: projectShape,
    async handler({ params, body, run, idempotencyKey }) {
      const { key, ...fields } = body;
      const input = { ...fields, workspaceId: params.orgId, idempotencyKey };
      if (key != null) return projectOut((await run(SpuntoCreateProjectDocument, { input: { ...input, key } })).createProject);
      return projectOut(await createProjectWithDerivedKey(run, input));
    },
  }),
  spuntoRoute({
    method: "GET",
    path: "/api/orgs/:orgId/projects/:projectId",
    summary: "Get project",
    auth: BEARER,
    params: projectPath,
    response: projectShape,
    async handler({ params, run }) {
      return projectOut(await projectIn(run, params));
    },
  }),
  spuntoRoute({
    method: "PATCH",
    path: "/api/orgs/:orgId/projects/:projectId",
    summary: "Update project (its maintainers and organization admins); fields left out stay, null clears; the key cannot change",
    auth: BEARER,
    params: projectPath,
    body: z.object({ name: text().optional(), ...projectFields }),
    response: projectShape,
    async handler({ params, body, run }) {
      await projectIn(run, params);
      return projectOut((await run(SpuntoUpdateProjectDocument, { input: { id: params.projectId, ...body } })).updateProject);
    },
  }),
  deleteRoute({
    path: "/api/orgs/:orgId/projects/:projectId",
    summary: "Delete project (organization admins); its workers stay in the organization",
    params: projectPath,
    find: projectIn,
    remove: (run, { projectId }) => run(SpuntoDeleteProjectDocument, { id: projectId }),
  }),
];

const workerRoutes: Route[] = [
  spuntoRoute({
    method: "GET",
    path: "/api/orgs/:orgId/projects/:projectId/workers",
    summary: "List the project's container workers, newest first (destroyed ones left out)",
    auth: BEARER,
    params: projectPath,
    response: z.array(workerShape),
    async handler({ params, run }) {
      await projectIn(run, params);
      const workers = await collect(async (page) => (await run(SpuntoWorkersDocument, { orgId: params.orgId, projectId: params.projectId, ...page })).workspace.workers);
      return workers.map(workerOut);
    },
  }),
  spuntoRoute({
    method: "POST",
    path: "/api/orgs/:orgId/projects/:projectId/workers",
    summary: "Spawn worker: a container (an image, or only a command run as a process), deploying on the least loaded node",
    auth: BEARER,
    status: 201,
    params: projectPath,
    body: z.object({
      name: text(),
      image: text().nullish(),
      command: text().nullish().describe("Overrides the image's command; without an image, what runs"),
      env: envInput.nullish(),
      runtime: text().nullish().describe("Default: the node's runtime"),
    }),
    response: workerShape,
    async handler({ params, body, run, idempotencyKey }) {
      await projectIn(run, params);
      const { deployWorker } = await run(SpuntoDeployWorkerDocument, {
        input: { ...body, workspaceId: params.orgId, projectId: params.projectId, kind: "CONTAINER", idempotencyKey },
      });
      return workerOut(deployWorker);
    },
  }),
  spuntoRoute({
    method: "GET",
    path: "/api/orgs/:orgId/projects/:projectId/workers/:workerId",
    summary: "Get worker",
    auth: BEARER,
    params: workerPath,
    response: workerShape,
    async handler({ params, run }) {
      return workerOut(await workerIn(run, params));
    },
  }),
  workerAction("stop", "Stop worker (deploying or running -> stopped)"),
  workerAction("start", "Start worker (stopped or failed -> deploying)"),
  deleteRoute({
    path: "/api/orgs/:orgId/projects/:projectId/workers/:workerId",
    summary: "Destroy worker, for good",
    params: workerPath,
    find: workerIn,
    remove: (run, { workerId }) => run(SpuntoDestroyWorkerDocument, { id: workerId }),
  }),
  spuntoRoute({
    method: "GET",
    path: "/api/orgs/:orgId/projects/:projectId/workers/:workerId/logs",
    summary: "The worker's stored log lines (as its node sent them), oldest first. Query: ?limit=100&after=<cursor> or ?tail=true",
    auth: BEARER,
    params: workerPath,
    query: logsQuery,
    response: z.array(logLineShape),
    async handler({ params, query, run }) {
      await workerIn(run, params);
      return logsOf(run, "WORKER", params.workerId, query);
    },
  }),
  spuntoRoute({
    method: "GET",
    path: "/api/orgs/:orgId/projects/:projectId/workers/:workerId/stats",
    summary: "CPU + memory as the node last reported them",
    auth: BEARER,
    params: workerPath,
    response: statsShape,
    async handler({ params, run }) {
      const worker = await workerIn(run, params);
      return {
        workerId: worker.id,
        status: lower(worker.status),
        cpuPercent: worker.cpuPercent ?? null,
        memoryBytes: worker.memoryBytes ?? null,
        lastTickAt: worker.lastTickAt ?? null,
      };
    },
  }),
];

const nodeRoutes: Route[] = [
  spuntoRoute({
    method: "GET",
    path: "/api/orgs/:orgId/nodes",
    summary: "List nodes, newest first (deleted ones left out)",
    auth: BEARER,
    params: orgPath,
    response: z.array(nodeShape),
    async handler({ params, run }) {
      const nodes = await collect(async (page) => (await run(SpuntoNodesDocument, { orgId: params.orgId, ...page })).workspace.machines);
      return nodes.map(nodeOut);
    },
  }),
  spuntoRoute({
    method: "POST",
    path: "/api/orgs/:orgId/nodes",
    summary: "Register node: answers its token, shown once (an admin's node is approved, a member's waits for an admin)",
    auth: BEARER,
    status: 201,
    params: orgPath,
    body: z.object({
      name: text(),
      externalId: text().nullish().describe("The node's own id for itself (hostname); unique in the organization"),
      labels: strings.nullish(),
      capabilities: strings.nullish(),
      hardware: jsonObject.nullish(),
    }),
    response: nodeShape.extend({
      token: nodeToken.nullable().describe("The node token (spm_...): shown only here, once; null when an Idempotency-Key retry replays the first answer"),
      recoverySecret: z.string().nullable().describe("Trades for a new token if the token is lost (spr_...): shown only here, once"),
    }),
    async handler({ params, body, run, idempotencyKey }) {
      const { createMachine } = await run(SpuntoCreateNodeDocument, { input: { ...body, workspaceId: params.orgId, idempotencyKey } });
      return { ...nodeOut(createMachine.machine), token: createMachine.credential ?? null, recoverySecret: createMachine.recoverySecret ?? null };
    },
  }),
  spuntoRoute({
    method: "GET",
    path: "/api/orgs/:orgId/nodes/:nodeId",
    summary: "Get node",
    auth: BEARER,
    params: nodePath,
    response: nodeShape,
    async handler({ params, run }) {
      return nodeOut(await nodeIn(run, params));
    },
  }),
  deleteRoute({
    path: "/api/orgs/:orgId/nodes/:nodeId",
    summary: "Delete node (organization admins): its token stops working, its running work fails or goes back to the queue",
    params: nodePath,
    find: nodeIn,
    remove: (run, { nodeId }) => run(SpuntoDecommissionNodeDocument, { id: nodeId }),
  }),
  spuntoRoute({
    method: "POST",
    path: "/api/orgs/:orgId/nodes/:nodeId/token",
    summary: "Rotate token (organization admins): the old token stops working at once; the new one is shown once",
    auth: BEARER,
    params: nodePath,
    response: nodeShape.extend({ token: nodeToken }),
    async handler({ params, run }) {
      await nodeIn(run, params);
      const { rotateMachineCredential } = await run(SpuntoRotateNodeTokenDocument, { id: params.nodeId });
      return { ...nodeOut(rotateMachineCredential.machine), token: rotateMachineCredential.credential };
    },
  }),
  spuntoRoute({
    method: "POST",
    path: "/api/orgs/:orgId/nodes/:nodeId/drain",
    summary: "Drain node: no new work; draining until what it runs ends, then drained",
    auth: BEARER,
    params: nodePath,
    response: nodeShape,
    async handler({ params, run }) {
      await nodeIn(run, params);
      return nodeOut((await run(SpuntoDrainNodeDocument, { id: params.nodeId })).drainMachine);
    },
  }),
];

/** Deployments with their services cost ~20 fields a service: smaller pages keep a read under the query cost limit. */
const DEPLOYMENT_PAGE = 25;

const deploymentRoutes: Route[] = [
  spuntoRoute({
    method: "GET",
    path: "/api/orgs/:orgId/deployments",
    summary: "List deployments with their services, newest first",
    auth: BEARER,
    params: orgPath,
    response: z.array(deploymentShape),
    async handler({ params, run }) {
      const deployments = await collect(
        async (page) => (await run(SpuntoDeploymentsDocument, { orgId: params.orgId, after: page.after, first: Math.min(page.first, DEPLOYMENT_PAGE) })).workspace.deployments,
      );
      return deployments.map(deploymentOut);
    },
  }),
  spuntoRoute({
    method: "POST",
    path: "/api/orgs/:orgId/deployments",
    summary: "Create deployment, with its services (all stopped until deployed)",
    auth: BEARER,
    status: 201,
    params: orgPath,
    body: z.object({
      name: text(),
      services: z.array(z.object({ name: text(), ...serviceFields }), "must be an array of services").nullish().describe("At most 50"),
    }),
    response: deploymentShape,
    async handler({ params, body, run, idempotencyKey }) {
      return deploymentOut((await run(SpuntoCreateDeploymentDocument, { input: { ...body, workspaceId: params.orgId, idempotencyKey } })).createDeployment);
    },
  }),
  spuntoRoute({
    method: "GET",
    path: "/api/orgs/:orgId/deployments/:deploymentId",
    summary: "Get deployment, with its services",
    auth: BEARER,
    params: deploymentPath,
    response: deploymentShape,
    async handler({ params, run }) {
      return deploymentOut(await deploymentIn(run, params));
    },
  }),
  spuntoRoute({
    method: "PATCH",
    path: "/api/orgs/:orgId/deployments/:deploymentId",
    summary: "Update deployment: rename it (change services through their own routes)",
    auth: BEARER,
    params: deploymentPath,
    body: z.object({ name: text() }),
    response: deploymentShape,
    async handler({ params, body, run }) {
      await deploymentIn(run, params);
      return deploymentOut((await run(SpuntoUpdateDeploymentDocument, { input: { id: params.deploymentId, name: body.name } })).updateDeployment);
    },
  }),
  deleteRoute({
    path: "/api/orgs/:orgId/deployments/:deploymentId",
    summary: "Delete deployment and its services",
    params: deploymentPath,
    find: deploymentIn,
    remove: (run, { deploymentId }) => run(SpuntoDeleteDeploymentDocument, { id: deploymentId }),
  }),
  deploymentAction("start", "Start all services: every stopped or failed one deploys (409 when none can)"),
  deploymentAction("stop", "Stop all services (409 when none can)"),
  deploymentAction("deploy", "Deploy all services: each gets a new revision"),
];

const serviceRoutes: Route[] = [
  spuntoRoute({
    method: "GET",
    path: "/api/orgs/:orgId/deployments/:deploymentId/services",
    summary: "List services, by name",
    auth: BEARER,
    params: deploymentPath,
    response: z.array(serviceShape),
    async handler({ params, run }) {
      return (await deploymentIn(run, params)).services.map(serviceOut);
    },
  }),
  spuntoRoute({
    method: "POST",
    path: "/api/orgs/:orgId/deployments/:deploymentId/services",
    summary: "Add service (stopped until deployed); give an image or a command, or both",
    auth: BEARER,
    status: 201,
    params: deploymentPath,
    body: z.object({ name: text(), ...serviceFields }),
    response: serviceShape,
    async handler({ params, body, run, idempotencyKey }) {
      await deploymentIn(run, params);
      return serviceOut((await run(SpuntoAddServiceDocument, { input: { ...body, deploymentId: params.deploymentId, idempotencyKey } })).addService);
    },
  }),
  spuntoRoute({
    method: "PATCH",
    path: "/api/orgs/:orgId/deployments/:deploymentId/services/:serviceId",
    summary: "Update service: fields left out stay, null clears image, command or domain; it runs with the change from its next deploy",
    auth: BEARER,
    params: servicePath,
    body: z.object({ name: text().optional(), ...serviceFields }),
    response: serviceShape,
    async handler({ params, body, run }) {
      await serviceIn(run, params);
      return serviceOut((await run(SpuntoUpdateServiceDocument, { input: { ...body, id: params.serviceId } })).updateService);
    },
  }),
  deleteRoute({
    path: "/api/orgs/:orgId/deployments/:deploymentId/services/:serviceId",
    summary: "Remove service",
    params: servicePath,
    find: serviceIn,
    remove: (run, { serviceId }) => run(SpuntoRemoveServiceDocument, { id: serviceId }),
  }),
  serviceAction("start", "Start the service (stopped or failed -> deploying)"),
  serviceAction("stop", "Stop the service"),
  serviceAction("deploy", "Deploy the service: a new revision"),
  spuntoRoute({
    method: "GET",
    path: "/api/orgs/:orgId/deployments/:deploymentId/services/:serviceId/logs",
    summary: "The service's stored log lines, oldest first. Query: ?limit=100&after=<cursor> or ?tail=true",
    auth: BEARER,
    params: servicePath,
    query: logsQuery,
    response: z.array(logLineShape),
    async handler({ params, query, run }) {
      await serviceIn(run, params);
      return logsOf(run, "SERVICE", params.serviceId, query);
    },
  }),
];

export const spuntoRoutes: Route[] = [...orgRoutes, ...projectRoutes, ...workerRoutes, ...nodeRoutes, ...deploymentRoutes, ...serviceRoutes];
