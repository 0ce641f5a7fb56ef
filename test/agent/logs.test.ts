// The agent's LogShipper against a real server, reached through a TCP proxy the test can cut: lines
// of several sources arrive in order and complete, lines wait while the server is unreachable, a
// batch whose answer was lost is stored once, the buffer bound drops lines with an exact WARN line
// about the gap, a finished source drops its lines without holding up the others, overlong lines
// are cut, batches stay under the request limit however escape-heavy their lines, and a NUL costs
// nothing but itself. What arrived is read back from the database, in cursor order.
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AgentClient, Unreachable } from "../../src/agent/client.js";
import { createAgentLog } from "../../src/agent/log.js";
import { LogShipper, type LogShipperOptions, type LogSource } from "../../src/agent/logs.js";
import { finishLogSources } from "../../src/modules/log/log-sources.js";
import { createMachineDirect } from "../authz/world.js";
import { ownedWorkspace, unique } from "../helpers/factories.js";
import { backend, startTestServer, type TestServer } from "../helpers/server.js";
import { tcpProxy, type TcpProxy } from "../helpers/tcp-proxy.js";

let server: TestServer;
let proxy: TcpProxy;
const shippers: LogShipper[] = [];

beforeAll(async () => {
  server = await startTestServer();
  proxy = await tcpProxy(server.url);
});
afterEach(async () => {
  proxy.restore();
  await Promise.all(shippers.splice(0).map((shipper) => shipper.close(5_000)));
});
afterAll(async () => {
  await proxy?.close();
  await server?.close();
});

const prisma = () => server.db.prisma;
const MARKER = " [cut: line longer than 16 KiB]";

interface Team {
  workspaceId: string;
  machine: { id: string; credential: string };
}

async function team(): Promise<Team> {
  const { workspaceId } = await ownedWorkspace(server);
  return { workspaceId, machine: await createMachineDirect(server, workspaceId) };
}

/** A worker assigned to the team's machine, as a log source the machine may write to. */
async function workerSource(team: Team): Promise<LogSource> {
  const worker = await prisma().worker.create({
    data: { workspaceId: team.workspaceId, kind: "CONTAINER", name: unique("w"), image: "nginx", machineId: team.machine.id },
  });
  return { type: "WORKER", id: worker.id };
}

async function taskSource(team: Team): Promise<LogSource> {
  const task = await prisma().task.create({ data: { workspaceId: team.workspaceId, title: unique("task"), machineId: team.machine.id } });
  return { type: "TASK", id: task.id };
}

interface Shipping {
  shipper: LogShipper;
  /** The agent's own log lines (debug and up). */
  agentLog: string[];
}

/** A shipper for the team's machine that talks to the server through the proxy. */
function ship(team: Team, options: Partial<LogShipperOptions> = {}, client = new AgentClient({ server: proxy.url })): Shipping {
  client.setCredential(team.machine.credential);
  const agentLog: string[] = [];
  const shipper = new LogShipper(client, createAgentLog("debug", (line) => agentLog.push(line)), { maxBufferedLines: 10_000, ...options });
  shippers.push(shipper);
  return { shipper, agentLog };
}

/** The source's stored lines, in cursor order. */
const stored = (source: LogSource) => prisma().logLine.findMany({ where: { sourceId: source.id }, orderBy: { cursor: "asc" } });
const messages = async (source: LogSource) => (await stored(source)).map((line) => line.message);

const numbered = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => `${prefix} ${i}`);

