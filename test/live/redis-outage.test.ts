// A Redis outage longer than the client's retry budget (issue 8, item 11). Two replicas on one
// PostgreSQL database reach Redis through a TCP proxy the test owns; the proxy is cut for longer
// than ioredis takes to give up on a queued command, while `logs` subscriptions open and close on
// replica B and lines are appended on replica A. Before the fix, the SUBSCRIBE and UNSUBSCRIBE
// queued meanwhile were rejected unhandled and the process exited. Needs REDIS_URL: the embedded
// run has no Redis to lose, and .ci/run always runs the suite a second time on PostgreSQL + Redis.
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AppendLogsDocument, LogsDocument, UpdateProfileDocument, type LogsSubscription } from "../generated/graphql.js";
import { addMember, createMachineDirect } from "../authz/world.js";
import { createUser, signIn, unique } from "../helpers/factories.js";
import { tracker, wsClient, wsSubscribe, type Inbox, type WsResult } from "../helpers/live.js";
import { tcpProxy as redisProxy, type TcpProxy as RedisProxy } from "../helpers/tcp-proxy.js";
import { ok, startTestServer, type TestServer } from "../helpers/server.js";

const t = tracker();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => String(from + i));

describe.skipIf(!process.env.REDIS_URL)("a Redis outage longer than the retry budget (runs only with REDIS_URL, as .ci/run's second pass)", () => {
  let proxy: RedisProxy;
  let a: TestServer;
  let b: TestServer;
  // The servers run in this process: whatever would have ended a server process lands here.
  const crashes: unknown[] = [];
  const crashed = (error: unknown) => void crashes.push(error);

  beforeAll(async () => {
    process.on("unhandledRejection", crashed);
    process.on("uncaughtException", crashed);
    proxy = await redisProxy(process.env.REDIS_URL!);
    a = await startTestServer({ REDIS_URL: proxy.url });
    b = await startTestServer({ REDIS_URL: proxy.url }, { sameDatabaseAs: a });
  });
  afterEach(() => t.closeAll());
  afterAll(async () => {
    proxy?.restore();
    await b?.close();
    await a?.close();
    await proxy?.close();
    process.off("unhandledRejection", crashed);
    process.off("uncaughtException", crashed);
  });

  const health = async (server: TestServer) => ((await (await fetch(`${server.url}/health`)).json()) as { status: string }).status;
  const cursorsOf = (results: WsResult<LogsSubscription>[]) => results.flatMap((r) => r.data!.logs.lines.map((l) => l.cursor));
  const reached = (cursor: string) => (r: WsResult<LogsSubscription>) => {
    if (r.errors?.length) throw new Error(JSON.stringify(r.errors));
    return BigInt(r.data!.logs.cursor) >= BigInt(cursor);
  };

  /** How long ioredis keeps a queued command before rejecting it: the sum of its reconnect delays. */
  function retryBudgetMs(server: TestServer) {
    const { maxRetriesPerRequest, retryStrategy } = server.pubsub.redis!.options;
    if (maxRetriesPerRequest == null || !retryStrategy) throw new Error("no retry budget: the test cannot outlast it");
    let total = 0;
    for (let attempt = 1; attempt <= maxRetriesPerRequest; attempt++) total += Number(retryStrategy(attempt) ?? 0);
    return total;
  }

  it("stays up, serves from the database, and subscribes again to every channel that has listeners", async () => {
    const budget = retryBudgetMs(a);
    const user = await createUser(a);
    const workspace = await a.db.prisma.workspace.create({ data: { name: unique("ws") } });
    await addMember(a, workspace.id, user.id, "OWNER");
    const machine = await createMachineDirect(a, workspace.id);
    const newSource = async () => {
      const worker = await a.db.prisma.worker.create({ data: { workspaceId: workspace.id, kind: "CONTAINER", name: unique("w"), image: "x", machineId: machine.id } });
      return { type: "WORKER" as const, id: worker.id };
    };
    type Source = Awaited<ReturnType<typeof newSource>>;
    // Streams on B: kept open throughout; opened in the outage and kept; opened and closed
    // (churned) in the outage; opened before and dropped in the outage.
    const kept = await newSource();
    const opened = await newSource();
    const churned = await newSource();
    const dropped = await newSource();
    const sources = [kept, opened, churned, dropped];
    // Signed in on both before the cut (each replica signs its own tokens).
    const onA = await signIn(a, user);
    const onB = await signIn(b, user);
    let sequence = 0;
    const append = async (source: Source, count: number) =>
      ok(
        await a.execute(
          AppendLogsDocument,
          { input: { source, sequence: `o${++sequence}`, lines: Array.from({ length: count }, (_, i) => ({ level: "INFO" as const, message: `m${i}` })) } },
          { token: machine.credential },
        ),
      ).appendLogs;
    /** A subscription on B with its own socket, so that closing it ends exactly this stream. */
    const follow = (source: Source) => {
      const client = wsClient(b, t, { authorization: `Bearer ${onB.accessToken}` });
      return { inbox: wsSubscribe(client, t, LogsDocument, { source }) as Inbox<WsResult<LogsSubscription>>, close: () => client.dispose() };
    };

    const keptStream = follow(kept);
    const droppedStream = follow(dropped);
    await append(kept, 1);
    await append(dropped, 1);
    await keptStream.inbox.until(reached("1"));
    await droppedStream.inbox.until(reached("1"));

    proxy.cut();
    const cutAt = Date.now();
    await expect.poll(() => health(a), { timeout: 5_000 }).toBe("degraded");
    await expect.poll(() => health(b), { timeout: 5_000 }).toBe("degraded");

    // An account notice is published without checking Redis first: it waits in the command queue
    // until the retry budget runs out, then is rejected.
    ok(await a.execute(UpdateProfileDocument, { input: { displayName: "in the outage" } }, { token: onA.accessToken }));
    // Appends are committed and acknowledged; streams opened now replay them from the database.
    expect((await append(kept, 2)).lastCursor).toBe("3");
    expect((await append(opened, 3)).lastCursor).toBe("3");
    expect((await append(churned, 2)).lastCursor).toBe("2");
    const openedStream = follow(opened);
    expect(cursorsOf(await openedStream.inbox.until(reached("3")))).toEqual(range(1, 3));
    for (let round = 0; round < 3; round++) {
      const churnedStream = follow(churned);
      expect(cursorsOf(await churnedStream.inbox.until(reached("2")))).toEqual(range(1, 2));
      await churnedStream.close();
    }
    await droppedStream.close();
    await append(churned, 1);

    await sleep(cutAt + Math.max(15_000, budget + 2_000) - Date.now());
    expect(Date.now() - cutAt).toBeGreaterThan(budget);
    expect(await health(a)).toBe("degraded");
    expect(await health(b)).toBe("degraded");
    expect(crashes).toEqual([]);

    proxy.restore();
    await expect.poll(() => health(a), { timeout: 10_000 }).toBe("ok");
    await expect.poll(() => health(b), { timeout: 10_000 }).toBe("ok");
    // The stream that stayed open catches up from the store with what was appended meanwhile.
    expect(cursorsOf(await keptStream.inbox.until(reached("3"), 10_000))).toEqual(range(2, 3));

    // B is subscribed on Redis to exactly the channels it has listeners for, whatever happened to
    // them during the outage (the test's own connection, straight to Redis).
    const redis = new Redis(process.env.REDIS_URL!);
    try {
      const channels = sources.map((s) => `logs:${s.id}`);
      await expect.poll(async () => await redis.pubsub("NUMSUB", ...channels), { timeout: 5_000 }).toEqual(channels.flatMap((c, i) => [c, i < 2 ? 1 : 0]));
    } finally {
      redis.disconnect();
    }

    // And lines appended on A now reach B live, through Redis (a log stream does not poll the store).
    for (const [source, stream, next] of [[opened, openedStream, "4"], [kept, keptStream, "4"]] as const) {
      const started = Date.now();
      expect((await append(source, 1)).lastCursor).toBe(next);
      expect(cursorsOf(await stream.inbox.until(reached(next)))).toEqual([next]);
      expect(Date.now() - started).toBeLessThan(900);
    }
    expect(crashes).toEqual([]);
  }, 60_000);
});
