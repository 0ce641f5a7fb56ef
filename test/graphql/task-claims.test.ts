// Machines claiming work: capability and target matching, priority order, machines that may not
// take work, leases (who sees the token, a lost lease after expiry), another machine's task, and
// many machines claiming at once with every task handed out exactly once.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMachineDirect } from "../authz/world.js";
import {
  AddTaskEventDocument,
  AssignedTasksDocument,
  ClaimTasksDocument,
  CompleteTaskDocument,
  ReportTaskStageDocument,
  StartTaskDocument,
  TaskDetailsDocument,
  TaskEventsPageDocument,
} from "../generated/graphql.js";
import { ownedWorkspace } from "../helpers/factories.js";
import { backend, errorOf, fieldsOf, ok, startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());


async function workspace(s: TestServer = server) {
  const { owner, workspace: ws } = await ownedWorkspace(s);
  return { workspaceId: ws.id, owner, token: owner.accessToken };
}

const claim = async (credential: string, limit?: number, s: TestServer = server) =>
  ok(await s.execute(ClaimTasksDocument, { input: limit ? { limit } : null }, { token: credential })).claimTasks;

describe(`claiming (${backend})`, () => {
  it("gives a machine only what its capabilities cover and what targets no other machine, highest priority and oldest first", async () => {
    const { workspaceId } = await workspace();
    const docker = await createMachineDirect(server, workspaceId, { capabilities: ["docker"] });
    const gpu = await createMachineDirect(server, workspaceId, { capabilities: ["gpu", "docker", "node"] });
    const prisma = server.db.prisma;
    const make = (title: string, extra: Record<string, unknown> = {}) => prisma.task.create({ data: { workspaceId, title, ...extra } });
    const plain = await make("plain");
    const needsGpu = await make("gpu", { requiredCapabilities: ["gpu"] });
    const needsBoth = await make("gpu+docker", { requiredCapabilities: ["gpu", "docker"], priority: "URGENT", priorityRank: 3 });
    const forGpu = await make("for gpu", { targetMachineId: gpu.id });
    const needsDocker = await make("docker", { requiredCapabilities: ["docker"], priority: "LOW", priorityRank: 0 });

    const first = await claim(docker.credential, 20);
    expect(first.map((t) => t.title)).toEqual(["plain", "docker"]);
    expect(first.every((t) => t.status === "ASSIGNED" && t.attempt === 1 && t.machine?.id === docker.id && t.leaseToken && t.leaseExpiresAt)).toBe(true);

    const second = await claim(gpu.credential, 20);
    expect(second.map((t) => t.id)).toEqual([needsBoth.id, needsGpu.id, forGpu.id]);
    expect(await claim(gpu.credential, 20)).toEqual([]);
    expect([plain.id, needsDocker.id].every((id) => first.some((t) => t.id === id))).toBe(true);

    const rows = await prisma.task.findMany({ where: { workspaceId } });
    expect(rows.every((r) => r.status === "ASSIGNED" && r.leaseExpiresAt! > new Date())).toBe(true);
    const events = await prisma.taskEvent.findMany({ where: { workspaceId, type: "task.claimed" } });
    expect(events).toHaveLength(5);
    const audit = await prisma.auditEntry.findMany({ where: { workspaceId, action: "task.claim" } });
    expect(audit.map((a) => a.actorId).sort()).toEqual([docker.id, gpu.id].sort());
  });

  it("claims one task by default and refuses a limit outside 1-20, naming it", async () => {
    const { workspaceId } = await workspace();
    const machine = await createMachineDirect(server, workspaceId);
    await server.db.prisma.task.createMany({ data: [{ workspaceId, title: "a" }, { workspaceId, title: "b" }] });
    expect(await claim(machine.credential)).toHaveLength(1);
    for (const limit of [0, 21]) {
      const error = errorOf(await server.execute(ClaimTasksDocument, { input: { limit } }, { token: machine.credential }));
      expect(error.code).toBe("VALIDATION");
      expect(fieldsOf(error)).toEqual(["input.limit"]);
    }
  });

  it("gives nothing to a draining or unschedulable machine, FORBIDDEN to one awaiting approval, nothing of another workspace", async () => {
    const { workspaceId } = await workspace();
    await server.db.prisma.task.create({ data: { workspaceId, title: "waiting" } });
    const prisma = server.db.prisma;
    const draining = await createMachineDirect(server, workspaceId);
    await prisma.machine.update({ where: { id: draining.id }, data: { drainingSince: new Date() } });
    const unschedulable = await createMachineDirect(server, workspaceId);
    await prisma.machine.update({ where: { id: unschedulable.id }, data: { schedulable: false } });
    const pending = await createMachineDirect(server, workspaceId);
    await prisma.machine.update({ where: { id: pending.id }, data: { approval: "PENDING" } });
    const elsewhere = await createMachineDirect(server, (await workspace()).workspaceId);

    expect(await claim(draining.credential, 5)).toEqual([]);
    expect(await claim(unschedulable.credential, 5)).toEqual([]);
    expect(await claim(elsewhere.credential, 5)).toEqual([]);
    const refused = errorOf(await server.execute(ClaimTasksDocument, { input: { limit: 5 } }, { token: pending.credential }));
    expect(refused.code).toBe("FORBIDDEN");
    expect(refused.message).toMatch(/awaiting approval/);
    expect((await prisma.task.findFirstOrThrow({ where: { workspaceId } })).status).toBe("PENDING");

    await prisma.machine.update({ where: { id: draining.id }, data: { drainingSince: null } });
    expect(await claim(draining.credential, 5)).toHaveLength(1);
  });

  it("shows the lease token only to the machine holding the task", async () => {
    const { workspaceId, token } = await workspace();
    const machine = await createMachineDirect(server, workspaceId);
    const other = await createMachineDirect(server, workspaceId);
    const task = await server.db.prisma.task.create({ data: { workspaceId, title: "secret lease" } });
    const [claimed] = await claim(machine.credential);
    expect(claimed!.leaseToken).toMatch(/^[0-9a-f-]{36}$/);

    expect(ok(await server.execute(TaskDetailsDocument, { id: task.id }, { token })).task.leaseToken).toBeNull();
    const held = ok(await server.execute(AssignedTasksDocument, {}, { token: machine.credential })).assignedTasks.edges;
    expect(held.map((e) => [e.node.id, e.node.leaseToken])).toEqual([[task.id, claimed!.leaseToken]]);
    expect(ok(await server.execute(AssignedTasksDocument, {}, { token: other.credential })).assignedTasks.edges).toEqual([]);
    expect(ok(await server.execute(AssignedTasksDocument, { status: ["RUNNING"] }, { token: machine.credential })).assignedTasks.edges).toEqual([]);
  });

  it("answers NOT_FOUND for another machine's task and another workspace's task", async () => {
    const { workspaceId } = await workspace();
    const mine = await createMachineDirect(server, workspaceId);
    const neighbour = await createMachineDirect(server, workspaceId);
    const foreign = await createMachineDirect(server, (await workspace()).workspaceId);
    const task = await server.db.prisma.task.create({ data: { workspaceId, title: "mine" } });
    const [claimed] = await claim(mine.credential);
    const input = { taskId: task.id, leaseToken: claimed!.leaseToken! };
    for (const machine of [neighbour, foreign]) {
      const error = errorOf(await server.execute(StartTaskDocument, { input }, { token: machine.credential }));
      expect(error.code).toBe("NOT_FOUND");
      expect(error.message).toBe(`No task with id ${task.id}`);
    }
    expect(errorOf(await server.execute(StartTaskDocument, { input: { ...input, taskId: randomUUID() } }, { token: mine.credential })).code).toBe("NOT_FOUND");
    ok(await server.execute(StartTaskDocument, { input }, { token: mine.credential }));
  });

  it("a user cannot claim or report; a machine cannot read tasks through user queries", async () => {
    const { workspaceId, token } = await workspace();
    const machine = await createMachineDirect(server, workspaceId);
    const task = await server.db.prisma.task.create({ data: { workspaceId, title: "x" } });
    expect(errorOf(await server.execute(ClaimTasksDocument, { input: { limit: 1 } }, { token })).code).toBe("FORBIDDEN");
    expect(errorOf(await server.execute(TaskDetailsDocument, { id: task.id }, { token: machine.credential })).code).toBe("FORBIDDEN");
  });
});

