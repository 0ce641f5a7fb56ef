// api-v1's workers (../shared/seeds/003, "Workers" and the admin's workers): api-v1 "workers" are
// Spindle machines of the caller's default workspace. A member registers one (a workspace admin's is
// approved at once, anyone else's waits for approval) and gets its credential (`spm_…`, shown once);
// heartbeats come with a user's token (write access) or with that credential. `hostname` is the
// machine's externalId; ip_address, cpu_cores, memory_total_mb and os_info live in its hardware JSON.
//
// Who may: the /admin/* rows are for system administrators (Spindle's own test: others get 403).
// Spindle never lets a system administrator bypass workspace roles, so past that test GraphQL's
// rules apply as to anyone: the list shows the machines of the administrator's default workspace
// (any member may read them), and approving needs the admin or owner role in it (403 otherwise).
// A machine of another workspace is the same 404 as an unknown id, except for a heartbeat, which
// goes wherever the caller may write (see the heartbeat route).
import { z } from "zod";
import {
  ApiV1WorkerAdminGateDocument,
  ApiV1WorkerAdminListDocument,
  ApiV1WorkerApproveDocument,
  ApiV1WorkerHeartbeatDocument,
  ApiV1WorkerOverviewDocument,
  ApiV1WorkerRegisterDocument,
  ApiV1WorkerScopeDocument,
  type ApiV1WorkerPartsFragment,
  type MachineStatus,
} from "../../generated/rest-api-v1-graphql.js";
import { RestError, type Route, type Run } from "../route.js";
import { collect, inDefaultWorkspace } from "../shared.js";
import { BEARER, apiV1Route, lower, time, workspaceOf } from "./common.js";
import { taskShape, workspaceTasks } from "./shapes.js";

// ---- The worker ------------------------------------------------------------------------------

const MACHINE_STATUSES = ["ONLINE", "OFFLINE", "DRAINING", "DRAINED", "DECOMMISSIONED"] as const satisfies readonly MachineStatus[];
const lowerEnum = <T extends string>(values: readonly T[]) => z.enum(values.map(lower) as [Lowercase<T>, ...Lowercase<T>[]]);

const osInfo = z.union([z.string(), z.record(z.string(), z.unknown())]);

const workerShape = z.object({
  id: z.string().describe("Spindle's machine id (a UUID)"),
  name: z.string(),
  hostname: z.string().nullable(),
  ip_address: z.string().nullable(),
  status: lowerEnum(MACHINE_STATUSES).describe("offline: no heartbeat lately; draining/drained: taking no new work"),
  is_approved: z.boolean().describe("Only approved workers get tasks"),
  approval: lowerEnum(["PENDING", "APPROVED", "REJECTED"]).describe("pending: waits for an admin; rejected: its credential is refused"),
  group: z.string().nullable(),
  max_agents: z.int().nullable().describe("null: no limit"),
  cpu_cores: z.number().nullable(),
  memory_total_mb: z.number().nullable(),
  os_info: osInfo.nullable(),
  cpu_usage_percent: z.number().nullable().describe("From the last heartbeat"),
  memory_usage_percent: z.number().nullable().describe("From the last heartbeat"),
  disk_usage_percent: z.number().nullable().describe("From the last heartbeat"),
  last_heartbeat: time.nullable(),
  created_at: time,
  agents: z.array(z.object({ id: z.string(), name: z.string(), status: lowerEnum(["IDLE", "BUSY", "OFFLINE"]) })).describe("Its agents, oldest first"),
});
type WorkerOut = z.infer<typeof workerShape>;

/**
 * Where a hardware fact is in Machine.hardware: first as api-v1 registers it, then as Spindle's other
 * dialects' machines report it (so a machine registered elsewhere shows what it told).
 */
const HARDWARE_KEYS = {
  ip_address: ["ip_address", "ip"],
  cpu_cores: ["cpu_cores", "cpuCores"],
  memory_total_mb: ["memory_total_mb", "memoryMb"],
  os_info: ["os_info", "os"],
} as const;

/** The first of `keys` whose value passes `is`, else null: hardware is free-form JSON. */
function fact<T>(hardware: unknown, keys: readonly string[], is: (value: unknown) => value is T): T | null {
  if (typeof hardware !== "object" || hardware === null) return null;
  for (const key of keys) {
    const value = (hardware as Record<string, unknown>)[key];
    if (is(value)) return value;
  }
  return null;
}
const isString = (value: unknown): value is string => typeof value === "string";
const isNumber = (value: unknown): value is number => typeof value === "number";
const isOsInfo = (value: unknown): value is z.infer<typeof osInfo> => osInfo.safeParse(value).success;

