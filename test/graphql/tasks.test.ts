// Tasks as people see them: create (every field, bad input, idempotency), edit, the lifecycle with
// a stage that suspends for confirmation, cancel and retry, every illegal transition, events,
// lists with their filters, stats, and the statement count of nested task lists.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TaskStatus, WorkspaceRole } from "../../src/generated/prisma/client.js";
import { addMember, createMachineDirect } from "../authz/world.js";
import {
  AddTaskEventDocument,
  CancelTaskDocument,
  ClaimTasksDocument,
  CompleteTaskDocument,
  ConfirmTaskStageDocument,
  CreateTaskDocument,
  FailTaskDocument,
  ReportTaskStageDocument,
  RetryTaskDocument,
  StartTaskDocument,
  TaskDetailsDocument,
  TaskEventsPageDocument,
  TaskStatsOfDocument,
  UpdateTaskDocument,
  WorkspaceTasksDeepDocument,
  WorkspaceTasksDocument,
  type CreateTaskInput,
  type WorkspaceTasksQueryVariables,
} from "../generated/graphql.js";
import { ownedWorkspace, signedInUser, unique, type SignedIn } from "../helpers/factories.js";
import { backend, errorOf, fieldsOf, ok, startTestServer, type GraphQLResponse, type TestServer } from "../helpers/server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

const prisma = () => server.db.prisma;

interface Team {
  workspaceId: string;
  owner: SignedIn;
  token: string;
  machine: { id: string; credential: string };
}

async function team(capabilities: string[] = []): Promise<Team> {
  const { owner, workspace: ws } = await ownedWorkspace(server);
  const machine = await createMachineDirect(server, ws.id, { capabilities });
  return { workspaceId: ws.id, owner, token: owner.accessToken, machine };
}

async function memberOf(workspaceId: string, role: WorkspaceRole) {
  const user = await signedInUser(server);
  await addMember(server, workspaceId, user.id, role);
  return user;
}

async function createTask(t: Team, input: Partial<CreateTaskInput> = {}) {
  return ok(await server.execute(CreateTaskDocument, { input: { workspaceId: t.workspaceId, title: unique("task"), ...input } }, { token: t.token })).createTask;
}

async function claim(t: Team, limit = 1) {
  return ok(await server.execute(ClaimTasksDocument, { input: { limit } }, { token: t.machine.credential })).claimTasks;
}

/** Claims `taskId` (the only pending task of the team) and starts it; answers the lease token. */
async function claimAndStart(t: Team, taskId: string) {
  const [claimed] = await claim(t);
  expect(claimed?.id).toBe(taskId);
  const leaseToken = claimed!.leaseToken!;
  ok(await server.execute(StartTaskDocument, { input: { taskId, leaseToken } }, { token: t.machine.credential }));
  return leaseToken;
}

const asMachine = (t: Team) => ({ token: t.machine.credential });

