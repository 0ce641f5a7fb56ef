// Live logs when things go wrong: a slow subscriber (holds only its cursor, reads from the store), the
// credential behind a stream expiring, and Redis going away during ingestion (the server's own
// Redis connections are cut through a TCP proxy; the machine's Redis keeps running for others).
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createWorkspaceAccess } from "../../src/modules/shared/access.js";
import { AppendLogsDocument, LogsDocument, type LogsSubscription } from "../generated/graphql.js";
import { addMember, createMachineDirect } from "../authz/world.js";
import { ownedWorkspace, signedInUser, unique } from "../helpers/factories.js";
import { sseSubscribe, tracker, wsClient, wsSubscribe, type WsResult } from "../helpers/live.js";
import { tcpProxy as redisProxy, type TcpProxy as RedisProxy } from "../helpers/tcp-proxy.js";
import { backend, ok, startTestServer, type TestServer } from "../helpers/server.js";

const t = tracker();
afterEach(() => t.closeAll());
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => String(from + i));

async function fixture(server: TestServer) {
  const prisma = server.db.prisma;
  const { owner, workspace } = await ownedWorkspace(server);
  const machine = await createMachineDirect(server, workspace.id);
  const worker = await prisma.worker.create({ data: { workspaceId: workspace.id, kind: "CONTAINER", name: unique("w"), image: "x", machineId: machine.id } });
  return { owner, machine, workspaceId: workspace.id, source: { type: "WORKER" as const, id: worker.id } };
}

let sequence = 0;
async function append(server: TestServer, f: Awaited<ReturnType<typeof fixture>>, count: number) {
  const lines = Array.from({ length: count }, (_, i) => ({ level: "INFO" as const, message: `m${i}` }));
  return ok(await server.execute(AppendLogsDocument, { input: { source: f.source, sequence: `f${++sequence}`, lines } }, { token: f.machine.credential })).appendLogs;
}

describe(`slow subscribers and expiring credentials (${backend})`, () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ ACCESS_TOKEN_TTL: "4" });
  });
  afterAll(() => server?.close());

  it("holds nothing for a subscriber that does not read: what it missed comes from the store, exactly, in one item", async () => {
    const f = await fixture(server);
    await append(server, f, 5);
    // The owner's session, as the server would have authenticated it.
    const session = await server.db.prisma.session.findFirstOrThrow({ where: { userId: f.owner.id }, orderBy: { createdAt: "desc" } });
    const viewer = { kind: "session" as const, userId: f.owner.id, sessionId: session.id, via: "bearer" as const, role: "USER" as const, scopes: new Set(["read", "write"] as const) };
    const ctx = { viewer, access: createWorkspaceAccess(viewer, server.db.prisma, server.db.sql), requestId: "test", client: { ip: "127.0.0.1" } };
    const stream = await server.app.services.logs.stream(ctx, { source: f.source });
    try {
      const first = await stream.next();
      expect(first.done ? [] : first.value.lines.map((l) => l.cursor)).toEqual(range(1, 5));
      // 400 lines announced in 8 batches while the client reads nothing: the stream keeps only its cursor.
      for (let i = 0; i < 8; i++) {
        await append(server, f, 50);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const next = await stream.next();
      if (next.done) throw new Error("ended");
      expect(next.value.lines.map((l) => l.cursor)).toEqual(range(6, 405));
      expect(next.value.cursor).toBe("405");
    } finally {
      await stream.return?.();
    }
  });

  it("ends an SSE stream with CREDENTIAL_EXPIRED when its access token expires", async () => {
    const f = await fixture(server);
    await append(server, f, 2);
    const sse = await sseSubscribe(server, t, LogsDocument, { token: f.owner.accessToken, variables: { source: f.source } });
    const items = await sse.events.until((e) => e.event === "next" && e.data.data?.logs.end != null, 8_000);
    expect(items[0]!.data.data.logs.lines.map((l: { cursor: string }) => l.cursor)).toEqual(["1", "2"]);
    expect(items[items.length - 1]!.data.data.logs).toMatchObject({ end: "CREDENTIAL_EXPIRED", lines: [], cursor: "2" });
    const complete = await sse.events.next();
    expect(complete.event).toBe("complete");
  });

  it("ends a graphql-ws stream with CREDENTIAL_EXPIRED when its API key expires", async () => {
    const f = await fixture(server);
    const user = await signedInUser(server);
    await addMember(server, f.workspaceId, user.id, "VIEWER");
    const created = await server.post(
      {
        query: "mutation($e: DateTime!) { createApiKey(input: { name: \"short\", scopes: [READ], expiresAt: $e }) { key } }",
        variables: { e: new Date(Date.now() + 2_500).toISOString() },
      },
      { token: user.accessToken },
    );
    const key = ok(created).createApiKey.key as string;
    const inbox = wsSubscribe(wsClient(server, t, { authorization: `Bearer ${key}` }), t, LogsDocument, { source: f.source });
    const [last] = await inbox.until((r) => r.data?.logs.end != null, 6_000);
    expect(last!.data!.logs.end).toBe("CREDENTIAL_EXPIRED");
  });
});

describe.skipIf(!process.env.REDIS_URL)("Redis lost during ingestion (runs only with REDIS_URL, as .ci/run's second pass)", () => {
  let server: TestServer;
  let proxy: RedisProxy;
  beforeAll(async () => {
    proxy = await redisProxy(process.env.REDIS_URL!);
    server = await startTestServer({ REDIS_URL: proxy.url });
  });
  afterAll(async () => {
    proxy?.restore();
    await server?.close();
    await proxy?.close();
  });

  const health = async () => (await (await fetch(`${server.url}/health`)).json()) as { status: string; pubsub: { status: string } };

  it("keeps committing and acknowledging, reports degraded, and the subscriber catches up with every acknowledged line", async () => {
    const f = await fixture(server);
    const inbox = wsSubscribe(wsClient(server, t, { authorization: `Bearer ${f.owner.accessToken}` }), t, LogsDocument, { source: f.source });
    await append(server, f, 3);
    const reached = (cursor: string) => (r: WsResult<LogsSubscription>) => BigInt(r.data!.logs.cursor) >= BigInt(cursor);
    await inbox.until(reached("3"));
    expect((await health()).status).toBe("ok");

    proxy.cut();
    await expect.poll(async () => (await health()).status, { timeout: 5_000 }).toBe("degraded");
    let acknowledged = "3";
    for (let i = 0; i < 10; i++) acknowledged = (await append(server, f, 7)).lastCursor;
    expect(acknowledged).toBe("73");
    expect(await server.db.prisma.logLine.count({ where: { sourceId: f.source.id } })).toBe(73);
    expect((await health()).status).toBe("degraded");

    proxy.restore();
    await expect.poll(async () => (await health()).status, { timeout: 10_000 }).toBe("ok");
    const rest = await inbox.until(reached("73"), 10_000);
    expect(rest.flatMap((r) => r.data!.logs.lines.map((l) => l.cursor))).toEqual(range(4, 73));
    // And live delivery works again.
    await append(server, f, 1);
    expect((await inbox.until(reached("74"))).flatMap((r) => r.data!.logs.lines.map((l) => l.cursor))).toEqual(["74"]);
  });
});
