// What both halves of the api-web dialect share: its route factory (errors name fields as api-web's
// client sent them), the one workspace its paths leave implicit, and projects by key.
import { ApiWebDefaultWorkspaceDocument, ApiWebProjectIdDocument } from "../../generated/rest-api-web-graphql.js";
import { RestError, type Run } from "../route.js";
import { dialectRoute, type FieldNames } from "../shared.js";

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
  const { defaultWorkspace } = await run(ApiWebDefaultWorkspaceDocument, {});
  if (!defaultWorkspace) throw new RestError("NOT_FOUND", "You are in no workspace yet: create one or accept an invitation");
  return defaultWorkspace.id;
}

/** A project of the caller's workspace by its key (case-insensitive), or 404. */
export async function projectIdOf(run: Run, workspaceId: string, key: string): Promise<string> {
  const { projectByKey } = await run(ApiWebProjectIdDocument, { workspaceId, key });
  if (!projectByKey) throw new RestError("NOT_FOUND", `No project with key ${key}`);
  return projectByKey.id;
}