describe(`creating tasks (${backend})`, () => {
  it("stores every field, the stages in order, a created event and an audit entry", async () => {
    const t = await team();
    const project = await prisma().project.create({ data: { workspaceId: t.workspaceId, key: "WEB", name: "Web" } });
    const deadline = new Date(Date.now() + 86_400_000).toISOString();
    const task = await createTask(t, {
      projectId: project.id,
      title: "Deploy the site",
      description: "Build and ship",
      instructions: "npm run build && ship",
      priority: "HIGH",
      deadline,
      requiredCapabilities: ["docker", "node", "docker"],
      targetMachineId: t.machine.id,
      input: { branch: "main", retries: 2 },
      stages: [{ name: "build" }, { name: "approve", requiresConfirmation: true, prompt: { question: "Ship it?", choices: ["yes", "no"] } }, { name: "ship" }],
    });
    expect(task).toMatchObject({
      workspaceId: t.workspaceId,
      title: "Deploy the site",
      description: "Build and ship",
      instructions: "npm run build && ship",
      priority: "HIGH",
      deadline,
      requiredCapabilities: ["docker", "node"],
      targetMachineId: t.machine.id,
      input: { branch: "main", retries: 2 },
      output: null,
      error: null,
      status: "PENDING",
      attempt: 0,
      leaseToken: null,
      leaseExpiresAt: null,
      createdById: t.owner.id,
      durationMs: null,
      currentStageIndex: null,
      currentStage: null,
      pendingConfirmation: null,
      project: { id: project.id, key: "WEB" },
      machine: null,
      flow: null,
    });
    expect(task.stages.map((s) => [s.index, s.name, s.requiresConfirmation, s.status])).toEqual([
      [0, "build", false, "PENDING"],
      [1, "approve", true, "PENDING"],
      [2, "ship", false, "PENDING"],
    ]);
    expect(task.stages[1]!.prompt).toEqual({ question: "Ship it?", choices: ["yes", "no"] });
    const row = await prisma().task.findUniqueOrThrow({ where: { id: task.id } });
    expect(row.priorityRank).toBe(2);
    const events = ok(await server.execute(TaskEventsPageDocument, { id: task.id }, { token: t.token })).task.events;
    expect(events.edges.map((e) => [e.node.type, e.node.actorType, e.node.actorId])).toEqual([["task.created", "USER", t.owner.id]]);
    const audit = await prisma().auditEntry.findMany({ where: { targetId: task.id } });
    expect(audit.map((a) => [a.action, a.actorType, a.userId])).toEqual([["task.create", "USER", t.owner.id]]);
  });

  it("takes the title from the description's first line and the project from its key (api-web)", async () => {
    const t = await team();
    await prisma().project.create({ data: { workspaceId: t.workspaceId, key: "API", name: "Api" } });
    const task = ok(
      await server.execute(
        CreateTaskDocument,
        { input: { workspaceId: t.workspaceId, projectKey: "API", description: "Fix the login bug\nIt fails on Safari" } },
        { token: t.token },
      ),
    ).createTask;
    expect(task).toMatchObject({ title: "Fix the login bug", priority: "NORMAL", project: { key: "API" }, stages: [] });
  });

  const big = "x".repeat(300 * 1024);
  it.each([
    ["no title and no description", { title: null }, "input.title"],
    ["a title of 201 characters", { title: "t".repeat(201) }, "input.title"],
    ["a deadline in the past", { deadline: new Date(Date.now() - 60_000).toISOString() }, "input.deadline"],
    ["101 stages", { stages: Array.from({ length: 101 }, (_, i) => ({ name: `s${i}` })) }, "input.stages"],
    ["a stage without a name", { stages: [{ name: "ok" }, { name: "  " }] }, "input.stages.1.name"],
    ["a stage prompt over 16 KiB", { stages: [{ name: "ask", requiresConfirmation: true, prompt: { q: "x".repeat(17 * 1024) } }] }, "input.stages.0.prompt"],
    ["input over 256 KiB", { input: { blob: big } }, "input.input"],
    ["51 required capabilities", { requiredCapabilities: Array.from({ length: 51 }, (_, i) => `c${i}`) }, "input.requiredCapabilities"],
    ["a project id that is not an id", { projectId: "web" }, "input.projectId"],
    ["both projectId and projectKey", { projectId: randomUUID(), projectKey: "WEB" }, "input.projectKey"],
  ] as [string, Partial<CreateTaskInput>, string][])("refuses %s, naming the field, and creates nothing", async (_what, input, field) => {
    const t = await team();
    const error = errorOf(await server.execute(CreateTaskDocument, { input: { workspaceId: t.workspaceId, title: "x", ...input } }, { token: t.token }));
    expect(error).toMatchObject({ code: "VALIDATION", status: 400 });
    expect(fieldsOf(error)).toEqual([field]);
    expect(await prisma().task.count({ where: { workspaceId: t.workspaceId } })).toBe(0);
  });

  it("refuses a project or target machine of another workspace, naming the field", async () => {
    const t = await team();
    const other = await team();
    const foreignProject = await prisma().project.create({ data: { workspaceId: other.workspaceId, key: "WEB", name: "Web" } });
    const archived = await prisma().project.create({ data: { workspaceId: t.workspaceId, key: "OLD", name: "Old", archivedAt: new Date() } });
    for (const [input, field, message] of [
      [{ projectId: foreignProject.id }, "input.projectId", /no such project/],
      [{ projectKey: "NOPE" }, "input.projectKey", /no such project/],
      [{ projectId: archived.id }, "input.projectId", /archived/],
      [{ targetMachineId: other.machine.id }, "input.targetMachineId", /no such machine/],
    ] as const) {
      const error = errorOf(await server.execute(CreateTaskDocument, { input: { workspaceId: t.workspaceId, title: "x", ...input } }, { token: t.token }));
      expect(error.code).toBe("VALIDATION");
      expect(fieldsOf(error)).toEqual([field]);
      expect(error.message).toMatch(message);
    }
    expect(await prisma().task.count({ where: { workspaceId: t.workspaceId } })).toBe(0);
  });

  it("answers wrong types with a typed error, never a 500", async () => {
    const t = await team();
    const res = await server.post(
      { query: "mutation($input: CreateTaskInput!) { createTask(input: $input) { id } }", variables: { input: { workspaceId: t.workspaceId, title: 5, priority: "SOON", stages: "many" } } },
      { token: t.token },
    );
    expect(res.status).toBeLessThan(500);
    expect(res.errors?.length).toBeGreaterThan(0);
    expect(await prisma().task.count({ where: { workspaceId: t.workspaceId } })).toBe(0);
  });

  it("is idempotent with a key: a retry returns the first task; other input with the key is a CONFLICT", async () => {
    const t = await team();
    const key = unique("key");
    const input = { workspaceId: t.workspaceId, title: "once", stages: [{ name: "a" }], idempotencyKey: key };
    const first = ok(await server.execute(CreateTaskDocument, { input }, { token: t.token })).createTask;
    const again = ok(await server.execute(CreateTaskDocument, { input }, { token: t.token })).createTask;
    expect(again.id).toBe(first.id);
    expect(await prisma().task.count({ where: { workspaceId: t.workspaceId } })).toBe(1);
    expect(await prisma().taskStage.count({ where: { taskId: first.id } })).toBe(1);
    const changed = errorOf(await server.execute(CreateTaskDocument, { input: { ...input, title: "twice" } }, { token: t.token }));
    expect(changed.code).toBe("CONFLICT");
    expect(fieldsOf(changed)).toEqual(["input.idempotencyKey"]);
  });

  it("lets members create, not viewers; strangers learn nothing", async () => {
    const t = await team();
    const member = await memberOf(t.workspaceId, "MEMBER");
    const viewer = await memberOf(t.workspaceId, "VIEWER");
    const stranger = await signedInUser(server);
    const input = { workspaceId: t.workspaceId, title: "x" };
    ok(await server.execute(CreateTaskDocument, { input }, { token: member.accessToken }));
    expect(errorOf(await server.execute(CreateTaskDocument, { input }, { token: viewer.accessToken })).code).toBe("FORBIDDEN");
    expect(errorOf(await server.execute(CreateTaskDocument, { input }, { token: stranger.accessToken })).code).toBe("NOT_FOUND");
    const task = await createTask(t);
    const hidden = errorOf(await server.execute(TaskDetailsDocument, { id: task.id }, { token: stranger.accessToken }));
    const missing = errorOf(await server.execute(TaskDetailsDocument, { id: randomUUID() }, { token: stranger.accessToken }));
    expect(hidden.code).toBe("NOT_FOUND");
    expect(hidden.message.replace(task.id, "ID")).toBe(missing.message.replace(/[0-9a-f-]{36}/, "ID"));
    expect(errorOf(await server.execute(TaskDetailsDocument, { id: "not-an-id" }, { token: t.token })).code).toBe("NOT_FOUND");
  });
});

