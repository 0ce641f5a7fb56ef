// What every api-v1 route file shares (../shared/seeds/003): its route factory (snake_case bodies;
// errors name fields as the client sent them), the one workspace its paths leave implicit, and the
// JSON pieces all its answers use alike.
import { z } from "zod";
import { ApiV1DefaultWorkspaceDocument } from "../../generated/rest-api-v1-graphql.js";
import { RestError, type Credential, type Run } from "../route.js";
import { defaultWorkspaceId, dialectRoute, type FieldNames } from "../shared.js";

export const BEARER: Credential[] = ["bearer"];
export const OPEN: Credential[] = ["none"];

/** GraphQL's input fields as api-v1's bodies name them; add renames here, most specific first. */
export const API_V1_FIELDS: FieldNames = [
  ["input.displayName", "body.full_name"],
  ["input.login", "body.email"],
  ["input.currentPassword", "body.current_password"],
  ["input.newPassword", "body.new_password"],
  ["input.refreshToken", "body.refresh_token"],
  ["input.totpCode", "body.totp_code"],
  ["input.targetAgentId", "body.agent_id"],
  ["input.requiredCapabilities", "body.required_tools"],
  ["input.externalId", "body.hostname"],
  ["input.cpuPercent", "body.cpu_usage_percent"],
  ["input.memoryPercent", "body.memory_usage_percent"],
  ["input.diskPercent", "body.disk_usage_percent"],
  ["input.maxAgents", "body.max_agents"],
  ["input", "body"],
];

export const apiV1Route = dialectRoute("api-v1", API_V1_FIELDS);

/**
 * api-v1 paths name no workspace: every route works in the caller's default workspace (the one a
 * workspace-bound token is bound to, else the first the caller joined).
 */
export async function workspaceOf(run: Run): Promise<string> {
  return defaultWorkspaceId(await run(ApiV1DefaultWorkspaceDocument, {}));
}

/** A 422 naming one field as the client sent it (`body.priority`, `query.limit`). */
export function badInput(field: string, message: string): RestError {
  return new RestError("VALIDATION", `Invalid input. ${field}: ${message}`, { fields: [{ field, message }] });
}

export const lower = <T extends string>(value: T) => value.toLowerCase() as Lowercase<T>;

/**
 * A Spindle enum value as api-v1 shows it: lower-case, except a task's SUCCEEDED, which api-v1 calls
 * "completed" (its event is task.completed). The task routes and the event stream both use this.
 */
export const apiV1Enum = (value: string) => (value === "SUCCEEDED" ? "completed" : value.toLowerCase());
export const time = z.string().describe("ISO-8601 UTC, e.g. 2026-01-01T00:00:00.000Z");