const workerOut = (machine: ApiV1WorkerPartsFragment): WorkerOut => ({
  id: machine.id,
  name: machine.name,
  hostname: machine.externalId ?? null,
  ip_address: fact(machine.hardware, HARDWARE_KEYS.ip_address, isString),
  status: lower(machine.status),
  is_approved: machine.approval === "APPROVED",
  approval: lower(machine.approval),
  group: machine.group ?? null,
  max_agents: machine.maxAgents ?? null,
  cpu_cores: fact(machine.hardware, HARDWARE_KEYS.cpu_cores, isNumber),
  memory_total_mb: fact(machine.hardware, HARDWARE_KEYS.memory_total_mb, isNumber),
  os_info: fact(machine.hardware, HARDWARE_KEYS.os_info, isOsInfo),
  cpu_usage_percent: machine.cpuPercent ?? null,
  memory_usage_percent: machine.memoryPercent ?? null,
  disk_usage_percent: machine.diskPercent ?? null,
  last_heartbeat: machine.lastHeartbeatAt ?? null,
  created_at: machine.createdAt,
  agents: machine.agents.map((agent) => ({ id: agent.id, name: agent.name, status: lower(agent.status) })),
});

const registeredShape = workerShape.extend({
  credential: z
    .string()
    .nullable()
    .describe("spm_…: the worker's own bearer token (heartbeats). Shown only here, once; null when an Idempotency-Key replays the first answer"),
  recovery_secret: z.string().nullable().describe("spr_…: trades for a new credential (GraphQL recoverMachineCredential). Shown only here, once"),
});

const overviewShape = z.object({
  total: z.int().describe("Workers not decommissioned: online + offline + draining + drained"),
  online: z.int(),
  offline: z.int(),
  draining: z.int(),
  drained: z.int(),
  pending_approval: z.int(),
  decommissioned: z.int(),
  running_tasks: z.int().describe("Tasks running in the workspace"),
  pending_tasks: z.int().describe("Tasks waiting for a worker in the workspace"),
});

// ---- Inputs ----------------------------------------------------------------------------------

const text = () => z.string("must be a string");
const number = () => z.number("must be a number");
const idParam = z.object({ id: z.string() });
/** Machine.hardware holds at most 16 KB: the one free-form fact gets half of it. */
const MAX_OS_INFO_BYTES = 8 * 1024;

const registerBody = z.object({
  name: text().describe("1-100 characters"),
  hostname: text().nullish().describe("Unique in the workspace (409 when taken)"),
  ip_address: z.union([z.ipv4(), z.ipv6()], "must be an IPv4 or IPv6 address").nullish(),
  max_agents: z.int("must be a whole number").nullish().describe("0 to 10000; left out: no limit"),
  cpu_cores: z.int("must be a whole number").min(0, "must be 0 or more").nullish(),
  memory_total_mb: number().min(0, "must be 0 or more").nullish(),
  os_info: osInfo
    .refine((value) => Buffer.byteLength(JSON.stringify(value)) <= MAX_OS_INFO_BYTES, `must be at most ${MAX_OS_INFO_BYTES / 1024} KB`)
    .nullish()
    .describe("Text or a JSON object"),
});

const heartbeatBody = z.object({
  cpu_usage_percent: number().nullish().describe("0-100"),
  memory_usage_percent: number().nullish().describe("0-100"),
  disk_usage_percent: number().nullish().describe("0-100"),
});

const approveBody = z.object({
  is_approved: z.boolean("is required: true approves, false rejects (its credential is refused from then on)"),
  group: text().nullish().describe("1-100 characters; null clears it, left out it stays"),
});

// ---- Lookups ---------------------------------------------------------------------------------

/** The caller's workspace, if the machine is in it (else 404, as for an unknown id). */
async function ownMachineWorkspace(run: Run, id: string): Promise<string> {
  return inDefaultWorkspace(await run(ApiV1WorkerScopeDocument, { id }), (r) => r.machine, "worker").workspaceId;
}

/** Only system administrators get past (Spindle's own test, Query.users); anyone else: 403. */
async function requireSystemAdmin(run: Run): Promise<void> {
  try {
    await run(ApiV1WorkerAdminGateDocument, {});
  } catch (error) {
    if (error instanceof RestError && error.code === "FORBIDDEN") {
      throw new RestError("FORBIDDEN", "This needs a system administrator (signed in, or an API key with the admin scope)");
    }
    throw error;
  }
}

/** Spindle's "externalId taken" in api-v1's words: the hostname is what the client sent. */
function hostnameTaken(error: unknown, hostname: string | null | undefined): unknown {
  const fields = error instanceof RestError && error.code === "CONFLICT" ? (error.extensions.fields as { field: string }[] | undefined) : undefined;
  if (!fields?.some((f) => f.field === "input.externalId")) return error;
  return new RestError("CONFLICT", `A worker with hostname "${hostname}" is already registered in this workspace`, (error as RestError).extensions);
}

/** The hardware facts api-v1 registers, only those sent. */
function hardwareOf(body: z.infer<typeof registerBody>): Record<string, unknown> {
  const facts = { ip_address: body.ip_address, cpu_cores: body.cpu_cores, memory_total_mb: body.memory_total_mb, os_info: body.os_info };
  return Object.fromEntries(Object.entries(facts).filter(([, value]) => value != null));
}

