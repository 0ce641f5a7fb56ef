// The agent across a server restart: the server (its own process, on the backend of the run) is
// stopped while a worker writes a numbered line every 20 ms, and started again on the same port and
// data a few seconds later. The agent buffers meanwhile, reconnects, and every line written in
// between arrives exactly once, in order. Then SIGTERM: the agent stops its workers, flushes, exits 0.
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import { eventually, startAgent, stopAllAgents } from "../helpers/agent.js";
import { ADMIN, freshBackend, startSpindle, type Backend, type SpindleProcess } from "../helpers/server-process.js";
import { backend as backendName } from "../helpers/server.js";

let backend: Backend;
let server: SpindleProcess;
let port: string;

/** One GraphQL call to the server process; its data, or it throws with the errors. */
async function gql<T = any>(query: string, variables: Record<string, unknown> = {}, token?: string): Promise<T> {
  const response = await fetch(`http://127.0.0.1:${port}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: T; errors?: unknown[] };
  if (body.errors?.length || !body.data) throw new Error(`GraphQL failed: ${JSON.stringify(body.errors)}`);
  return body.data;
}

const start = (fixedPort?: string) => startSpindle({ runtime: "tsx", backend, env: fixedPort ? { PORT: fixedPort } : {} });

beforeAll(async () => {
  backend = await freshBackend();
  server = await start();
  port = new URL(server.url).port;
}, 60_000);
afterEach(() => stopAllAgents());
afterAll(async () => {
  await server?.stop();
  await backend?.drop();
});

describe(`the agent across a server restart (${backendName})`, () => {
  it("keeps every log line written while the server was down, exactly once and in order; SIGTERM stops it cleanly", async () => {
    const { login } = await gql(`mutation($input: LoginInput!) { login(input: $input) { accessToken } }`, {
      input: { login: ADMIN.email, password: ADMIN.password },
    });
    const token: string = login.accessToken;
    const { createWorkspace } = await gql(`mutation { createWorkspace(input: { name: "restart" }) { id } }`, {}, token);
    const { createEnrollmentToken } = await gql(
      `mutation($input: CreateEnrollmentTokenInput!) { createEnrollmentToken(input: $input) { token } }`,
      { input: { workspaceId: createWorkspace.id, name: "restart" } },
      token,
    );
    const agent = startAgent({ args: ["--server", `http://127.0.0.1:${port}`, "--enroll", createEnrollmentToken.token, "--kill-grace", "2"] });
    onTestFailed(() => console.log(agent.output()));
    await agent.waitFor(/assignment stream connected/, 30_000);

    const { deployWorker } = await gql(
      `mutation($input: DeployWorkerInput!) { deployWorker(input: $input) { id } }`,
      { input: { workspaceId: createWorkspace.id, kind: "CONTAINER", name: "counter", command: "i=0; while true; do i=$((i+1)); echo \"line $i\"; sleep 0.02; done" } },
      token,
    );
    const linesOf = async () => {
      const { logLines } = await gql(
        `query($input: LogLinesInput!) { logLines(input: $input) { lines { message } } }`,
        { input: { source: { type: "WORKER", id: deployWorker.id }, limit: 1000 } },
        token,
      );
      return (logLines.lines as { message: string }[]).map((line) => line.message);
    };
    await eventually(async () => (await linesOf()).length >= 20, "the worker's first lines", 30_000);

    await server.stop();
    const downAt = Date.now();
    // Down long enough for hundreds of lines and several failed batches.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    server = await start(port);
    const downMs = Date.now() - downAt;
    await eventually(() => (agent.output().match(/assignment stream connected/g) ?? []).length >= 2, "the assignment stream to be back", 60_000);

    // Every line up to one written well after the restart, each once, in order.
    const wanted = Math.ceil(downMs / 20) + 100;
    const all = await eventually(
      async () => {
        const lines: string[] = [];
        let after: string | null = null;
        for (;;) {
          const { logLines } = (await gql(
            `query($input: LogLinesInput!) { logLines(input: $input) { lines { cursor message } nextCursor hasMore } }`,
            { input: { source: { type: "WORKER", id: deployWorker.id }, limit: 1000, ...(after ? { after } : {}) } },
            token,
          )) as { logLines: { lines: { message: string }[]; nextCursor: string | null; hasMore: boolean } };
          lines.push(...logLines.lines.map((line) => line.message));
          if (!logLines.hasMore || !logLines.nextCursor) break;
          after = logLines.nextCursor;
        }
        return lines.length >= wanted ? lines : undefined;
      },
      `${wanted} lines`,
      60_000,
      500,
    );
    const numbers = all.map((message) => Number(/^line (\d+)$/.exec(message)?.[1]));
    expect(numbers.every(Number.isInteger)).toBe(true);
    expect(numbers).toEqual(numbers.map((_, i) => i + 1));

    expect(await agent.stop("SIGTERM")).toEqual({ code: 0, signal: null });
    expect(agent.output()).toMatch(/worker counter \([^)]+\) revision 1: stopping \(the agent is stopping\)/);
  }, 120_000);
});