describe(`many machines at once (${backend})`, () => {
  it("20 machines claiming 100 tasks in parallel: every task exactly once, all on attempt 1", async () => {
    const { workspaceId } = await workspace();
    const machines = await Promise.all(Array.from({ length: 20 }, () => createMachineDirect(server, workspaceId)));
    await server.db.prisma.task.createMany({ data: Array.from({ length: 100 }, (_, i) => ({ workspaceId, title: `job ${i}` })) });

    const byMachine = new Map<string, string[]>(machines.map((m) => [m.id, []]));
    const attempts: number[] = [];
    for (let round = 0; round < 50; round += 1) {
      const answers = await Promise.all(machines.map(async (m) => ({ m, tasks: await claim(m.credential, 3) })));
      let got = 0;
      for (const { m, tasks } of answers) {
        got += tasks.length;
        byMachine.get(m.id)!.push(...tasks.map((t) => t.id));
        attempts.push(...tasks.map((t) => t.attempt));
        expect(tasks.every((t) => t.machine?.id === m.id)).toBe(true);
      }
      if (got === 0) break;
    }
    const all = [...byMachine.values()].flat();
    expect(all).toHaveLength(100);
    expect(new Set(all).size).toBe(100);
    expect(attempts.every((a) => a === 1)).toBe(true);

    const rows = await server.db.prisma.task.findMany({ where: { workspaceId } });
    expect(rows.every((r) => r.status === "ASSIGNED" && r.attempt === 1 && byMachine.get(r.machineId!)!.includes(r.id))).toBe(true);
    expect(new Set(rows.map((r) => r.leaseToken)).size).toBe(100);
    expect(await server.db.prisma.taskEvent.count({ where: { workspaceId, type: "task.claimed" } })).toBe(100);
  }, 120_000);
});

