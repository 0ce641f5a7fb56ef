// A JSON client for the REST dialects: calls a test server over plain HTTP with an optional bearer
// token and checks every answer is JSON and every error the dialect's one error string
// ({"error": "..."} for api-web and Spunto, {"detail": "..."} for api-v1). Also the
// people these tests set up alike: a signed-in member of a workspace, a Spunto organization's owner.
import { expect } from "vitest";
import type { WorkspaceRole } from "../../src/generated/prisma/client.js";
import { addMember, createUser, ownedWorkspace, signIn, type SignedIn } from "./factories.js";
import type { TestServer } from "./server.js";

export interface Call {
  method?: string;
  body?: unknown;
  token?: string;
  headers?: Record<string, string>;
}

/** The client of the test file's server (`serverOf` is read at each call: the server starts in beforeAll). */
export function restClient(serverOf: () => TestServer, errorKey: "error" | "detail" = "error") {
  async function api(path: string, { method = "GET", body, token, headers = {} }: Call = {}) {
    const res = await fetch(`${serverOf().url}${path}`, {
      method,
      headers: {
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...headers,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    return { status: res.status, body: (await res.json()) as any };
  }

  /** A success answer's body, after checking its status (a failure shows the path and the answer). */
  async function success(path: string, call: Call = {}, status = 200) {
    const res = await api(path, call);
    expect({ path, status: res.status, body: res.status === status ? "" : res.body }).toEqual({ path, status, body: "" });
    return res.body;
  }

  /** An error answer: its status, and the one error string the dialect's clients read (as `error`). */
  async function failure(path: string, call: Call = {}) {
    const { status, body } = await api(path, call);
    expect(Object.keys(body)).toEqual([errorKey]);
    expect(typeof body[errorKey]).toBe("string");
    return { status, error: body[errorKey] as string };
  }

  /** The status of an error answer, for the many paths that only need it. */
  const statusOf = async (path: string, call: Call = {}) => (await failure(path, call)).status;

  /** An error answer with this status, whose message contains `mentions` (a field name, say) when given. */
  async function expectStatus(path: string, call: Call, status: number, mentions?: string) {
    const answer = await failure(path, call);
    const method = call.method ?? "GET";
    expect({ path, method, status: answer.status, error: answer.error }).toMatchObject({ path, method, status });
    if (mentions) expect(answer.error).toContain(mentions);
    return answer.error;
  }

  return { api, success, failure, statusOf, expectStatus };
}

/** A new signed-in member of the workspace; `systemAdmin` makes the account a system administrator too. */
export async function memberOf(server: TestServer, workspaceId: string, role: WorkspaceRole, options: { systemAdmin?: boolean } = {}): Promise<SignedIn> {
  const user = await signIn(server, await createUser(server, { role: options.systemAdmin ? "ADMIN" : "USER" }));
  await addMember(server, workspaceId, user.id, role);
  return user;
}

/** A signed-in owner of a fresh Spunto organization (a workspace), with the organization's path. */
export async function orgOwner(server: TestServer) {
  const { owner: user, workspaceId: orgId } = await ownedWorkspace(server);
  return { user, token: user.accessToken, orgId, org: `/api/orgs/${orgId}` };
}
