// Two server processes' worth of Spindle (two in-process servers, each with its own connection
// pool and its own Redis connections) on one PostgreSQL database and one real Redis: a line
// ingested on either replica reaches subscribers on both, and a client whose replica went away
// resumes on the other with its cursor. Needs REDIS_URL: the embedded run has no Redis to share,
// and .ci/run always runs the suite a second time on PostgreSQL + Redis, where this runs.
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AppendLogsDocument, LogsDocument, type LogsSubscription } from "../generated/graphql.js";
import { addMember, createMachineDirect } from "../authz/world.js";
import { signIn, createUser, unique } from "../helpers/factories.js";
import { tracker, wsClient, wsSubscribe, type Inbox, type WsResult } from "../helpers/live.js";
import { ok, startTestServer, type TestServer } from "../helpers/server.js";

const t = tracker();

/** `tsx src/main.ts` as its own OS process, on the given server's database and the same Redis. */
async function startServerProcess(on: TestServer): Promise<{ url: string; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
    env: {
      ...process.env,
      NODE_ENV: "test",
      PORT: "0",
      HOST: "127.0.0.1",
      DATABASE_URL: on.databaseUrl,
      REDIS_URL: process.env.REDIS_URL,
      SPINDLE_DATA_DIR: mkdtempSync(path.join(tmpdir(), "spindle-replica-")),
      LOG_LEVEL: "info",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server process did not start:\n${output}`)), 30_000);
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      const match = /"url":"(http:\/\/[^"]+)\/graphql".*Spindle is listening/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    child.stderr.on("data", (chunk: Buffer) => void (output += chunk.toString()));
    child.on("exit", (code) => reject(new Error(`the server process exited with ${code}:\n${output}`)));
  });
  return {
    url,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}
let a: TestServer;
let b: TestServer;

describe.skipIf(!process.env.REDIS_URL)("two replicas sharing PostgreSQL and Redis (runs only with REDIS_URL, as .ci/run's second pass)", () => {
  beforeAll(async () => {
    a = await startTestServer();
    b = await startTestServer({}, { sameDatabaseAs: a });
  });
  afterEach(() => t.closeAll());
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  type Item = LogsSubscription["logs"];
  const cursorsOf = (results: WsResult<LogsSubscription>[]) => results.flatMap((r) => r.data!.logs.lines.map((l) => l.cursor));
  const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => String(from + i));
  const reached = (cursor: string) => (r: WsResult<LogsSubscription>) => {
    if (r.errors?.length) throw new Error(JSON.stringify(r.errors));
    return BigInt((r.data!.logs as Item).cursor) >= BigInt(cursor);
  };

  async function fixture() {
    const prisma = a.db.prisma;
    const user = await createUser(a);
    const workspace = await prisma.workspace.create({ data: { name: unique("ws") } });
    await addMember(a, workspace.id, user.id, "OWNER");
    const machine = await createMachineDirect(a, workspace.id);
    const worker = await prisma.worker.create({ data: { workspaceId: workspace.id, kind: "CONTAINER", name: unique("w"), image: "x", machineId: machine.id } });
    // Each replica signs its own tokens (the tests give each its own key): sign in on both.
    return { onA: await signIn(a, user), onB: await signIn(b, user), machine, source: { type: "WORKER" as const, id: worker.id } };
  }

  let sequence = 0;
  const append = async (server: TestServer, credential: string, source: { type: "WORKER"; id: string }, count: number) =>
    ok(
      await server.execute(
        AppendLogsDocument,
        { input: { source, sequence: `r${++sequence}`, lines: Array.from({ length: count }, (_, i) => ({ level: "INFO" as const, message: `m${i}` })) } },
        { token: credential },
      ),
    ).appendLogs;

  function follow(server: TestServer, token: string, variables: { source: { type: "WORKER"; id: string }; after?: string }): Inbox<WsResult<LogsSubscription>> {
    return wsSubscribe(wsClient(server, t, { authorization: `Bearer ${token}` }), t, LogsDocument, variables);
  }

  it("delivers a line ingested on one replica to a subscriber on the other", async () => {
    const f = await fixture();
    const onB = follow(b, f.onB.accessToken, { source: f.source });
    // Subscribed (with a replay of nothing) before the line exists: wait past the SUBSCRIBE round trip.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const written = await append(a, f.machine.credential, f.source, 1);
    expect(written.lastCursor).toBe("1");
    const started = Date.now();
    const [item] = await onB.until(reached("1"));
    expect(item!.data!.logs.lines.map((l) => l.message)).toEqual(["m0"]);
    // Live (through Redis), not the settle check one second later.
    expect(Date.now() - started).toBeLessThan(900);
  });

  it("gives subscribers on both replicas every line, in order, while both replicas ingest into one source", async () => {
    const f = await fixture();
    const onA = follow(a, f.onA.accessToken, { source: f.source });
    const onB = follow(b, f.onB.accessToken, { source: f.source });
    const writes = [];
    for (let i = 0; i < 20; i++) {
      writes.push(append(a, f.machine.credential, f.source, 3));
      writes.push(append(b, f.machine.credential, f.source, 2));
    }
    await Promise.all(writes);
    for (const inbox of [onA, onB]) expect(cursorsOf(await inbox.until(reached("100"), 15_000))).toEqual(range(1, 100));
  });

  it("lets a client whose replica stopped resume on the other with its cursor", async () => {
    const f = await fixture();
    const c = await startTestServer({}, { sameDatabaseAs: a });
    let stopped = false;
    try {
      const user = await signIn(c, { ...f.onA });
      const onC = follow(c, user.accessToken, { source: f.source });
      await append(a, f.machine.credential, f.source, 4);
      const seen = await onC.until(reached("4"));
      const resumeAt = seen[seen.length - 1]!.data!.logs.cursor;
      stopped = true;
      await c.close();
      await onC.ended();
      await append(a, f.machine.credential, f.source, 3);
      const onB = follow(b, f.onB.accessToken, { source: f.source, after: resumeAt });
      expect(cursorsOf(await onB.until(reached("7")))).toEqual(range(5, 7));
    } finally {
      if (!stopped) await c.close();
    }
  });

  it("delivers across real processes: a line ingested here reaches a subscriber on a separately started `npm start` server", async () => {
    const f = await fixture();
    const child = await startServerProcess(a);
    try {
      // Sign in on the other process: it signs with its own key, against the same accounts.
      const login = await fetch(`${child.url}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          query: "mutation($i: LoginInput!) { login(input: $i) { accessToken } }",
          variables: { i: { login: f.onA.email, password: f.onA.password } },
        }),
      });
      const token = ((await login.json()) as { data: { login: { accessToken: string } } }).data.login.accessToken;
      const remote = wsSubscribe(
        wsClient({ wsUrl: child.url.replace("http", "ws") + "/graphql" } as TestServer, t, { authorization: `Bearer ${token}` }),
        t,
        LogsDocument,
        { source: f.source },
      );
      await new Promise((resolve) => setTimeout(resolve, 500));
      const written = await append(a, f.machine.credential, f.source, 3);
      const items = await remote.until(reached(written.lastCursor));
      expect(cursorsOf(items)).toEqual(range(1, 3));
    } finally {
      await child.stop();
    }
  }, 60_000);
});