describe(`stages from the project's pipeline (Spunto) (${backend})`, () => {
  const project = (t: Team, key: string, pipeline: unknown) =>
    prisma().project.create({ data: { workspaceId: t.workspaceId, key, name: key, pipeline: pipeline as object } });
  const stagesOf = (task: { stages: { index: number; name: string; requiresConfirmation: boolean; prompt?: unknown }[] }) =>
    task.stages.map((s) => [s.index, s.name, s.requiresConfirmation, s.prompt ?? null]);

  it("a task created without stages takes its project's pipeline.stages: definitions or plain names, in order", async () => {
    const t = await team();
    const web = await project(t, "WEB", {
      stages: [{ name: "plan" }, { name: "review", requiresConfirmation: true, prompt: { question: "Ship it?" } }, "ship"],
      other: "settings stay the project's",
    });
    const task = await createTask(t, { projectId: web.id });
    expect(stagesOf(task)).toEqual([
      [0, "plan", false, null],
      [1, "review", true, { question: "Ship it?" }],
      [2, "ship", false, null],
    ]);
    expect(task.stages.every((s) => s.status === "PENDING")).toBe(true);

    // Stages given with the task win; an empty list means none.
    expect(stagesOf(await createTask(t, { projectId: web.id, stages: [{ name: "hotfix" }] }))).toEqual([[0, "hotfix", false, null]]);
    expect((await createTask(t, { projectId: web.id, stages: [] })).stages).toEqual([]);
    // A pipeline without stages (or with null) gives a task without.
    for (const [key, pipeline] of [["BARE", {}], ["NULLS", { stages: null }]] as const) {
      const p = await project(t, key, pipeline);
      expect((await createTask(t, { projectId: p.id })).stages).toEqual([]);
    }
  });

  it("finds the project by its key in any case", async () => {
    const t = await team();
    await project(t, "API", { stages: ["build"] });
    for (const projectKey of ["api", "Api", " API "]) {
      const task = ok(await server.execute(CreateTaskDocument, { input: { workspaceId: t.workspaceId, projectKey, description: "Fix it" } }, { token: t.token })).createTask;
      expect(task).toMatchObject({ project: { key: "API" }, stages: [expect.objectContaining({ name: "build" })] });
    }
  });

  it.each([
    ["not a list", { stages: "build, ship" }, /pipeline\.stages/],
    ["a stage without a name", { stages: [{ name: "build" }, { requiresConfirmation: true }] }, /pipeline\.stages\.1\.name/],
    ["a stage that is a number", { stages: ["build", 7] }, /pipeline\.stages\.1/],
    ["101 stages", { stages: Array.from({ length: 101 }, (_, i) => `s${i}`) }, /pipeline\.stages/],
  ])("refuses a project whose pipeline.stages is %s, naming the project field; stages given with the task still work", async (_what, pipeline, message) => {
    const t = await team();
    const bad = await project(t, "BAD", pipeline);
    for (const [input, field] of [
      [{ projectId: bad.id }, "input.projectId"],
      [{ projectKey: "bad" }, "input.projectKey"],
    ] as const) {
      const error = errorOf(await server.execute(CreateTaskDocument, { input: { workspaceId: t.workspaceId, title: "x", ...input } }, { token: t.token }));
      expect(error).toMatchObject({ code: "VALIDATION", status: 400 });
      expect(fieldsOf(error)).toEqual([field]);
      expect(error.extensions.fields[0].message).toMatch(message);
    }
    expect(await prisma().task.count({ where: { workspaceId: t.workspaceId } })).toBe(0);
    expect(stagesOf(await createTask(t, { projectId: bad.id, stages: [{ name: "manual" }] }))).toEqual([[0, "manual", false, null]]);
  });
});

