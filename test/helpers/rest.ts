// A JSON client for the REST dialects whose errors are {"error": "..."} (api-web, Spunto): calls a
// test server over plain HTTP with an optional bearer token and checks every answer is JSON.
import { expect } from "vitest";
import type { TestServer } from "./server.js";

export interface Call {
  method?: string;
  body?: unknown;
  token?: string;
  headers?: Record<string, string>;
}

/** The client of the test file's server (`serverOf` is read at each call: the server starts in beforeAll). */
export function restClient(serverOf: () => TestServer) {
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

  /** An error answer: its status, and the one `error` string the dialect's clients read. */
  async function failure(path: string, call: Call = {}) {
    const { status, body } = await api(path, call);
    expect(Object.keys(body)).toEqual(["error"]);
    expect(typeof body.error).toBe("string");
    return { status, error: body.error as string };
  }

  /** An error answer with this status, whose message contains `mentions` (a field name, say) when given. */
  async function expectStatus(path: string, call: Call, status: number, mentions?: string) {
    const answer = await failure(path, call);
    const method = call.method ?? "GET";
    expect({ path, method, status: answer.status, error: answer.error }).toMatchObject({ path, method, status });
    if (mentions) expect(answer.error).toContain(mentions);
    return answer.error;
  }

  return { api, success, failure, expectStatus };
}
