// Live logs against a real server: batched ingestion (limits, retries stored once, who may write),
// and the `logs` subscription over graphql-ws and SSE: replay then live with no gap and no
// duplicate while lines are being written, resuming with a cursor, level filters, strangers, the
// end of a source, removal from the workspace, and the gap retention leaves.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { LogSourceType } from "../../src/generated/prisma/client.js";
import type { Database } from "../../src/infra/db.js";
import { createLogger } from "../../src/infra/logger.js";
import { createLiveStreams } from "../../src/infra/streams.js";
import { linesHash } from "../../src/modules/log/ingest.js";
import { announceLogSourcesFinished, finishLogSources } from "../../src/modules/log/log-sources.js";
import { requestHash } from "../../src/modules/shared/idempotency.js";
import { createUnitOfWork } from "../../src/modules/shared/unit-of-work.js";
import { logStream, type LogStreamItem } from "../../src/modules/log/stream.js";
import { createWorkspaceAccess } from "../../src/modules/shared/access.js";
import { createStreamGuards } from "../../src/modules/shared/live.js";
import {
  AppendLogsDocument,
  type AppendLogsInput,
  DestroyWorkerDocument,
  LogoutDocument,
  LogsDocument,
  type LogsSubscription,
  type LogsSubscriptionVariables,
  RemoveWorkspaceMemberDocument,
} from "../generated/graphql.js";
import { addMember, createMachineDirect } from "../authz/world.js";
import { ownedWorkspace, signedInUser, unique, type SignedIn } from "../helpers/factories.js";
import { Inbox, sseSubscribe, tracker, wsClient, wsSubscribe, type WsResult } from "../helpers/live.js";
import { backend, errorOf, fieldsOf, ok, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
const t = tracker();
beforeAll(async () => {
  server = await startTestServer();
});
afterEach(() => t.closeAll());
afterAll(() => server?.close());

const prisma = () => server.db.prisma;
const as = (user: { accessToken: string }) => ({ token: user.accessToken });
type Item = LogsSubscription["logs"];

interface Team {
  owner: SignedIn;
  workspaceId: string;
  machine: { id: string; credential: string };
}

async function team(): Promise<Team> {
  const { owner, workspace } = await ownedWorkspace(server);
  const machine = await createMachineDirect(server, workspace.id);
  return { owner, workspaceId: workspace.id, machine };
}

async function worker(team: Team) {
  return prisma().worker.create({
    data: { workspaceId: team.workspaceId, kind: "CONTAINER", name: unique("w"), image: "nginx", machineId: team.machine.id },
  });
}

let sequence = 0;
/** Appends `count` lines as the source's machine; returns the cursors it was given. */
async function append(team: Team, source: { type: LogSourceType; id: string }, count: number, extra: Partial<AppendLogsInput> = {}) {
  const input: AppendLogsInput = {
    source,
    sequence: String(++sequence),
    lines: Array.from({ length: count }, (_, i) => ({ level: i % 2 ? "INFO" : "WARN", message: `line ${i}` })),
    ...extra,
  };
  return ok(await server.execute(AppendLogsDocument, { input }, { token: team.machine.credential })).appendLogs;
}

function itemOf(result: WsResult<LogsSubscription>): Item {
  if (result.errors?.length || !result.data) throw new Error(`Expected an item, got ${JSON.stringify(result)}`);
  return result.data.logs;
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => String(from + i));

/** Reads items until one carries `cursor` (or the stream ends); returns every line cursor received and the items. */
async function collect(inbox: Inbox<Item>, untilCursor: string, timeoutMs = 15_000) {
  const items = await inbox.until((item) => BigInt(item.cursor) >= BigInt(untilCursor) || item.end != null, timeoutMs);
  return { items, cursors: items.flatMap((i) => i.lines.map((l) => l.cursor)) };
}

/** A graphql-ws subscription mapped to items. */
function wsLogs(user: { accessToken: string }, variables: LogsSubscriptionVariables): Inbox<Item> {
  const client = wsClient(server, t, { authorization: `Bearer ${user.accessToken}` });
  const raw = wsSubscribe(client, t, LogsDocument, variables);
  return mapInbox(raw, itemOf);
}

/** An SSE subscription mapped to items (`event: complete` ends it). */
async function sseLogs(user: { accessToken: string }, variables: LogsSubscriptionVariables): Promise<Inbox<Item>> {
  const stream = await sseSubscribe(server, t, LogsDocument, { token: user.accessToken, variables });
  expect(stream.status).toBe(200);
  return mapInbox(stream.events, (event) => {
    if (event.event !== "next") throw new Error(`Unexpected SSE event ${JSON.stringify(event)}`);
    return itemOf(event.data);
  }, (event) => event.event === "complete");
}

/** Feeds a mapped inbox from a raw one (the helpers' inboxes are typed by transport). */
function mapInbox<S>(source: Inbox<S>, map: (value: S) => Item, isEnd: (value: S) => boolean = () => false): Inbox<Item> {
  const target = new Inbox<Item>(source.what);
  void (async () => {
    for (;;) {
      let value: S;
      try {
        value = await source.next(3_600_000);
      } catch (error) {
        target.finish(source.end?.error ?? (source.end ? undefined : error));
        return;
      }
      if (isEnd(value)) {
        target.finish();
        return;
      }
      try {
        target.push(map(value));
      } catch (error) {
        target.finish(error);
        return;
      }
    }
  })();
  t.track(target, (inbox) => inbox.finish());
  return target;
}

describe(`appendLogs (${backend})`, () => {
  it("gives each line the source's next cursor, in order, and stores the lines", async () => {
    const tm = await team();
    const w = await worker(tm);
    const source = { type: "WORKER" as const, id: w.id };
    expect(await append(tm, source, 3)).toEqual({ firstCursor: "1", lastCursor: "3", count: 3, replayed: false });
    expect(await append(tm, source, 2)).toEqual({ firstCursor: "4", lastCursor: "5", count: 2, replayed: false });
    const lines = await prisma().logLine.findMany({ where: { sourceId: w.id }, orderBy: { cursor: "asc" } });
    expect(lines.map((l) => [Number(l.cursor), l.message])).toEqual([
      [1, "line 0"],
      [2, "line 1"],
      [3, "line 2"],
      [4, "line 0"],
      [5, "line 1"],
    ]);
    expect((await prisma().logSource.findUniqueOrThrow({ where: { sourceId: w.id } })).lastCursor).toBe(5n);
  });

  it("keeps the time a line carries, and stamps the others with the time of receipt", async () => {
    const tm = await team();
    const w = await worker(tm);
    const before = Date.now();
    await append(tm, { type: "WORKER", id: w.id }, 0, {
      lines: [
        { level: "INFO", message: "dated", at: "2026-01-02T03:04:05.678Z" },
        { level: "ERROR", message: "now" },
      ],
    });
    const [dated, stamped] = await prisma().logLine.findMany({ where: { sourceId: w.id }, orderBy: { cursor: "asc" } });
    expect(dated).toMatchObject({ level: "INFO", message: "dated", at: new Date("2026-01-02T03:04:05.678Z") });
    expect(stamped!.level).toBe("ERROR");
    expect(stamped!.at.getTime()).toBeGreaterThanOrEqual(before - 5);
    expect(stamped!.at.getTime()).toBeLessThanOrEqual(Date.now() + 5);
  });

  it("stores a retried batch once and answers the same cursors, also for a numeric sequence", async () => {
    const tm = await team();
    const w = await worker(tm);
    const source = { type: "WORKER" as const, id: w.id };
    const input = { source, sequence: 42 as unknown as string, lines: [{ level: "INFO" as const, message: "once" }, { level: "ERROR" as const, message: "twice?" }] };
    const first = ok(await server.execute(AppendLogsDocument, { input }, { token: tm.machine.credential })).appendLogs;
    // The same batch again, concurrently and then later (the machine never saw the first answer).
    const retries = await Promise.all([1, 2, 3].map(() => server.execute(AppendLogsDocument, { input }, { token: tm.machine.credential })));
    for (const retry of retries) expect(ok(retry).appendLogs).toEqual({ ...first, replayed: true });
    const asString = ok(await server.execute(AppendLogsDocument, { input: { ...input, sequence: "42" } }, { token: tm.machine.credential })).appendLogs;
    expect(asString).toEqual({ firstCursor: "1", lastCursor: "2", count: 2, replayed: true });
    expect(await prisma().logLine.count({ where: { sourceId: w.id } })).toBe(2);

    const changed = errorOf(await server.execute(AppendLogsDocument, { input: { ...input, lines: [{ level: "INFO", message: "other" }] } }, { token: tm.machine.credential }));
    expect(changed.code).toBe("CONFLICT");
    expect(fieldsOf(changed)).toEqual(["input.sequence"]);
    expect(await append(tm, source, 1)).toMatchObject({ firstCursor: "3" });
  });

  it("hashes a batch exactly as the generic request hash does, so sequences stored by earlier versions still match", () => {
    const batches = [
      [{ level: "INFO" as const, message: 'quotes " and \\ and \n, é, 😀, \u2028' }],
      [
        { level: "WARN" as const, message: "a", step: null, at: null },
        { level: "ERROR" as const, message: "b", step: "build", at: new Date("2026-01-02T03:04:05.678Z") },
        { level: "DEBUG" as const, message: "", at: new Date(0) },
      ],
    ];
    for (const lines of batches) expect(linesHash(lines)).toBe(requestHash({ lines }));
  });

  it.each([
    ["no lines", { lines: [] }, "input.lines"],
    ["more than 1000 lines", { lines: Array.from({ length: 1001 }, () => ({ level: "INFO" as const, message: "x" })) }, "input.lines"],
    ["a line over 16 KiB", { lines: [{ level: "INFO" as const, message: "ok" }, { level: "INFO" as const, message: "é".repeat(8193) }] }, "input.lines.1.message"],
    ["a sequence over 200 characters", { sequence: "s".repeat(201) }, "input.sequence"],
  ] as [string, Partial<AppendLogsInput>, string][])("refuses %s, naming the field", async (_what, extra, field) => {
    const tm = await team();
    const w = await worker(tm);
    const input: AppendLogsInput = { source: { type: "WORKER", id: w.id }, sequence: "1", lines: [{ level: "INFO", message: "x" }], ...extra };
    const error = errorOf(await server.execute(AppendLogsDocument, { input }, { token: tm.machine.credential }));
    expect(error.code).toBe("VALIDATION");
    expect(fieldsOf(error)).toEqual([field]);
    expect(await prisma().logLine.count({ where: { sourceId: w.id } })).toBe(0);
  });

  it("refuses a batch over 1 MiB of messages (the service's own limit, below the HTTP body limit)", async () => {
    const tm = await team();
    const w = await worker(tm);
    const lines = Array.from({ length: 70 }, () => ({ level: "INFO" as const, message: "x".repeat(16 * 1024) }));
    const viewer = { kind: "machine" as const, machineId: tm.machine.id, workspaceId: tm.workspaceId, approved: true, scopes: new Set<never>(), credentialHash: "" };
    const call = server.app.services.logs.append({ viewer, access: undefined as never, requestId: "test", client: { ip: "127.0.0.1" } }, { source: { type: "WORKER", id: w.id }, sequence: "1", lines });
    await expect(call).rejects.toMatchObject({ code: "VALIDATION", extensions: { fields: [{ field: "input.lines" }] } });
  });

  it("lets the assigned machine and members with write access append; others learn nothing", async () => {
    const tm = await team();
    const w = await worker(tm);
    const source = { type: "WORKER" as const, id: w.id };
    const input = (n: number): AppendLogsInput => ({ source, sequence: `s${n}`, lines: [{ level: "INFO", message: `m${n}` }] });
    expect(ok(await server.execute(AppendLogsDocument, { input: input(1) }, as(tm.owner))).appendLogs.firstCursor).toBe("1");

    const member = await signedInUser(server);
    await addMember(server, tm.workspaceId, member.id, "MEMBER");
    expect(ok(await server.execute(AppendLogsDocument, { input: input(2) }, as(member))).appendLogs.firstCursor).toBe("2");

    const viewer = await signedInUser(server);
    await addMember(server, tm.workspaceId, viewer.id, "VIEWER");
    expect(errorOf(await server.execute(AppendLogsDocument, { input: input(3) }, as(viewer))).code).toBe("FORBIDDEN");
    const stranger = await signedInUser(server);
    expect(errorOf(await server.execute(AppendLogsDocument, { input: input(4) }, as(stranger))).code).toBe("NOT_FOUND");
    // A machine of the same workspace that the worker is not assigned to.
    const other = await createMachineDirect(server, tm.workspaceId);
    expect(errorOf(await server.execute(AppendLogsDocument, { input: input(5) }, { token: other.credential })).code).toBe("NOT_FOUND");
    expect(errorOf(await server.execute(AppendLogsDocument, { input: { ...input(6), source: { type: "TASK", id: w.id } } }, { token: tm.machine.credential })).code).toBe(
      "NOT_FOUND",
    );
    expect(errorOf(await server.execute(AppendLogsDocument, { input: input(7) })).code).toBe("NOT_AUTHENTICATED");
    expect(await prisma().logLine.count({ where: { sourceId: w.id } })).toBe(2);
  });

  it("appends to tasks and services through their machine, and refuses a finished source with CONFLICT", async () => {
    const tm = await team();
    const task = await prisma().task.create({ data: { workspaceId: tm.workspaceId, title: "build", machineId: tm.machine.id } });
    expect(await append(tm, { type: "TASK", id: task.id }, 2)).toMatchObject({ lastCursor: "2" });
    const deployment = await prisma().deployment.create({
      data: { workspaceId: tm.workspaceId, name: unique("d"), services: { create: [{ workspaceId: tm.workspaceId, name: "web", image: "x", machineId: tm.machine.id }] } },
      include: { services: true },
    });
    expect(await append(tm, { type: "SERVICE", id: deployment.services[0]!.id }, 1)).toMatchObject({ lastCursor: "1" });

    await prisma().$transaction((tx) => finishLogSources(tx, [{ sourceId: task.id, sourceType: "TASK", workspaceId: tm.workspaceId }]));
    const refused = errorOf(
      await server.execute(AppendLogsDocument, { input: { source: { type: "TASK", id: task.id }, sequence: "late", lines: [{ level: "INFO", message: "late" }] } }, { token: tm.machine.credential }),
    );
    expect(refused.code).toBe("CONFLICT");
    expect(refused.message).toMatch(/finished/);
    expect(await prisma().logLine.count({ where: { sourceId: task.id } })).toBe(2);
  });
});

describe(`the logs subscription (${backend})`, () => {
  it.each(["graphql-ws", "SSE"] as const)(
    "replays then goes live with no gap and no duplicate while lines are written during the switch (%s)",
    async (transport) => {
      const tm = await team();
      const w = await worker(tm);
      const source = { type: "WORKER" as const, id: w.id };
      for (let i = 0; i < 6; i++) await append(tm, source, 50);

      // A writer appends batches of varying size continuously, before, during and after subscribing.
      let writing = true;
      let last = "300";
      const writer = (async () => {
        let n = 0;
        while (writing) {
          last = (await append(tm, source, 1 + (n++ % 7))).lastCursor;
        }
      })();
      await new Promise((resolve) => setTimeout(resolve, 150));
      const inbox = transport === "SSE" ? await sseLogs(tm.owner, { source }) : wsLogs(tm.owner, { source });
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      writing = false;
      await writer;
      expect(Number(last)).toBeGreaterThan(320);

      const { cursors, items } = await collect(inbox, last);
      expect(cursors).toEqual(range(1, Number(last)));
      expect(items.every((i) => i.gap === null && !i.finished && i.end === null)).toBe(true);
      // Replayed pages, then coalesced live batches: far fewer items than lines.
      expect(items.length).toBeLessThan(Number(last) / 2);
    },
  );

  it("resumes exactly after the cursor a client reconnects with", async () => {
    const tm = await team();
    const w = await worker(tm);
    const source = { type: "WORKER" as const, id: w.id };
    await append(tm, source, 10);
    const first = wsLogs(tm.owner, { source });
    const before = await collect(first, "10");
    expect(before.cursors).toEqual(range(1, 10));
    await append(tm, source, 5);
    const live = await collect(first, "15");
    expect(live.cursors).toEqual(range(11, 15));
    const resumeAt = live.items[live.items.length - 1]!.cursor;
    await t.closeAll();

    // Lines written while disconnected.
    await append(tm, source, 7);
    const second = await sseLogs(tm.owner, { source, after: resumeAt });
    expect((await collect(second, "22")).cursors).toEqual(range(16, 22));
    await append(tm, source, 3);
    expect((await collect(second, "25")).cursors).toEqual(range(23, 25));
  });

  it("delivers only lines at or above the level, and the cursor still advances past the others", async () => {
    const tm = await team();
    const w = await worker(tm);
    const source = { type: "WORKER" as const, id: w.id };
    await append(tm, source, 4); // WARN, INFO, WARN, INFO
    const inbox = wsLogs(tm.owner, { source, level: "WARN" });
    const replay = await collect(inbox, "4");
    expect(replay.items.flatMap((i) => i.lines.map((l) => [l.cursor, l.level]))).toEqual([
      ["1", "WARN"],
      ["3", "WARN"],
    ]);
    await append(tm, source, 4);
    const live = await inbox.until((item) => item.lines.some((l) => l.cursor === "7"));
    expect(live.flatMap((i) => i.lines.map((l) => l.cursor))).toEqual(["5", "7"]);
  });

  it("refuses strangers with NOT_FOUND (and no stream) over graphql-ws and SSE; a viewer may follow", async () => {
    const tm = await team();
    const w = await worker(tm);
    const source = { type: "WORKER" as const, id: w.id };
    await append(tm, source, 2);
    const stranger = await signedInUser(server);
    const client = wsClient(server, t, { authorization: `Bearer ${stranger.accessToken}` });
    const refused = wsSubscribe(client, t, LogsDocument, { source });
    const answer = await refused.next();
    expect(answer.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    expect(answer.data ?? null).toBeNull();

    const sse = await sseSubscribe(server, t, LogsDocument, { token: stranger.accessToken, variables: { source } });
    const event = await sse.events.next();
    expect(event.data.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    // A missing source answers the same.
    const missing = wsSubscribe(client, t, LogsDocument, { source: { type: "WORKER", id: "6f1f7c3e-0000-4000-8000-000000000000" } });
    expect((await missing.next()).errors?.[0]?.extensions?.code).toBe("NOT_FOUND");

    const viewer = await signedInUser(server);
    await addMember(server, tm.workspaceId, viewer.id, "VIEWER");
    expect((await collect(wsLogs(viewer, { source }), "2")).cursors).toEqual(["1", "2"]);
  });

  it("refuses a malformed cursor with VALIDATION naming `after`", async () => {
    const tm = await team();
    const w = await worker(tm);
    const client = wsClient(server, t, { authorization: `Bearer ${tm.owner.accessToken}` });
    const answer = await wsSubscribe(client, t, LogsDocument, { source: { type: "WORKER", id: w.id }, after: "12x" }).next();
    expect(answer.errors?.[0]?.extensions).toMatchObject({ code: "VALIDATION", fields: [{ field: "after" }] });
  });

  it("ends delivery with ACCESS_REVOKED when the member is removed from the workspace", async () => {
    const tm = await team();
    const w = await worker(tm);
    const source = { type: "WORKER" as const, id: w.id };
    const member = await signedInUser(server);
    await addMember(server, tm.workspaceId, member.id, "MEMBER");
    await append(tm, source, 1);
    const inbox = wsLogs(member, { source });
    await collect(inbox, "1");
    ok(await server.execute(RemoveWorkspaceMemberDocument, { input: { workspaceId: tm.workspaceId, userId: member.id } }, as(tm.owner)));
    const [last] = await inbox.until((item) => item.end != null);
    expect(last).toMatchObject({ end: "ACCESS_REVOKED", finished: false, lines: [] });
    expect(await inbox.ended()).toEqual({ error: undefined });
    await append(tm, source, 1);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(inbox.pending).toHaveLength(0);
  });

  it("ends with CREDENTIAL_REVOKED when the subscribing session signs out", async () => {
    const tm = await team();
    const w = await worker(tm);
    const source = { type: "WORKER" as const, id: w.id };
    const viewer = await signedInUser(server);
    await addMember(server, tm.workspaceId, viewer.id, "VIEWER");
    await append(tm, source, 1);
    const inbox = await sseLogs(viewer, { source });
    await collect(inbox, "1");
    ok(await server.execute(LogoutDocument, {}, as(viewer)));
    const [last] = await inbox.until((item) => item.end != null);
    expect(last).toMatchObject({ end: "CREDENTIAL_REVOKED", lines: [] });
    expect(await inbox.ended()).toEqual({ error: undefined });
  });

  it("sends what is left, then a final item saying the source finished, and completes", async () => {
    const tm = await team();
    const task = await prisma().task.create({ data: { workspaceId: tm.workspaceId, title: "build", machineId: tm.machine.id } });
    const source = { type: "TASK" as const, id: task.id };
    await append(tm, source, 3);
    const ws = wsLogs(tm.owner, { source });
    const sse = await sseLogs(tm.owner, { source });
    await collect(ws, "3");
    await collect(sse, "3");
    await append(tm, source, 2);
    // The task's end, as the task module marks it: in the finishing transaction, announced after commit.
    await prisma().$transaction((tx) => finishLogSources(tx, [{ sourceId: task.id, sourceType: "TASK", workspaceId: tm.workspaceId }]));
    announceLogSourcesFinished(server.pubsub, [task.id]);
    for (const inbox of [ws, sse]) {
      const rest = await inbox.until((item) => item.finished);
      expect(rest.flatMap((i) => i.lines.map((l) => l.cursor))).toEqual(["4", "5"]);
      expect(rest[rest.length - 1]).toMatchObject({ finished: true, end: "SOURCE_FINISHED", cursor: "5", lines: [] });
      expect(await inbox.ended()).toEqual({ error: undefined });
    }
    // Subscribing to a finished source replays it and ends at once.
    const late = await collect(wsLogs(tm.owner, { source, after: "2" }), "999");
    expect(late.cursors).toEqual(["3", "4", "5"]);
    expect(late.items[late.items.length - 1]).toMatchObject({ finished: true, end: "SOURCE_FINISHED" });
  });

  it("ends when the worker is destroyed (destroyWorker finishes its log), and refuses later lines", async () => {
    const tm = await team();
    const w = await worker(tm);
    const source = { type: "WORKER" as const, id: w.id };
    await append(tm, source, 2);
    const inbox = wsLogs(tm.owner, { source });
    await collect(inbox, "2");
    await append(tm, source, 1);
    ok(await server.execute(DestroyWorkerDocument, { id: w.id, reason: "done" }, as(tm.owner)));
    const rest = await inbox.until((item) => item.end != null);
    expect(rest.flatMap((i) => i.lines.map((l) => l.cursor))).toEqual(["3"]);
    expect(rest[rest.length - 1]).toMatchObject({ finished: true, end: "SOURCE_FINISHED", cursor: "3" });
    expect(await inbox.ended()).toEqual({ error: undefined });
    const late = await server.execute(AppendLogsDocument, { input: { source, sequence: "late", lines: [{ level: "INFO", message: "x" }] } }, as(tm.owner));
    expect(errorOf(late).code).toBe("CONFLICT");
  });

  it("remembers a batch sequence for SPINDLE_IDEMPOTENCY_TTL, and forgets it after", async () => {
    const tm = await team();
    const w = await worker(tm);
    const source = { type: "WORKER" as const, id: w.id };
    const send = async () =>
      ok(await server.execute(AppendLogsDocument, { input: { source, sequence: "once", lines: [{ level: "INFO", message: "x" }] } }, as(tm.owner))).appendLogs;
    expect(await send()).toMatchObject({ firstCursor: "1", replayed: false });
    const hour = 3600_000;
    // An hour later the key is kept: a retry is still recognised.
    expect((await server.app.services.logs.prune(new Date(Date.now() + hour))).idempotencyKeysDeleted).toBe(0);
    expect(await send()).toMatchObject({ firstCursor: "1", replayed: true });
    // Past the time to live (a day by default) it is gone, and the same sequence is a new batch.
    expect((await server.app.services.logs.prune(new Date(Date.now() + 25 * hour))).idempotencyKeysDeleted).toBeGreaterThanOrEqual(1);
    expect(await send()).toMatchObject({ firstCursor: "2", replayed: false });
  });

  it("says which range retention removed when the client asks for it, then streams on", async () => {
    const tm = await team();
    const w = await worker(tm);
    const source = { type: "WORKER" as const, id: w.id };
    for (let i = 0; i < 5; i++) await append(tm, source, 10);
    const result = await server.app.services.logs.prune();
    expect(result).toMatchObject({ ran: true });
    // The default cap is far away: nothing of this source went.
    expect(await prisma().logLine.count({ where: { sourceId: w.id } })).toBe(50);

    const { pruneLogs } = await import("../../src/modules/log/retention.js");
    expect(await pruneLogs(createUnitOfWork({ prisma: prisma() }), { maxLinesPerSource: 20, maxAgeSeconds: 3600 })).toMatchObject({ ran: true });
    expect(await prisma().logLine.count({ where: { sourceId: w.id } })).toBe(20);
    expect((await prisma().logSource.findUniqueOrThrow({ where: { sourceId: w.id } })).prunedThrough).toBe(30n);
    // Idempotent: a second run (another replica) finds nothing to do for this source.
    await pruneLogs(createUnitOfWork({ prisma: prisma() }), { maxLinesPerSource: 20, maxAgeSeconds: 3600 });
    expect(await prisma().logLine.count({ where: { sourceId: w.id } })).toBe(20);

    const inbox = wsLogs(tm.owner, { source, after: "12" });
    const first = await inbox.next();
    expect(first.gap).toEqual({ from: "13", to: "30" });
    const rest = first.cursor === "50" ? [] : (await collect(inbox, "50")).cursors;
    expect([...first.lines.map((l) => l.cursor), ...rest]).toEqual(range(31, 50));
    const fromPresent = await collect(wsLogs(tm.owner, { source, after: "35" }), "50");
    expect(fromPresent.items[0]!.gap).toBeNull();
    expect(fromPresent.cursors).toEqual(range(36, 50));

    // By age: lines written (by the clock they carry) before the cutoff go.
    const old = new Date(Date.now() - 2 * 3600_000).toISOString();
    const aged = await worker(tm);
    await append(tm, { type: "WORKER", id: aged.id }, 1, { lines: [{ level: "INFO", message: "old", at: old }, { level: "INFO", message: "old too", at: old }] });
    await append(tm, { type: "WORKER", id: aged.id }, 1);
    await pruneLogs(createUnitOfWork({ prisma: prisma() }), { maxLinesPerSource: 1000, maxAgeSeconds: 3600 });
    expect((await prisma().logLine.findMany({ where: { sourceId: aged.id } })).map((l) => Number(l.cursor))).toEqual([3]);
    const gapItem = await wsLogs(tm.owner, { source: { type: "WORKER", id: aged.id } }).next();
    expect(gapItem).toMatchObject({ gap: { from: "1", to: "2" } });
    expect(gapItem.lines.map((l) => l.cursor)).toEqual(["3"]);
  });
});

describe(`the live-stream engine under a crowd (${backend})`, () => {
  it("gives the streams of a source one read of the store and one membership check, whatever cursor each is at, and each its own lines once", async () => {
    const tm = await team();
    const w = await worker(tm);
    await append(tm, { type: "WORKER", id: w.id }, 3);
    // The engine and the guard as the server builds them, on a database handle that counts what is read through it.
    const reads = { pages: 0, memberships: 0 };
    const db: Pick<Database, "withConnection"> = {
      withConnection: (fn) =>
        server.db.withConnection((sql) =>
          fn({
            ...sql,
            query: (text, params) => {
              if (text.includes('FROM "LogSource"')) reads.pages++;
              if (text.includes('FROM "WorkspaceMember"')) reads.memberships++;
              return sql.query(text, params);
            },
          }),
        ),
    };
    const streams = createLiveStreams({ pubsub: server.pubsub, log: createLogger("silent") });
    const guards = createStreamGuards({ prisma: prisma(), db, streams });
    const session = await prisma().session.findFirstOrThrow({ where: { userId: tm.owner.id }, orderBy: { createdAt: "desc" } });
    const viewer = { kind: "session" as const, userId: tm.owner.id, sessionId: session.id, via: "bearer" as const, role: "USER" as const, scopes: new Set(["read", "write"] as const) };
    const crowd = 20;
    // Half of them resume after cursor 2 (a client that reconnected), half start from the beginning.
    const after = (i: number) => (i % 2 ? 2n : 0n);
    const followers = await Promise.all(
      Array.from({ length: crowd }, async (_, i) => {
        const ctx = { viewer, access: createWorkspaceAccess(viewer, prisma(), server.db.sql) };
        return logStream({ streams, db, guard: await guards.forUser(ctx, tm.workspaceId), sourceId: w.id, after: after(i) });
      }),
    );
    try {
      const next = async () => (await Promise.all(followers.map((f) => f.next()))).map((r) => (r.done ? null : (r.value as LogStreamItem)));
      const replay = await next();
      expect(replay.map((item) => item?.lines.map((l) => l.cursor))).toEqual(Array.from({ length: crowd }, (_, i) => (after(i) ? ["3"] : ["1", "2", "3"])));
      expect(reads).toEqual({ pages: 1, memberships: 1 });

      // Past the engine's first settle re-read (500 ms after opening), which finds nothing new.
      await new Promise((resolve) => setTimeout(resolve, 700));
      const pending = next();
      await expect.poll(() => reads.pages).toBe(2);
      reads.pages = reads.memberships = 0;
      await append(tm, { type: "WORKER", id: w.id }, 2);
      const live = await pending;
      expect(live.map((item) => item?.lines.map((l) => l.cursor))).toEqual(Array.from({ length: crowd }, () => ["4", "5"]));
      expect(reads).toEqual({ pages: 1, memberships: 1 });
    } finally {
      streams.closeAll();
    }
  });
});