// ---- Routes ----------------------------------------------------------------------------------

const workerRoutes: Route[] = [
  apiV1Route({
    method: "POST",
    path: "/api/v1/workers/register",
    summary:
      "Register a worker in your workspace: approved at once when you are a workspace admin, else pending until an admin approves it. " +
      "Answers the worker and its credential (spm_…, shown once) for its heartbeats. Takes an Idempotency-Key",
    auth: BEARER,
    status: 201,
    body: registerBody,
    response: registeredShape,
    async handler({ body, run, idempotencyKey }) {
      const workspaceId = await workspaceOf(run);
      const input = { workspaceId, name: body.name, externalId: body.hostname, maxAgents: body.max_agents, hardware: hardwareOf(body), idempotencyKey };
      const { createMachine } = await run(ApiV1WorkerRegisterDocument, { input }).catch((error: unknown) => {
        throw hostnameTaken(error, body.hostname);
      });
      return { ...workerOut(createMachine.machine), credential: createMachine.credential ?? null, recovery_secret: createMachine.recoverySecret ?? null };
    },
  }),
  apiV1Route({
    method: "POST",
    path: "/api/v1/workers/{id}/heartbeat",
    summary:
      "Report a worker alive with its usage; renews the leases of the tasks it holds. With the worker's own credential (spm_…) the id must be its own (else 404); " +
      "with a user's token, any worker the user may change (write access in its workspace)",
    auth: BEARER,
    params: idParam,
    body: heartbeatBody,
    response: workerShape,
    async handler({ params, body, run }) {
      // No default-workspace check: telling a user's token from a machine's credential would cost
      // another request on the fleet's hot path (a machine may not ask for defaultWorkspace), and
      // GraphQL already checks write access in the machine's own workspace.
      const input = { machineId: params.id, cpuPercent: body.cpu_usage_percent, memoryPercent: body.memory_usage_percent, diskPercent: body.disk_usage_percent };
      return workerOut((await run(ApiV1WorkerHeartbeatDocument, { input })).machineHeartbeat.machine);
    },
  }),
  apiV1Route({
    method: "GET",
    path: "/api/v1/workers/{id}/tasks",
    summary:
      "The pending tasks bound to this worker, newest first: those for one of its agents and those created for the worker itself (tasks any worker may take are not listed)",
    auth: BEARER,
    params: idParam,
    response: z.array(taskShape),
    async handler({ params, run }) {
      const workspaceId = await ownMachineWorkspace(run, params.id);
      return workspaceTasks(run, workspaceId, { targetMachineId: params.id, status: ["PENDING"] });
    },
  }),
  apiV1Route({
    method: "GET",
    path: "/api/v1/workers/overview",
    summary: "Your workspace's fleet: workers by status, those pending approval, and the running and pending tasks",
    auth: BEARER,
    response: overviewShape,
    async handler({ run }) {
      const { fleetOverview: o } = await run(ApiV1WorkerOverviewDocument, { workspaceId: await workspaceOf(run) });
      return {
        total: o.total,
        online: o.online,
        offline: o.offline,
        draining: o.draining,
        drained: o.drained,
        pending_approval: o.pendingApproval,
        decommissioned: o.decommissioned,
        running_tasks: o.runningTasks,
        pending_tasks: o.pendingTasks,
      };
    },
  }),
];

const adminRoutes: Route[] = [
  apiV1Route({
    method: "GET",
    path: "/api/v1/admin/workers",
    summary:
      "Every worker of your workspace (decommissioned ones left out), newest first, with its metrics and agents (system administrators; the workspace is your default one)",
    auth: BEARER,
    response: z.array(workerShape),
    async handler({ run }) {
      await requireSystemAdmin(run);
      const workspaceId = await workspaceOf(run);
      const machines = await collect(async (page) => (await run(ApiV1WorkerAdminListDocument, { workspaceId, ...page })).workspace.machines);
      return machines.map(workerOut);
    },
  }),
  apiV1Route({
    method: "PATCH",
    path: "/api/v1/admin/workers/{id}/approve",
    summary:
      "Approve (is_approved: true) or reject (false) a worker, and set its group if sent (system administrators with the admin or owner role in the workspace); a rejected worker's credential is refused",
    auth: BEARER,
    params: idParam,
    body: approveBody,
    response: workerShape,
    async handler({ params, body, run }) {
      await requireSystemAdmin(run);
      await ownMachineWorkspace(run, params.id);
      const { approveMachine } = await run(ApiV1WorkerApproveDocument, { id: params.id, approved: body.is_approved, group: body.group });
      return workerOut(approveMachine);
    },
  }),
];

export const apiV1WorkerRoutes: Route[] = [...workerRoutes, ...adminRoutes];
