// The README's GraphQL examples, run in order as a new user would paste them, against a real server:
// each must answer without an error. A new example needs its step here (who sends it, with which
// variables), or this test fails and says which.
import { readFileSync } from "node:fs";
import { getOperationAST, Kind, parse, type OperationDefinitionNode } from "graphql";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signedInUser } from "../helpers/factories.js";
import { backend, startTestServer, type GraphQLResponse, type TestServer } from "../helpers/server.js";

const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
const examples = [...readme.matchAll(/```graphql\n([\s\S]*?)```/g)].map((m) => m[1]!);

/** What the tour has made so far, for the variables of later steps. */
interface Tour {
  userToken: string;
  workspaceId?: string;
  enrollmentToken?: string;
  machineCredential?: string;
  workerId?: string;
  taskId?: string;
  leaseToken?: string;
}

interface Step {
  as: "user" | "machine" | "anonymous";
  variables?: (tour: Tour) => Record<string, unknown>;
  /** Takes what later steps need from the answer. */
  keep?: (data: any, tour: Tour) => void;
}

/** Keyed by the operation's name, or by its first root field when it has none. */
const steps: Record<string, Step> = {
  createWorkspace: { as: "user", keep: (d, t) => (t.workspaceId = d.createWorkspace.id) },
  Save: { as: "user", variables: (t) => ({ ws: t.workspaceId }) },
  Token: { as: "user", variables: (t) => ({ ws: t.workspaceId }), keep: (d, t) => (t.enrollmentToken = d.createEnrollmentToken.token) },
  Register: { as: "anonymous", variables: (t) => ({ token: t.enrollmentToken }), keep: (d, t) => (t.machineCredential = d.registerMachine.credential) },
  Deploy: { as: "user", variables: (t) => ({ ws: t.workspaceId }), keep: (d, t) => (t.workerId = d.deployWorker.id) },
  Overview: { as: "user", variables: (t) => ({ ws: t.workspaceId }) },
  machineHeartbeat: { as: "machine" },
  claimTasks: {
    as: "machine",
    keep: (d, t) => {
      expect(d.claimTasks).toHaveLength(1);
      t.taskId = d.claimTasks[0].id;
      t.leaseToken = d.claimTasks[0].leaseToken;
    },
  },
  Start: { as: "machine", variables: (t) => ({ task: t.taskId, lease: t.leaseToken }) },
  Done: { as: "machine", variables: (t) => ({ task: t.taskId, lease: t.leaseToken }) },
  Audit: { as: "user", variables: (t) => ({ ws: t.workspaceId }) },
  Append: { as: "machine", variables: (t) => ({ worker: t.workerId }) },
  Tail: { as: "user", variables: (t) => ({ worker: t.workerId }) },
  Events: { as: "user", variables: (t) => ({ ws: t.workspaceId }) },
  Worker: { as: "user", variables: (t) => ({ id: t.workerId }) },
  // "Run work on a machine": a second workspace, its enrollment token, a CODE worker and its logs.
  Lab: { as: "user", keep: (d, t) => (t.workspaceId = d.createWorkspace.id) },
  FirstBox: { as: "user", variables: (t) => ({ ws: t.workspaceId }), keep: (d, t) => (t.enrollmentToken = d.createEnrollmentToken.token) },
  Ticker: { as: "user", variables: (t) => ({ ws: t.workspaceId }), keep: (d, t) => (t.workerId = d.deployWorker.id) },
  TickerLogs: { as: "user", variables: (t) => ({ worker: t.workerId }) },
};

function stepName(operation: OperationDefinitionNode): string {
  const first = operation.selectionSet.selections[0];
  return operation.name?.value ?? (first?.kind === Kind.FIELD ? first.name.value : "?");
}

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

/**
 * A subscription over SSE: its first event, or, for a stream with nothing to say yet ("from now"),
 * an open stream after a short wait; then the stream is dropped.
 */
async function firstEvent(query: string, variables: unknown, token: string): Promise<GraphQLResponse<unknown>> {
  const abort = new AbortController();
  const res = await fetch(`${server.url}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "text/event-stream", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
    signal: abort.signal,
  });
  expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
  const reader = res.body!.getReader();
  const quiet = setTimeout(() => abort.abort(), 2_000);
  let text = "";
  try {
    while (!/^data: (.*)$/m.test(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
  } catch (error) {
    if (!abort.signal.aborted) throw error;
  } finally {
    clearTimeout(quiet);
    abort.abort();
  }
  const payload = JSON.parse(/^data: (.*)$/m.exec(text)?.[1] ?? "{}");
  return { status: res.status, headers: res.headers, data: payload.data, errors: payload.errors };
}

describe(`the README's tour, pasted in order (${backend})`, () => {
  it("has a step for every example, in the README's order", () => {
    const names = examples.map((e) => stepName(getOperationAST(parse(e))!));
    expect(names.filter((n) => !steps[n])).toEqual([]);
    expect(names).toEqual(Object.keys(steps));
  });

  it("runs every example without an error", { timeout: 60_000 }, async () => {
    const admin = await signedInUser(server, { role: "ADMIN" });
    const tour: Tour = { userToken: admin.accessToken };
    for (const example of examples) {
      const operation = getOperationAST(parse(example))!;
      const name = stepName(operation);
      const step = steps[name]!;
      const token = step.as === "user" ? tour.userToken : step.as === "machine" ? tour.machineCredential : undefined;
      const variables = step.variables?.(tour) ?? {};
      const res =
        operation.operation === "subscription"
          ? await firstEvent(example, variables, token!)
          : await server.post({ query: example, variables }, token ? { token } : {});
      expect({ example: name, errors: res.errors ?? [] }).toEqual({ example: name, errors: [] });
      step.keep?.(res.data, tour);
    }
  });
});
