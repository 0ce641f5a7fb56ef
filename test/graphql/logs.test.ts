import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LogLevel, LogSourceType } from "../../src/generated/prisma/client.js";
import { LogLinesDocument, RecentLogLinesDocument, type LogLinesInput } from "../generated/graphql.js";
import { addMember, createMachineDirect } from "../authz/world.js";
import { ownedWorkspace, signedInUser, unique, type SignedIn } from "../helpers/factories.js";
import { backend, errorOf, fieldsOf, ok, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

const prisma = () => server.db.prisma;
const as = (user: { accessToken: string }) => ({ token: user.accessToken });

interface Team {
  owner: SignedIn;
  workspaceId: string;
}

async function team(): Promise<Team> {
  const { owner, workspace } = await ownedWorkspace(server);
  return { owner, workspaceId: workspace.id };
}

const levels: LogLevel[] = ["DEBUG", "INFO", "WARN", "ERROR"];

/** A source with `count` lines, cursors 1..count, levels cycling DEBUG, INFO, WARN, ERROR. */
async function withLines(type: LogSourceType, sourceId: string, workspaceId: string, count: number, extra: { prunedThrough?: number; finishedAt?: Date } = {}) {
  const pruned = extra.prunedThrough ?? 0;
  await prisma().logSource.create({
    data: { sourceId, sourceType: type, workspaceId, lastCursor: BigInt(count), prunedThrough: BigInt(pruned), finishedAt: extra.finishedAt },
  });
  const start = new Date(Date.now() - count * 1000);
  await prisma().logLine.createMany({
    data: Array.from({ length: count - pruned }, (_, i) => {
      const cursor = pruned + i + 1;
      return { sourceId, cursor: BigInt(cursor), level: levels[(cursor - 1) % 4]!, message: `line ${cursor}`, at: new Date(start.getTime() + cursor * 1000) };
    }),
  });
}

async function worker(workspaceId: string) {
  return prisma().worker.create({ data: { workspaceId, kind: "CONTAINER", name: unique("w"), image: "nginx" } });
}

const read = (t: Team, input: LogLinesInput) => server.execute(LogLinesDocument, { input }, as(t.owner));

describe(`reading stored logs (${backend})`, () => {
  it("pages by cursor, oldest first, and says where to go on", async () => {
    const t = await team();
    const w = await worker(t.workspaceId);
    await withLines("WORKER", w.id, t.workspaceId, 25);
    const source = { type: "WORKER" as const, id: w.id };

    const first = ok(await read(t, { source, limit: 10 })).logLines;
    expect(first.lines.map((l) => l.cursor)).toEqual(Array.from({ length: 10 }, (_, i) => String(i + 1)));
    expect(first.lines[0]).toMatchObject({ level: "DEBUG", message: "line 1" });
    expect(first).toMatchObject({ nextCursor: "10", hasMore: true, gap: null, finished: false });

    const second = ok(await read(t, { source, limit: 10, after: first.nextCursor })).logLines;
    expect(second.lines.map((l) => l.cursor)).toEqual(Array.from({ length: 10 }, (_, i) => String(i + 11)));
    const third = ok(await read(t, { source, limit: 10, after: second.nextCursor })).logLines;
    expect(third.lines.map((l) => l.cursor)).toEqual(["21", "22", "23", "24", "25"]);
    expect(third).toMatchObject({ nextCursor: "25", hasMore: false });
    const none = ok(await read(t, { source, after: "25" })).logLines;
    expect(none).toMatchObject({ lines: [], nextCursor: "25", hasMore: false });

    expect(ok(await read(t, { source })).logLines.lines).toHaveLength(25);
  });

  it("filters by minimum level", async () => {
    const t = await team();
    const w = await worker(t.workspaceId);
    await withLines("WORKER", w.id, t.workspaceId, 12);
    const source = { type: "WORKER" as const, id: w.id };
    const warn = ok(await read(t, { source, level: "WARN" })).logLines;
    expect(warn.lines.map((l) => [l.cursor, l.level])).toEqual([
      ["3", "WARN"],
      ["4", "ERROR"],
      ["7", "WARN"],
      ["8", "ERROR"],
      ["11", "WARN"],
      ["12", "ERROR"],
    ]);
    expect(warn.nextCursor).toBe("12");
    const errors = ok(await read(t, { source, level: "ERROR", limit: 2 })).logLines;
    expect(errors.lines.map((l) => l.cursor)).toEqual(["4", "8"]);
    expect(errors).toMatchObject({ hasMore: true, nextCursor: "8" });
    expect(ok(await read(t, { source, level: "DEBUG" })).logLines.lines).toHaveLength(12);
  });

  it("reads the newest lines with tail", async () => {
    const t = await team();
    const w = await worker(t.workspaceId);
    await withLines("WORKER", w.id, t.workspaceId, 30);
    const tail = ok(await read(t, { source: { type: "WORKER", id: w.id }, tail: true, limit: 5 })).logLines;
    expect(tail.lines.map((l) => l.cursor)).toEqual(["26", "27", "28", "29", "30"]);
    expect(tail).toMatchObject({ nextCursor: "30", hasMore: true, gap: null });
    const error = errorOf(await read(t, { source: { type: "WORKER", id: w.id }, tail: true, after: "3" }));
    expect(fieldsOf(error)).toEqual(["input.tail"]);
  });

  it("reports the range retention removed when reading from before it", async () => {
    const t = await team();
    const task = await prisma().task.create({ data: { workspaceId: t.workspaceId, title: "build" } });
    await withLines("TASK", task.id, t.workspaceId, 20, { prunedThrough: 8, finishedAt: new Date() });
    const source = { type: "TASK" as const, id: task.id };
    const fromStart = ok(await read(t, { source, limit: 3 })).logLines;
    expect(fromStart.gap).toEqual({ from: "1", to: "8" });
    expect(fromStart.lines.map((l) => l.cursor)).toEqual(["9", "10", "11"]);
    expect(fromStart.finished).toBe(true);
    expect(ok(await read(t, { source, after: "5", limit: 1 })).logLines.gap).toEqual({ from: "6", to: "8" });
    expect(ok(await read(t, { source, after: "8", limit: 1 })).logLines.gap).toBeNull();
    expect(ok(await read(t, { source, after: "12", limit: 1 })).logLines.gap).toBeNull();
  });

  it("reads service logs, and answers an empty page for an object that never logged", async () => {
    const t = await team();
    const deployment = await prisma().deployment.create({
      data: { workspaceId: t.workspaceId, name: unique("d"), services: { create: [{ workspaceId: t.workspaceId, name: "web", image: "x" }] } },
      include: { services: true },
    });
    const service = deployment.services[0]!;
    await withLines("SERVICE", service.id, t.workspaceId, 3);
    expect(ok(await read(t, { source: { type: "SERVICE", id: service.id } })).logLines.lines.map((l) => l.message)).toEqual(["line 1", "line 2", "line 3"]);
    const quiet = await worker(t.workspaceId);
    expect(ok(await read(t, { source: { type: "WORKER", id: quiet.id } })).logLines).toMatchObject({ lines: [], hasMore: false, gap: null, nextCursor: "0" });
  });

  it.each([
    ["a limit of 0", { limit: 0 }, "input.limit"],
    ["a limit over 1000", { limit: 1001 }, "input.limit"],
    ["a cursor that is not a number", { after: "abc" }, "input.after"],
    ["a negative cursor", { after: "-1" }, "input.after"],
  ] as [string, Partial<LogLinesInput>, string][])("refuses %s, naming the field", async (_what, extra, field) => {
    const t = await team();
    const w = await worker(t.workspaceId);
    const error = errorOf(await read(t, { source: { type: "WORKER", id: w.id }, ...extra }));
    expect(error.code).toBe("VALIDATION");
    expect(fieldsOf(error)).toEqual([field]);
  });

  it("authorizes through the source's workspace: strangers and wrong types get NOT_FOUND", async () => {
    const t = await team();
    const w = await worker(t.workspaceId);
    await withLines("WORKER", w.id, t.workspaceId, 3);
    const stranger = await signedInUser(server);
    const viewer = await signedInUser(server);
    await addMember(server, t.workspaceId, viewer.id, "VIEWER");
    const source = { type: "WORKER" as const, id: w.id };
    expect(errorOf(await server.execute(LogLinesDocument, { input: { source } }, as(stranger))).code).toBe("NOT_FOUND");
    expect(ok(await server.execute(LogLinesDocument, { input: { source } }, as(viewer))).logLines.lines).toHaveLength(3);
    // The worker's id is not a task's.
    expect(errorOf(await read(t, { source: { type: "TASK", id: w.id } })).code).toBe("NOT_FOUND");
    expect(errorOf(await read(t, { source: { type: "WORKER", id: "nope" } })).code).toBe("NOT_FOUND");
    const machine = await createMachineDirect(server, t.workspaceId);
    expect(errorOf(await server.execute(LogLinesDocument, { input: { source } }, { token: machine.credential })).code).toBe("FORBIDDEN");
  });

  it("lists a workspace's newest lines across sources, of one type or of flow runs only", async () => {
    const t = await team();
    const w = await worker(t.workspaceId);
    const flow = await prisma().flow.create({ data: { workspaceId: t.workspaceId, name: "f" } });
    const run = await prisma().task.create({ data: { workspaceId: t.workspaceId, flowId: flow.id, title: "run" } });
    const task = await prisma().task.create({ data: { workspaceId: t.workspaceId, title: "plain" } });
    const at = (second: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, second));
    const lines: [LogSourceType, string, string, number][] = [
      ["WORKER", w.id, "worker 1", 1],
      ["TASK", run.id, "run 1", 2],
      ["TASK", task.id, "task 1", 3],
      ["TASK", run.id, "run 2", 4],
      ["WORKER", w.id, "worker 2", 5],
    ];
    for (const [sourceType, sourceId] of new Map(lines.map(([type, id]) => [id, [type, id] as const])).values()) {
      await prisma().logSource.create({ data: { sourceId, sourceType, workspaceId: t.workspaceId, lastCursor: 2n } });
    }
    const cursors = new Map<string, number>();
    for (const [, sourceId, message, second] of lines) {
      const cursor = (cursors.get(sourceId) ?? 0) + 1;
      cursors.set(sourceId, cursor);
      await prisma().logLine.create({ data: { sourceId, cursor: BigInt(cursor), level: "INFO", message, at: at(second) } });
    }
    const recent = async (args: { sourceType?: LogSourceType; onlyFlowRuns?: boolean; limit?: number }, token = t.owner.accessToken) =>
      server.execute(RecentLogLinesDocument, { workspaceId: t.workspaceId, ...args }, { token });
    const messages = async (args: Parameters<typeof recent>[0]) => ok(await recent(args)).workspace.recentLogLines.map((l) => l.message);

    const all = ok(await recent({})).workspace.recentLogLines;
    expect(all.map((l) => l.message)).toEqual(["worker 2", "run 2", "task 1", "run 1", "worker 1"]);
    expect(all[1]).toEqual({ sourceType: "TASK", sourceId: run.id, cursor: "2", level: "INFO", message: "run 2", at: at(4).toISOString() });
    expect(await messages({ limit: 2 })).toEqual(["worker 2", "run 2"]);
    expect(await messages({ sourceType: "TASK" })).toEqual(["run 2", "task 1", "run 1"]);
    expect(await messages({ onlyFlowRuns: true })).toEqual(["run 2", "run 1"]);
    expect(fieldsOf(errorOf(await recent({ limit: 1001 })))).toEqual(["limit"]);

    const stranger = await signedInUser(server);
    expect(errorOf(await recent({}, stranger.accessToken)).code).toBe("NOT_FOUND");
    const viewer = await signedInUser(server);
    await addMember(server, t.workspaceId, viewer.id, "VIEWER");
    expect(ok(await recent({}, viewer.accessToken)).workspace.recentLogLines).toHaveLength(5);
  });
});

