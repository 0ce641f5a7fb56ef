// What both halves of the api-web dialect share: its route factory (errors name fields as api-web's
// client sent them), the one workspace its paths leave implicit, projects by key, and the JSON both
// halves answer alike (times, lower-case enums, {"ok": true}, a machine).
import { z } from "zod";
import {
  ApiWebDefaultWorkspaceDocument,
  ApiWebProjectIdDocument,
  type ApiAdminMachineFragment,
  type ApiWebMachinePartsFragment,
} from "../../generated/rest-api-web-graphql.js";
import { RestError, type Credential, type Run } from "../route.js";
import { defaultWorkspaceId, dialectRoute, type FieldNames } from "../shared.js";

export const BEARER: Credential[] = ["bearer"];

/** GraphQL's input fields as api-web's bodies name them; add renames here, most specific first. */
export const API_WEB_FIELDS: FieldNames = [
  ["input.login", "body.username"],
  ["input.targetMachineId", "body.machineId"],
  ["input.userId", "body.developerId"],
  ["input.name", "body.name"],
  ["input", "body"],
];

export const apiWebRoute = dialectRoute("api-web", API_WEB_FIELDS);

/**
 * api-web paths name no workspace: every route works in the caller's default workspace (the one a
 * workspace-bound token is bound to, else the first the caller joined).
 */
export async function workspaceOf(run: Run): Promise<string> {
  return defaultWorkspaceId(await run(ApiWebDefaultWorkspaceDocument, {}));
}

/** A project of the caller's workspace by its key (case-insensitive), or 404. */
export async function projectIdOf(run: Run, workspaceId: string, key: string): Promise<string> {
  const { projectByKey } = await run(ApiWebProjectIdDocument, { workspaceId, key });
  if (!projectByKey) throw new RestError("NOT_FOUND", `No project with key ${key}`);
  return projectByKey.id;
}

/** A 400 naming one field as the client sent it. */
export function badInput(field: string, message: string): RestError {
  return new RestError("VALIDATION", `Invalid input. ${field}: ${message}`, { fields: [{ field, message }] });
}

// ---- JSON ------------------------------------------------------------------------------------

export const lower = <T extends string>(value: T) => value.toLowerCase() as Lowercase<T>;
export const time = z.string().describe("ISO-8601 UTC, e.g. 2026-01-01T00:00:00.000Z");
export const done = z.object({ ok: z.literal(true) });

export const MACHINE_STATUSES = ["online", "offline", "draining", "drained", "decommissioned"] as const;

/**
 * A machine as both halves answer it. The user's routes add `updatedAt`; the admin's, which also
 * list decommissioned machines, add `decommissionedAt` and `workerTokenId`.
 */
export const machineShape = z.object({
  id: z.string(),
  machineId: z.string().nullable().describe("The id the machine chose for itself (host id) at registration"),
  name: z.string(),
  status: z.enum(MACHINE_STATUSES),
  approval: z.enum(["approved", "pending", "rejected"]),
  online: z.boolean(),
  draining: z.boolean(),
  drainingSince: time.nullable(),
  schedulable: z.boolean().describe("The operator switch: false gets no new work, drained or not"),
  acceptingWork: z.boolean(),
  capabilities: z.array(z.string()),
  labels: z.array(z.string()),
  hardware: z.record(z.string(), z.unknown()),
  cpuPercent: z.number().nullable(),
  memoryPercent: z.number().nullable(),
  diskPercent: z.number().nullable(),
  lastHeartbeatAt: time.nullable(),
  createdAt: time,
});

export const machineOut = (machine: ApiWebMachinePartsFragment | ApiAdminMachineFragment): z.infer<typeof machineShape> => ({
  id: machine.id,
  machineId: machine.externalId ?? null,
  name: machine.name,
  status: lower(machine.status),
  approval: lower(machine.approval),
  online: machine.online,
  draining: machine.draining,
  drainingSince: machine.drainingSince ?? null,
  schedulable: machine.schedulable,
  acceptingWork: machine.acceptingWork,
  capabilities: machine.capabilities,
  labels: machine.labels,
  hardware: machine.hardware as Record<string, unknown>,
  cpuPercent: machine.cpuPercent ?? null,
  memoryPercent: machine.memoryPercent ?? null,
  diskPercent: machine.diskPercent ?? null,
  lastHeartbeatAt: machine.lastHeartbeatAt ?? null,
  createdAt: machine.createdAt,
});