describe(`leases (${backend}, 1-second lease)`, () => {
  let short: TestServer;
  beforeAll(async () => {
    short = await startTestServer({ SPINDLE_TASK_LEASE: "1" });
  });
  afterAll(() => short?.close());

  const waitPast = async (iso: string | null | undefined) => {
    const wait = new Date(iso!).getTime() - Date.now() + 300;
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  };

  it("a task whose lease ran out goes to another machine as attempt 2; the first machine's lease is lost", async () => {
    const { workspaceId, token } = await workspace(short);
    const a = await createMachineDirect(short, workspaceId);
    const b = await createMachineDirect(short, workspaceId);
    const task = await short.db.prisma.task.create({
      data: { workspaceId, title: "flaky host", stages: { create: [{ index: 0, name: "only" }] } },
    });
    const [first] = await claim(a.credential, 1, short);
    const leaseA = first!.leaseToken!;
    ok(await short.execute(StartTaskDocument, { input: { taskId: task.id, leaseToken: leaseA } }, { token: a.credential }));
    ok(await short.execute(ReportTaskStageDocument, { input: { taskId: task.id, leaseToken: leaseA, stageIndex: 0, status: "RUNNING" } }, { token: a.credential }));
    const running = await short.db.prisma.task.findUniqueOrThrow({ where: { id: task.id } });
    await waitPast(running.leaseExpiresAt!.toISOString());

    const expired = errorOf(await short.execute(CompleteTaskDocument, { input: { taskId: task.id, leaseToken: leaseA } }, { token: a.credential }));
    expect(expired).toMatchObject({ code: "CONFLICT", status: 409, extensions: { leaseLost: true } });
    expect(expired.message).toMatch(/Lease lost .* expired/);

    const [second] = await claim(b.credential, 1, short);
    expect(second).toMatchObject({ id: task.id, attempt: 2, status: "ASSIGNED", machine: { id: b.id } });
    expect(second!.leaseToken).not.toBe(leaseA);

    const lost = errorOf(await short.execute(CompleteTaskDocument, { input: { taskId: task.id, leaseToken: leaseA, output: { late: true } } }, { token: a.credential }));
    expect(lost).toMatchObject({ code: "CONFLICT", extensions: { leaseLost: true } });
    expect(lost.message).toMatch(/Lease lost for task .*attempt 2 on another machine/);
    expect(errorOf(await short.execute(AddTaskEventDocument, { input: { taskId: task.id, leaseToken: leaseA, type: "log", message: "late" } }, { token: a.credential })).extensions.leaseLost).toBe(
      true,
    );

    const leaseB = second!.leaseToken!;
    ok(await short.execute(StartTaskDocument, { input: { taskId: task.id, leaseToken: leaseB } }, { token: b.credential }));
    const done = ok(await short.execute(CompleteTaskDocument, { input: { taskId: task.id, leaseToken: leaseB, output: { ok: 1 } } }, { token: b.credential })).completeTask;
    expect(done).toMatchObject({ status: "SUCCEEDED", attempt: 2, output: { ok: 1 }, machine: { id: b.id } });
    expect(done.stages[0]!.status).toBe("SKIPPED");

    const events = ok(await short.execute(TaskEventsPageDocument, { id: task.id, first: 50 }, { token })).task.events.edges.map((e) => e.node);
    expect(events.map((e) => [e.type, e.attempt])).toEqual([
      ["task.claimed", 1],
      ["task.started", 1],
      ["stage.running", 1],
      ["task.lease_expired", 1],
      ["task.claimed", 2],
      ["task.started", 2],
      ["task.succeeded", 2],
    ]);
    expect(events[3]).toMatchObject({ actorType: "SYSTEM", data: { machineId: a.id, status: "RUNNING" } });
  });

  it("does not take back a SUSPENDED task whose lease ran out: a person is answering it", async () => {
    const { workspaceId } = await workspace(short);
    const a = await createMachineDirect(short, workspaceId);
    const b = await createMachineDirect(short, workspaceId);
    await short.db.prisma.task.create({
      data: { workspaceId, title: "waiting", status: "SUSPENDED", machineId: a.id, attempt: 1, leaseToken: randomUUID(), leaseExpiresAt: new Date(Date.now() - 60_000) },
    });
    expect(await claim(b.credential, 5, short)).toEqual([]);
  });
});