describe(`statement counts (${backend})`, () => {
  // A source's page and the workspace's newest lines across its workers, tasks and services.
  const PAGE_AND_RECENT = /* GraphQL */ `
    query NPlusOneLogs($id: ID!, $source: LogSourceInput!, $first: Int!) {
      logLines(input: { source: $source, limit: $first }) { lines { cursor level message step at } nextCursor hasMore gap { from to } finished finishedAt }
      workspace(id: $id) { recentLogLines(limit: $first) { sourceType sourceId cursor level message step at } }
    }
  `;

  it("runs the same number of SQL statements for 10 and 100 log lines of a source and of a workspace's sources", async () => {
    const t = await team();
    const main = await worker(t.workspaceId);
    await withLines("WORKER", main.id, t.workspaceId, 110);
    // 105 more sources of every type, one line each, newer than the main worker's lines (its last is now).
    const workers = await Promise.all(Array.from({ length: 35 }, () => worker(t.workspaceId)));
    await prisma().task.createMany({ data: Array.from({ length: 35 }, (_, i) => ({ workspaceId: t.workspaceId, title: `t${i}` })) });
    const tasks = await prisma().task.findMany({ where: { workspaceId: t.workspaceId }, select: { id: true } });
    const deployment = await prisma().deployment.create({
      data: { workspaceId: t.workspaceId, name: "d", services: { create: Array.from({ length: 35 }, (_, i) => ({ workspaceId: t.workspaceId, name: `s${i}`, image: "x" })) } },
      include: { services: { select: { id: true } } },
    });
    const sources = [
      ...workers.map((w) => ({ sourceId: w.id, sourceType: "WORKER" as const })),
      ...tasks.map((task) => ({ sourceId: task.id, sourceType: "TASK" as const })),
      ...deployment.services.map((s) => ({ sourceId: s.id, sourceType: "SERVICE" as const })),
    ];
    expect(sources).toHaveLength(105);
    await prisma().logSource.createMany({ data: sources.map((s) => ({ ...s, workspaceId: t.workspaceId, lastCursor: 1n })) });
    await prisma().logLine.createMany({
      data: sources.map((s, i) => ({
        sourceId: s.sourceId,
        cursor: 1n,
        level: levels[i % 4]!,
        message: `${s.sourceType} ${i}`,
        step: s.sourceType === "TASK" ? "build" : null,
        at: new Date(Date.now() + (i + 1) * 1000),
      })),
    });

    const count = async (first: number) => {
      const before = server.db.statements.count;
      const data = ok(await server.post({ query: PAGE_AND_RECENT, variables: { id: t.workspaceId, source: { type: "WORKER", id: main.id }, first } }, as(t.owner)));
      const statements = server.db.statements.count - before;
      expect(data.logLines).toMatchObject({ nextCursor: String(first), hasMore: true, gap: null, finished: false });
      expect(data.logLines.lines.map((l: { message: string }) => l.message)).toEqual(Array.from({ length: first }, (_, i) => `line ${i + 1}`));
      // Newest first: the last source's line first.
      const recent: { sourceId: string; message: string; step: string | null }[] = data.workspace.recentLogLines;
      expect(recent.map((l) => l.sourceId)).toEqual(sources.slice(105 - first).reverse().map((s) => s.sourceId));
      expect(recent.every((l) => (l.message.startsWith("TASK") ? l.step === "build" : l.step === null))).toBe(true);
      return statements;
    };
    // The first request also checks the token in the database; later ones find it cached.
    await count(10);
    const ten = await count(10);
    const hundred = await count(100);
    expect(hundred).toBe(ten);
  });
});