describe(`editing tasks (${backend})`, () => {
  it("changes descriptive fields at any time, keeps priorityRank in step, and clears with null", async () => {
    const t = await team();
    const task = await createTask(t, { description: "old", priority: "LOW" });
    const updated = ok(
      await server.execute(UpdateTaskDocument, { input: { id: task.id, title: "new title", description: null, priority: "URGENT" } }, { token: t.token }),
    ).updateTask;
    expect(updated).toMatchObject({ title: "new title", description: null, priority: "URGENT" });
    expect((await prisma().task.findUniqueOrThrow({ where: { id: task.id } })).priorityRank).toBe(3);

    await claim(t);
    const later = ok(await server.execute(UpdateTaskDocument, { input: { id: task.id, priority: "NORMAL" } }, { token: t.token })).updateTask;
    expect(later.priority).toBe("NORMAL");
    expect((await prisma().task.findUniqueOrThrow({ where: { id: task.id } })).priorityRank).toBe(1);
  });

  it("reschedules (instructions, capabilities, target, input) only while PENDING", async () => {
    const t = await team();
    const task = await createTask(t);
    const pending = ok(
      await server.execute(UpdateTaskDocument, { input: { id: task.id, instructions: "do it", requiredCapabilities: [], input: { a: 1 } } }, { token: t.token }),
    ).updateTask;
    expect(pending).toMatchObject({ instructions: "do it", input: { a: 1 } });
    await claim(t);
    const error = errorOf(await server.execute(UpdateTaskDocument, { input: { id: task.id, requiredCapabilities: ["gpu"] } }, { token: t.token }));
    expect(error.code).toBe("CONFLICT");
    expect(error.message).toMatch(/requiredCapabilities.*ASSIGNED/);
    expect((await prisma().task.findUniqueOrThrow({ where: { id: task.id } })).requiredCapabilities).toEqual([]);
  });

  it("refuses an empty change and bad fields, naming them", async () => {
    const t = await team();
    const task = await createTask(t);
    expect(fieldsOf(errorOf(await server.execute(UpdateTaskDocument, { input: { id: task.id } }, { token: t.token })))).toEqual(["input"]);
    expect(fieldsOf(errorOf(await server.execute(UpdateTaskDocument, { input: { id: task.id, title: "" } }, { token: t.token })))).toEqual(["input.title"]);
    const other = await team();
    expect(fieldsOf(errorOf(await server.execute(UpdateTaskDocument, { input: { id: task.id, targetMachineId: other.machine.id } }, { token: t.token })))).toEqual([
      "input.targetMachineId",
    ]);
  });
});