/** Polls `condition` until it holds; fails after `timeoutMs`. */
async function until(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Waits until the shipper has tried to send and found the server unreachable (at least `times` times). */
const failedAttempts = (agentLog: string[], times = 1) =>
  until(`${times} failed attempt(s)`, () => agentLog.filter((line) => / wait: /.test(line)).length >= times);

/**
 * A client whose first `lose` answers to appendLogs are lost after the server stored the batch, as
 * when the connection drops between request and answer: the real request runs, then Unreachable.
 */
class LosingClient extends AgentClient {
  readonly sent: { sequence: string; replayed: boolean }[] = [];

  constructor(
    server: string,
    private lose: number,
  ) {
    super({ server });
  }

  override async request<R, V>(document: TypedDocumentNode<R, V>, variables?: V): Promise<R> {
    const data = await super.request(document, variables);
    const { sequence } = (variables as { input: { sequence: string } }).input;
    this.sent.push({ sequence, replayed: (data as { appendLogs: { replayed: boolean } }).appendLogs.replayed });
    if (this.lose > 0) {
      this.lose--;
      throw new Unreachable("The answer was lost on the way back");
    }
    return data;
  }
}

describe(`LogShipper (${backend})`, () => {
  it("delivers every line of two sources, each source in order, batches of 500 included", async () => {
    const tm = await team();
    const [worker, task] = [await workerSource(tm), await taskSource(tm)];
    const { shipper } = ship(tm);
    const workerLines = numbered("worker", 1_200);
    const taskLines = numbered("task", 300);
    // Interleaved, in bursts, so batches of both sources alternate and some are full.
    for (let i = 0; i < workerLines.length; i++) {
      shipper.write(worker, i % 3 ? "INFO" : "ERROR", workerLines[i]!);
      if (i < taskLines.length) shipper.write(task, "INFO", taskLines[i]!, i < 150 ? "build" : "test");
      if (i % 400 === 399) await new Promise((resolve) => setTimeout(resolve, 150));
    }
    expect(await shipper.flush(undefined, 30_000)).toBe(true);
    expect(shipper.size).toBe(0);

    const workerStored = await stored(worker);
    expect(workerStored.map((line) => line.message)).toEqual(workerLines);
    expect(workerStored.map((line) => line.cursor)).toEqual(workerLines.map((_, i) => BigInt(i + 1)));
    expect(workerStored.slice(0, 3).map((line) => line.level)).toEqual(["ERROR", "INFO", "INFO"]);
    const taskStored = await stored(task);
    expect(taskStored.map((line) => line.message)).toEqual(taskLines);
    expect(taskStored[0]!.step).toBe("build");
    expect(taskStored[299]!.step).toBe("test");
  });

  it("keeps lines while the server is unreachable and delivers them once each, in order, when it is back", async () => {
    const tm = await team();
    const worker = await workerSource(tm);
    const { shipper, agentLog } = ship(tm);
    shipper.write(worker, "INFO", "before the cut");
    expect(await shipper.flush(worker)).toBe(true);

    proxy.cut();
    const during = numbered("during", 30);
    // A first batch goes in flight and fails; the rest queue behind it.
    for (const line of during.slice(0, 10)) shipper.write(worker, "INFO", line);
    await failedAttempts(agentLog);
    for (const line of during.slice(10)) shipper.write(worker, "INFO", line);
    await failedAttempts(agentLog, 2);
    expect(shipper.size).toBe(30);
    expect(await shipper.flush(worker, 500)).toBe(false);
    expect(await messages(worker)).toEqual(["before the cut"]);

    proxy.restore();
    expect(await shipper.flush(worker, 30_000)).toBe(true);
    expect(await messages(worker)).toEqual(["before the cut", ...during]);
    const cursors = (await stored(worker)).map((line) => Number(line.cursor));
    expect(cursors).toEqual(Array.from({ length: 31 }, (_, i) => i + 1));
  });

  it("stores a batch once when the answer to its first try was lost (the retry has the same sequence)", async () => {
    const tm = await team();
    const worker = await workerSource(tm);
    const client = new LosingClient(proxy.url, 1);
    const { shipper } = ship(tm, {}, client);
    const lines = numbered("once", 20);
    for (const line of lines) shipper.write(worker, "INFO", line);
    expect(await shipper.flush(worker, 30_000)).toBe(true);

    // The first try was stored; its retry was recognized as such and added nothing.
    expect(client.sent).toHaveLength(2);
    expect(client.sent[1]).toEqual({ sequence: client.sent[0]!.sequence, replayed: true });
    expect(client.sent[0]!.replayed).toBe(false);
    expect(await messages(worker)).toEqual(lines);

    // The next batch gets a new sequence and is stored too.
    shipper.write(worker, "INFO", "after");
    expect(await shipper.flush(worker)).toBe(true);
    expect(client.sent[2]!.sequence).not.toBe(client.sent[0]!.sequence);
    expect(await messages(worker)).toEqual([...lines, "after"]);
  });

  it("drops lines past the bound and says exactly how many and between which times, as soon as there is room, before later lines", async () => {
    const tm = await team();
    const [worker, task] = [await workerSource(tm), await taskSource(tm)];
    const { shipper, agentLog } = ship(tm, { maxBufferedLines: 10 });

    proxy.cut();
    const before = numbered("before", 25);
    const cutAt = new Date();
    for (const line of before) shipper.write(worker, "INFO", line);
    // The bound is over all sources: another source's lines are dropped too, and counted apart.
    shipper.write(task, "INFO", "crowded out");
    const writtenBy = new Date();
    expect(shipper.size).toBe(10);
    await failedAttempts(agentLog);

    proxy.restore();
    // The warnings need no later line to carry them: the end of a source's output may be what was lost.
    expect(await shipper.flush(undefined, 30_000)).toBe(true);
    expect(await messages(worker)).toEqual([...before.slice(0, 10), expect.stringMatching(/^\[spindle agent\] 15 lines /)]);
    expect(await messages(task)).toEqual([expect.stringMatching(/^\[spindle agent\] 1 line written between \S+ and \S+ were dropped: /)]);

    const after = numbered("after", 5);
    for (const line of after) shipper.write(worker, "INFO", line);
    expect(await shipper.flush(worker)).toBe(true);

    const lines = await stored(worker);
    expect(lines.map((line) => line.message)).toEqual([...before.slice(0, 10), expect.any(String), ...after]);
    const warning = lines[10]!;
    expect(warning.level).toBe("WARN");
    const match = /^\[spindle agent\] 15 lines written between (\S+) and (\S+) were dropped: /.exec(warning.message);
    expect(match, warning.message).not.toBeNull();
    const [first, last] = [new Date(match![1]!), new Date(match![2]!)];
    // The gap lies between the last line kept and the warning, within the burst of writes.
    expect(first.getTime()).toBeGreaterThanOrEqual(Math.max(cutAt.getTime(), lines[9]!.at.getTime()));
    expect(last.getTime()).toBeGreaterThanOrEqual(first.getTime());
    expect(last.getTime()).toBeLessThanOrEqual(Math.min(writtenBy.getTime(), warning.at.getTime()));
    expect(warning.message).toContain("(10 lines, 64 MiB)");
  });

  it("drops the lines of a finished source (CONFLICT) without holding up the others", async () => {
    const tm = await team();
    const [task, worker] = [await taskSource(tm), await workerSource(tm)];
    await prisma().$transaction((tx) => finishLogSources(tx, [{ sourceId: task.id, sourceType: "TASK", workspaceId: tm.workspaceId }]));
    const { shipper, agentLog } = ship(tm);

    // The finished source's queue comes first.
    for (const line of numbered("late", 5)) shipper.write(task, "INFO", line);
    for (const line of numbered("live", 5)) shipper.write(worker, "INFO", line);
    expect(await shipper.flush(undefined, 30_000)).toBe(true);
    expect(await messages(worker)).toEqual(numbered("live", 5));
    expect(await stored(task)).toEqual([]);
    expect(agentLog.some((line) => /WARN .*5 log lines of TASK .* refused \(CONFLICT\)/.test(line))).toBe(true);

    // Later lines of the finished source are dropped at once; the others keep flowing.
    shipper.write(task, "INFO", "later");
    shipper.write(worker, "INFO", "more");
    expect(await shipper.flush(task, 1_000)).toBe(true);
    expect(await shipper.flush(undefined, 30_000)).toBe(true);
    expect(shipper.size).toBe(0);
    expect(await messages(worker)).toEqual([...numbered("live", 5), "more"]);
    expect(await stored(task)).toEqual([]);
  });

  it("cuts lines longer than 16 KiB, on a character boundary, with a marker, and stores them", async () => {
    const tm = await team();
    const worker = await workerSource(tm);
    const { shipper } = ship(tm);
    const ascii = "x".repeat(20_000);
    // The cut falls inside a 4-byte character.
    const emoji = `a${"😀".repeat(5_000)}`;
    const exact = "y".repeat(16 * 1024);
    for (const line of [ascii, emoji, exact]) shipper.write(worker, "INFO", line);
    expect(await shipper.flush(worker, 30_000)).toBe(true);

    const [cutAscii, cutEmoji, kept] = await messages(worker);
    for (const [line, original] of [
      [cutAscii!, ascii],
      [cutEmoji!, emoji],
    ] as const) {
      expect(line.endsWith(MARKER)).toBe(true);
      expect(Buffer.byteLength(line)).toBeLessThanOrEqual(16 * 1024);
      expect(Buffer.byteLength(line)).toBeGreaterThan(16 * 1024 - 4);
      expect(original.startsWith(line.slice(0, -MARKER.length))).toBe(true);
    }
    expect(cutEmoji).not.toContain("\uFFFD");
    expect(kept).toBe(exact);
  });
  it("sizes batches by their JSON: lines heavy with escapes stay under the server's 1 MiB request limit", async () => {
    const tm = await team();
    const [worker, task] = [await workerSource(tm), await taskSource(tm)];
    const { shipper } = ship(tm);
    // 16,000 ESC characters are 16,000 bytes of message but 96,000 bytes of JSON ("\u001b" each).
    const escapes = "\u001b".repeat(16_000);
    for (let i = 0; i < 40; i++) shipper.write(worker, "INFO", escapes);
    shipper.write(task, "INFO", "another source");
    expect(await shipper.flush(undefined, 20_000)).toBe(true);
    const stored = await messages(worker);
    expect(stored).toHaveLength(40);
    expect(stored.every((line) => line === escapes)).toBe(true);
    expect(await messages(task)).toEqual(["another source"]);
  });

  it("makes lines storable: a NUL or a lone surrogate becomes U+FFFD instead of costing the whole batch", async () => {
    const tm = await team();
    const worker = await workerSource(tm);
    const { shipper } = ship(tm);
    for (const line of ["ok 1", "nul \u0000 here", "lone \ud800 surrogate", "ok 2"]) shipper.write(worker, "INFO", line);
    expect(await shipper.flush(worker, 30_000)).toBe(true);
    expect(await messages(worker)).toEqual(["ok 1", "nul \uFFFD here", "lone \uFFFD surrogate", "ok 2"]);
  });
});