describe(`the lifecycle (${backend})`, () => {
  it("runs stage by stage, suspends for confirmation, resumes on the right stage, and succeeds", async () => {
    const t = await team();
    const task = await createTask(t, {
      stages: [{ name: "plan" }, { name: "approve", requiresConfirmation: true, prompt: { question: "Go?" } }, { name: "apply" }],
    });
    const leaseToken = await claimAndStart(t, task.id);
    const lease = { taskId: task.id, leaseToken };
    const report = (stageIndex: number, status: "RUNNING" | "SUCCEEDED" | "FAILED" | "SUSPENDED", extra: Record<string, unknown> = {}) =>
      server.execute(ReportTaskStageDocument, { input: { ...lease, stageIndex, status, ...extra } }, asMachine(t));

    ok(await report(0, "RUNNING"));
    const planned = ok(await report(0, "SUCCEEDED", { output: { steps: 3 } })).reportTaskStage;
    expect(planned.stages[0]).toMatchObject({ status: "SUCCEEDED", output: { steps: 3 } });

    const notConfirmable = errorOf(await report(2, "SUSPENDED"));
    expect(notConfirmable.code).toBe("VALIDATION");
    expect(fieldsOf(notConfirmable)).toEqual(["input.status"]);
    expect(fieldsOf(errorOf(await report(7, "RUNNING")))).toEqual(["input.stageIndex"]);
    const again = errorOf(await report(0, "SUCCEEDED"));
    expect(again).toMatchObject({ code: "CONFLICT" });
    expect(again.message).toMatch(/stage 0 .* SUCCEEDED/);

    const suspended = ok(await report(1, "SUSPENDED", { prompt: { question: "Apply 3 changes?", choices: ["yes", "no"] } })).reportTaskStage;
    expect(suspended).toMatchObject({
      status: "SUSPENDED",
      currentStageIndex: 1,
      currentStage: { index: 1, name: "approve", status: "SUSPENDED" },
      pendingConfirmation: { stageIndex: 1, stageName: "approve", prompt: { question: "Apply 3 changes?", choices: ["yes", "no"] } },
    });
    const seen = ok(await server.execute(TaskDetailsDocument, { id: task.id }, { token: t.token })).task;
    expect(seen.pendingConfirmation?.stageIndex).toBe(1);
    expect(seen.leaseToken).toBeNull();

    const busy = errorOf(await report(2, "RUNNING"));
    expect(busy.message).toMatch(/Cannot report a stage of task .*: it is SUSPENDED/);
    const wrongStage = errorOf(await server.execute(ConfirmTaskStageDocument, { input: { taskId: task.id, stageIndex: 0, result: "yes" } }, { token: t.token }));
    expect(wrongStage).toMatchObject({ code: "CONFLICT", extensions: { currentStage: 1 } });
    expect(fieldsOf(wrongStage)).toEqual(["input.stageIndex"]);

    const viewer = await memberOf(t.workspaceId, "VIEWER");
    expect(errorOf(await server.execute(ConfirmTaskStageDocument, { input: { taskId: task.id, stageIndex: 1, result: "yes" } }, { token: viewer.accessToken })).code).toBe(
      "FORBIDDEN",
    );
    const confirmed = ok(await server.execute(ConfirmTaskStageDocument, { input: { taskId: task.id, stageIndex: 1, result: "yes" } }, { token: t.token }))
      .confirmTaskStage;
    expect(confirmed).toMatchObject({ status: "RUNNING", currentStageIndex: 2, pendingConfirmation: null });
    expect(confirmed.stages[1]).toMatchObject({ status: "SUCCEEDED", result: "yes" });
    const twice = errorOf(await server.execute(ConfirmTaskStageDocument, { input: { taskId: task.id, stageIndex: 1, result: "yes" } }, { token: t.token }));
    expect(twice.message).toMatch(/Cannot confirm a stage of task .*: it is RUNNING, not SUSPENDED/);

    ok(await report(2, "RUNNING"));
    ok(await report(2, "SUCCEEDED"));
    const done = ok(await server.execute(CompleteTaskDocument, { input: { ...lease, output: { applied: 3 } } }, asMachine(t))).completeTask;
    expect(done).toMatchObject({ status: "SUCCEEDED", output: { applied: 3 }, attempt: 1, machine: { id: t.machine.id } });
    expect(done.durationMs).toBeGreaterThanOrEqual(0);
    expect(done.finishedAt).not.toBeNull();
    expect(done.stages.map((s) => s.status)).toEqual(["SUCCEEDED", "SUCCEEDED", "SUCCEEDED"]);

    const events = ok(await server.execute(TaskEventsPageDocument, { id: task.id, first: 50 }, { token: t.token })).task.events;
    expect(events.edges.map((e) => e.node.type)).toEqual([
      "task.created",
      "task.claimed",
      "task.started",
      "stage.running",
      "stage.succeeded",
      "stage.suspended",
      "stage.confirmed",
      "stage.running",
      "stage.succeeded",
      "task.succeeded",
    ]);
    expect(events.edges[1]!.node).toMatchObject({ actorType: "MACHINE", actorId: t.machine.id, attempt: 1 });
    expect(events.edges[6]!.node).toMatchObject({ actorType: "USER", actorId: t.owner.id, data: { stageIndex: 1, result: "yes" } });
    const actions = (await prisma().auditEntry.findMany({ where: { targetId: task.id }, orderBy: { at: "asc" } })).map((a) => a.action);
    expect(actions).toEqual(expect.arrayContaining(["task.create", "task.start", "task.reportStage", "task.confirmStage", "task.complete"]));
  });

  it("cancels with a reason, tells the machine, and retries into a fresh attempt", async () => {
    const t = await team();
    const task = await createTask(t, { stages: [{ name: "one" }, { name: "two" }] });
    const leaseToken = await claimAndStart(t, task.id);
    ok(await server.execute(ReportTaskStageDocument, { input: { taskId: task.id, leaseToken, stageIndex: 0, status: "RUNNING" } }, asMachine(t)));

    const cancelled = ok(await server.execute(CancelTaskDocument, { id: task.id, reason: "wrong branch" }, { token: t.token })).cancelTask;
    expect(cancelled).toMatchObject({ status: "CANCELLED", error: "Cancelled: wrong branch" });
    expect(cancelled.stages.map((s) => s.status)).toEqual(["FAILED", "SKIPPED"]);
    const told = errorOf(await server.execute(CompleteTaskDocument, { input: { taskId: task.id, leaseToken } }, asMachine(t)));
    expect(told).toMatchObject({ code: "CONFLICT", extensions: { status: "CANCELLED" } });
    expect(told.message).toMatch(/Cannot complete task .*: it is CANCELLED/);
    expect(errorOf(await server.execute(CancelTaskDocument, { id: task.id }, { token: t.token })).message).toMatch(/Cannot cancel task .*: it is CANCELLED/);

    const retried = ok(await server.execute(RetryTaskDocument, { id: task.id }, { token: t.token })).retryTask;
    expect(retried).toMatchObject({ status: "PENDING", machine: null, leaseExpiresAt: null, error: null, output: null, attempt: 1, currentStageIndex: null, finishedAt: null });
    expect(retried.stages.map((s) => [s.status, s.startedAt, s.error])).toEqual([
      ["PENDING", null, null],
      ["PENDING", null, null],
    ]);
    const [second] = await claim(t);
    expect(second).toMatchObject({ id: task.id, attempt: 2, status: "ASSIGNED" });
    const stale = errorOf(await server.execute(StartTaskDocument, { input: { taskId: task.id, leaseToken } }, asMachine(t)));
    expect(stale).toMatchObject({ code: "CONFLICT", extensions: { leaseLost: true } });
    ok(await server.execute(StartTaskDocument, { input: { taskId: task.id, leaseToken: second!.leaseToken! } }, asMachine(t)));
    const failed = ok(await server.execute(FailTaskDocument, { input: { taskId: task.id, leaseToken: second!.leaseToken!, error: "disk full" } }, asMachine(t))).failTask;
    expect(failed).toMatchObject({ status: "FAILED", error: "disk full" });
    expect(failed.stages.map((s) => s.status)).toEqual(["SKIPPED", "SKIPPED"]);
    const types = ok(await server.execute(TaskEventsPageDocument, { id: task.id, first: 50 }, { token: t.token })).task.events.edges.map((e) => e.node.type);
    expect(types).toEqual(["task.created", "task.claimed", "task.started", "stage.running", "task.cancelled", "task.retried", "task.claimed", "task.started", "task.failed"]);
  });

  // Every (status, action) pair: the legal ones succeed, the rest are CONFLICT naming the action and status.
  const statuses: TaskStatus[] = ["PENDING", "ASSIGNED", "RUNNING", "SUSPENDED", "SUCCEEDED", "FAILED", "CANCELLED"];
  const actions: { name: string; verb: RegExp; from: TaskStatus[]; run: (t: Team, taskId: string, leaseToken: string) => Promise<GraphQLResponse<unknown>> }[] = [
    { name: "cancelTask", verb: /Cannot cancel task/, from: ["PENDING", "ASSIGNED", "RUNNING", "SUSPENDED"], run: (t, id) => server.execute(CancelTaskDocument, { id }, { token: t.token }) },
    { name: "retryTask", verb: /Cannot retry task/, from: ["FAILED", "CANCELLED"], run: (t, id) => server.execute(RetryTaskDocument, { id }, { token: t.token }) },
    {
      name: "confirmTaskStage",
      verb: /Cannot confirm a stage of task/,
      from: ["SUSPENDED"],
      run: (t, taskId) => server.execute(ConfirmTaskStageDocument, { input: { taskId, stageIndex: 0, result: "ok" } }, { token: t.token }),
    },
    { name: "startTask", verb: /Cannot start task/, from: ["ASSIGNED"], run: (t, taskId, leaseToken) => server.execute(StartTaskDocument, { input: { taskId, leaseToken } }, asMachine(t)) },
    {
      name: "reportTaskStage",
      verb: /Cannot report a stage of task/,
      from: ["RUNNING"],
      run: (t, taskId, leaseToken) => server.execute(ReportTaskStageDocument, { input: { taskId, leaseToken, stageIndex: 0, status: "RUNNING" } }, asMachine(t)),
    },
    { name: "completeTask", verb: /Cannot complete task/, from: ["RUNNING"], run: (t, taskId, leaseToken) => server.execute(CompleteTaskDocument, { input: { taskId, leaseToken } }, asMachine(t)) },
    {
      name: "failTask",
      verb: /Cannot fail task/,
      from: ["ASSIGNED", "RUNNING", "SUSPENDED"],
      run: (t, taskId, leaseToken) => server.execute(FailTaskDocument, { input: { taskId, leaseToken, error: "boom" } }, asMachine(t)),
    },
    {
      name: "addTaskEvent",
      verb: /Cannot add an event to task/,
      from: ["ASSIGNED", "RUNNING", "SUSPENDED"],
      run: (t, taskId, leaseToken) => server.execute(AddTaskEventDocument, { input: { taskId, leaseToken, type: "log", message: "hi" } }, asMachine(t)),
    },
  ];
  let shared: Team;
  beforeAll(async () => {
    shared = await team();
  });
  const cases = actions.flatMap((a) => statuses.map((s) => [a.name, s, a.from.includes(s) ? "ok" : "CONFLICT"] as const));
  it.each(cases)("%s on a %s task: %s", async (name, status, expected) => {
    const action = actions.find((a) => a.name === name)!;
    const leaseToken = randomUUID();
    // The machine holds a live lease whatever the status, so that only the status decides.
    const task = await prisma().task.create({
      data: {
        workspaceId: shared.workspaceId,
        title: unique("table"),
        status,
        machineId: shared.machine.id,
        attempt: 1,
        leaseToken,
        leaseExpiresAt: new Date(Date.now() + 600_000),
        currentStage: 0,
        stages: { create: [{ index: 0, name: "gate", requiresConfirmation: true, status: status === "SUSPENDED" ? "SUSPENDED" : "PENDING" }] },
      },
    });
    const res = await action.run(shared, task.id, leaseToken);
    if (expected === "ok") {
      ok(res);
      return;
    }
    const error = errorOf(res);
    expect(error).toMatchObject({ code: "CONFLICT", status: 409, extensions: { status } });
    expect(error.message).toMatch(action.verb);
    expect(error.message).toContain(status);
    expect((await prisma().task.findUniqueOrThrow({ where: { id: task.id } })).status).toBe(status);
  });
});

describe(`events (${backend})`, () => {
  it("pages by cursor or offset, oldest or newest first, filtered by type and text", async () => {
    const t = await team();
    const task = await createTask(t);
    const leaseToken = await claimAndStart(t, task.id);
    for (let i = 0; i < 6; i += 1) {
      ok(await server.execute(AddTaskEventDocument, { input: { taskId: task.id, leaseToken, type: i % 2 ? "warning" : "log", message: `step ${i} of build`, data: { i } } }, asMachine(t)));
    }
    const page = async (vars: Record<string, unknown>): Promise<any> => ok(await server.execute(TaskEventsPageDocument, { id: task.id, ...vars }, { token: t.token }));
    const all = (await page({ first: 100 })) as any;
    expect(all.task.events.totalCount).toBe(9);
    const logs = (await page({ type: ["log"], first: 10 })) as any;
    expect(logs.task.events.totalCount).toBe(3);
    expect(logs.task.events.edges.map((e: any) => e.node.data.i)).toEqual([0, 2, 4]);
    const newest = (await page({ type: ["log", "warning"], order: "NEWEST_FIRST", first: 2 })) as any;
    expect(newest.task.events.edges.map((e: any) => e.node.message)).toEqual(["step 5 of build", "step 4 of build"]);
    expect(newest.task.events.pageInfo.hasNextPage).toBe(true);
    const next = (await page({ type: ["log", "warning"], order: "NEWEST_FIRST", first: 2, after: newest.task.events.pageInfo.endCursor })) as any;
    expect(next.task.events.edges.map((e: any) => e.node.message)).toEqual(["step 3 of build", "step 2 of build"]);
    const offset = (await page({ type: ["log", "warning"], first: 2, offset: 4 })) as any;
    expect(offset.task.events.edges.map((e: any) => e.node.message)).toEqual(["step 4 of build", "step 5 of build"]);
    const search = (await page({ search: "STEP 3", first: 10 })) as any;
    expect(search.task.events.edges.map((e: any) => e.node.type)).toEqual(["warning"]);
    const badOffset = errorOf(await server.execute(TaskEventsPageDocument, { id: task.id, offset: -1 }, { token: t.token }));
    expect(badOffset.code).toBe("VALIDATION");
  });

  it("keeps task.* and stage.* for the server and names bad machine input", async () => {
    const t = await team();
    const task = await createTask(t);
    const leaseToken = await claimAndStart(t, task.id);
    const reserved = errorOf(await server.execute(AddTaskEventDocument, { input: { taskId: task.id, leaseToken, type: "task.succeeded", message: "fake" } }, asMachine(t)));
    expect(fieldsOf(reserved)).toEqual(["input.type"]);
    const malformed = errorOf(await server.execute(AddTaskEventDocument, { input: { taskId: task.id, leaseToken: "abc", type: "log", message: "x" } }, asMachine(t)));
    expect(fieldsOf(malformed)).toEqual(["input.leaseToken"]);
    const tooBig = errorOf(await server.execute(CompleteTaskDocument, { input: { taskId: task.id, leaseToken, output: { x: "y".repeat(300 * 1024) } } }, asMachine(t)));
    expect(fieldsOf(tooBig)).toEqual(["input.output"]);
    expect(errorOf(await server.execute(FailTaskDocument, { input: { taskId: task.id, leaseToken, error: " " } }, asMachine(t))).extensions.fields[0].field).toBe("input.error");
  });
});

describe(`lists and stats (${backend})`, () => {
  it("filters by status, priority, project, machine, target, flow, search, and pages by offset", async () => {
    const t = await team();
    const project = await prisma().project.create({ data: { workspaceId: t.workspaceId, key: "P", name: "P" } });
    const flow = await prisma().flow.create({ data: { workspaceId: t.workspaceId, name: "nightly", status: "ACTIVE" } });
    const a = await createTask(t, { title: "Alpha report", priority: "HIGH", projectId: project.id });
    const b = await createTask(t, { title: "Beta", description: "the ALPHA follow-up", priority: "LOW" });
    const c = await createTask(t, { title: "Gamma", targetMachineId: t.machine.id });
    const run = await prisma().task.create({ data: { workspaceId: t.workspaceId, title: "nightly", flowId: flow.id, flowVersion: 1 } });
    await claim(t); // takes a (HIGH)
    const other = await team();
    await createTask(other, { title: "Alpha elsewhere" });

    const ids = async (vars: Partial<WorkspaceTasksQueryVariables>) =>
      ok(await server.execute(WorkspaceTasksDocument, { workspaceId: t.workspaceId, first: 50, ...vars }, { token: t.token })).workspace.tasks.edges.map((e) => e.node.id);
    expect(await ids({})).toEqual([run.id, c.id, b.id, a.id]);
    expect(await ids({ status: ["ASSIGNED"] })).toEqual([a.id]);
    expect(await ids({ status: ["PENDING"], priority: ["LOW", "NORMAL"] })).toEqual([run.id, c.id, b.id]);
    expect(await ids({ projectId: project.id })).toEqual([a.id]);
    expect(await ids({ machineId: t.machine.id })).toEqual([a.id]);
    expect(await ids({ targetMachineId: t.machine.id })).toEqual([c.id]);
    expect(await ids({ flowId: flow.id })).toEqual([run.id]);
    expect(await ids({ flowRuns: true })).toEqual([run.id]);
    expect(await ids({ flowRuns: false })).toEqual([c.id, b.id, a.id]);
    expect(await ids({ search: "alpha" })).toEqual([b.id, a.id]);
    expect(await ids({ first: 2, offset: 1 })).toEqual([c.id, b.id]);
    const counted = ok(await server.execute(WorkspaceTasksDocument, { workspaceId: t.workspaceId, first: 1, status: ["PENDING"] }, { token: t.token })).workspace.tasks;
    expect(counted.totalCount).toBe(3);
    expect(counted.pageInfo.hasNextPage).toBe(true);

    const bad = errorOf(await server.execute(WorkspaceTasksDocument, { workspaceId: t.workspaceId, projectId: "P" }, { token: t.token }));
    expect(bad.code).toBe("VALIDATION");
    expect(fieldsOf(bad)).toEqual(["projectId"]);
    expect(errorOf(await server.execute(WorkspaceTasksDocument, { workspaceId: t.workspaceId, first: 101 }, { token: t.token })).code).toBe("VALIDATION");
  });

  it("counts by status and by priority, zeros included, optionally per project", async () => {
    const t = await team();
    const project = await prisma().project.create({ data: { workspaceId: t.workspaceId, key: "S", name: "S" } });
    const rows: { status: TaskStatus; priority: "LOW" | "NORMAL" | "HIGH" | "URGENT"; projectId?: string }[] = [
      { status: "PENDING", priority: "LOW" },
      { status: "PENDING", priority: "URGENT", projectId: project.id },
      { status: "RUNNING", priority: "URGENT", projectId: project.id },
      { status: "SUCCEEDED", priority: "NORMAL" },
      { status: "FAILED", priority: "NORMAL" },
      { status: "FAILED", priority: "HIGH", projectId: project.id },
    ];
    await prisma().task.createMany({ data: rows.map((r) => ({ workspaceId: t.workspaceId, title: "s", ...r })) });
    await prisma().task.create({ data: { workspaceId: (await team()).workspaceId, title: "elsewhere" } });
    const stats = ok(await server.execute(TaskStatsOfDocument, { workspaceId: t.workspaceId }, { token: t.token })).taskStats;
    expect(stats.total).toBe(6);
    expect(Object.fromEntries(stats.byStatus.map((s) => [s.status, s.count]))).toEqual({
      PENDING: 2,
      ASSIGNED: 0,
      RUNNING: 1,
      SUSPENDED: 0,
      SUCCEEDED: 1,
      FAILED: 2,
      CANCELLED: 0,
    });
    expect(Object.fromEntries(stats.byPriority.map((s) => [s.priority, s.count]))).toEqual({ LOW: 1, NORMAL: 2, HIGH: 1, URGENT: 2 });
    const perProject = ok(await server.execute(TaskStatsOfDocument, { workspaceId: t.workspaceId, projectId: project.id }, { token: t.token })).taskStats;
    expect(perProject.total).toBe(3);

    const before = server.db.statements.count;
    ok(await server.execute(TaskStatsOfDocument, { workspaceId: t.workspaceId }, { token: t.token }));
    // Authentication and the membership check, then one grouped count per dimension.
    expect(server.db.statements.count - before).toBeLessThanOrEqual(6);

    const stranger = await signedInUser(server);
    expect(errorOf(await server.execute(TaskStatsOfDocument, { workspaceId: t.workspaceId }, { token: stranger.accessToken })).code).toBe("NOT_FOUND");
    expect(fieldsOf(errorOf(await server.execute(TaskStatsOfDocument, { workspaceId: t.workspaceId, projectId: "x" }, { token: t.token })))).toEqual(["projectId"]);
  });

  it("runs as many statements for 100 tasks with stages, events, machine, project and flow as for 10", async () => {
    const t = await team();
    const project = await prisma().project.create({ data: { workspaceId: t.workspaceId, key: "N", name: "N" } });
    const flow = await prisma().flow.create({ data: { workspaceId: t.workspaceId, name: "f" } });
    const ids = Array.from({ length: 110 }, () => randomUUID());
    await prisma().task.createMany({
      data: ids.map((id, i) => ({
        id,
        workspaceId: t.workspaceId,
        title: `t${i}`,
        status: i % 3 === 0 ? ("SUSPENDED" as const) : ("PENDING" as const),
        currentStage: 0,
        machineId: i % 2 ? t.machine.id : null,
        projectId: i % 4 ? project.id : null,
        flowId: i % 5 ? null : flow.id,
      })),
    });
    await prisma().taskStage.createMany({
      data: ids.flatMap((taskId) => [0, 1, 2].map((index) => ({ taskId, index, name: `s${index}`, requiresConfirmation: index === 0, status: "PENDING" as const }))),
    });
    await prisma().taskEvent.createMany({
      data: ids.flatMap((taskId) => Array.from({ length: 7 }, (_, i) => ({ taskId, workspaceId: t.workspaceId, type: "log", message: `m${i}`, actorType: "SYSTEM" as const }))),
    });
    const count = async (first: number) => {
      const before = server.db.statements.count;
      const data = ok(await server.execute(WorkspaceTasksDeepDocument, { workspaceId: t.workspaceId, first }, { token: t.token }));
      const edges = data.workspace.tasks.edges;
      expect(edges).toHaveLength(first);
      expect(edges.every((e) => e.node.stages.length === 3 && e.node.events.edges.length === 5 && e.node.events.totalCount === 7)).toBe(true);
      if (first === 100) {
        expect(edges.some((e) => e.node.machine?.name) && edges.some((e) => e.node.flow?.name === "f") && edges.some((e) => e.node.pendingConfirmation)).toBe(true);
      }
      return server.db.statements.count - before;
    };
    await count(10); // the first request also checks the token in the database; later ones find it cached
    const ten = await count(10);
    const hundred = await count(100);
    expect(hundred).toBe(ten);
  });
});
