import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { WorkerStatus } from "../../src/generated/prisma/client.js";
import { WAITING_FOR_MACHINE } from "../../src/modules/worker/placement.js";
import { WORKER_ACTIONS, type WorkerAction } from "../../src/modules/worker/worker.service.js";
import { WORKER_STATUSES } from "../../src/modules/worker/worker-statuses.js";
import {
  ApproveMachineDocument,
  AssignedWorkersDocument,
  DeployWorkerDocument,
  DestroyWorkerDocument,
  MachineHeartbeatDocument,
  ReportWorkerStatusDocument,
  ReportWorkerTicksDocument,
  RedeployWorkerDocument,
  RestartWorkerDocument,
  StartWorkerDocument,
  StopWorkerDocument,
  UpdateWorkerSettingsDocument,
  WorkerByBlockDocument,
  WorkerDocument,
  WorkersNestedDocument,
  WorkspaceWorkersDocument,
  type DeployWorkerInput,
} from "../generated/graphql.js";
import { addMember, createMachineDirect } from "../authz/world.js";
import { ownedWorkspace, signedInUser, unique, type SignedIn } from "../helpers/factories.js";
import { backend, errorOf, fieldsOf, ok, startTestServer, type GraphQLResponse, type TestServer } from "../helpers/server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

const prisma = () => server.db.prisma;

interface Team {
  owner: SignedIn;
  workspaceId: string;
  machine: { id: string; credential: string };
  blockId: string;
}

/** A workspace with its owner, one online machine and one graph block. */
async function team(options: { machine?: boolean } = {}): Promise<Team> {
  const { owner, workspace } = await ownedWorkspace(server);
  const machine = options.machine === false ? { id: "", credential: "" } : await createMachineDirect(server, workspace.id);
  const block = await prisma().graphBlock.create({
    data: { workspaceId: workspace.id, id: unique("node_"), type: "code.worker", label: "My Worker" },
  });
  return { owner, workspaceId: workspace.id, machine, blockId: block.id };
}

const as = (user: { accessToken: string }) => ({ token: user.accessToken });
const asMachine = (machine: { credential: string }) => ({ token: machine.credential });

async function deployCode(t: Team, extra: Partial<DeployWorkerInput> = {}) {
  const input: DeployWorkerInput = {
    workspaceId: t.workspaceId,
    kind: "CODE",
    blockId: t.blockId,
    code: "def setup(ctx): pass\ndef tick(ctx): pass",
    ...extra,
  };
  return ok(await server.execute(DeployWorkerDocument, { input }, as(t.owner))).deployWorker;
}

const transitionsOf = async (id: string) =>
  prisma().workerTransition.findMany({ where: { workerId: id }, orderBy: [{ at: "asc" }] });


describe(`deploying workers (${backend})`, () => {
  it("deploys a CODE worker to a block: DEPLOYING on the workspace's machine, revision 1, recorded with who", async () => {
    const t = await team();
    const worker = await deployCode(t, { tickIntervalSeconds: 10, maxErrors: 5, autoHeal: true, connectedBlocks: { trading_node_id: "bybit_1" } });
    expect(worker).toMatchObject({
      kind: "CODE",
      name: "My Worker",
      blockId: t.blockId,
      status: "DEPLOYING",
      revision: 1,
      machineId: t.machine.id,
      tickIntervalSeconds: 10,
      maxErrors: 5,
      autoHeal: true,
      connectedBlocks: { trading_node_id: "bybit_1" },
      tickCount: 0,
      errorCount: 0,
      createdById: t.owner.id,
    });

    const read = ok(await server.execute(WorkerDocument, { id: worker.id }, as(t.owner))).worker;
    expect(read.block).toEqual({ id: t.blockId, label: "My Worker" });
    expect(read.machine?.id).toBe(t.machine.id);
    expect(read.transitions.edges.map((e) => e.node)).toEqual([
      expect.objectContaining({ from: null, to: "DEPLOYING", action: "deploy", actorType: "USER", actorId: t.owner.id }),
    ]);
    const audit = await prisma().auditEntry.findMany({ where: { targetId: worker.id } });
    expect(audit.map((a) => a.action)).toEqual(["worker.deploy"]);
  });

  it("deploys a CONTAINER worker in a project of the workspace, and refuses a project of another workspace", async () => {
    const t = await team();
    const project = await prisma().project.create({ data: { workspaceId: t.workspaceId, key: "WEB", name: "Web" } });
    const worker = ok(
      await server.execute(
        DeployWorkerDocument,
        { input: { workspaceId: t.workspaceId, kind: "CONTAINER", name: "api", image: "ghcr.io/acme/api:1", command: "node server.js", env: { PORT: "8080" }, projectId: project.id } },
        as(t.owner),
      ),
    ).deployWorker;
    expect(worker).toMatchObject({ kind: "CONTAINER", name: "api", image: "ghcr.io/acme/api:1", env: { PORT: "8080" }, projectId: project.id, blockId: null });

    const other = await team();
    const foreign = await prisma().project.create({ data: { workspaceId: other.workspaceId, key: "WEB", name: "Web" } });
    const error = errorOf(
      await server.execute(
        DeployWorkerDocument,
        { input: { workspaceId: t.workspaceId, kind: "CONTAINER", name: "api", image: "nginx", projectId: foreign.id } },
        as(t.owner),
      ),
    );
    expect(error.code).toBe("VALIDATION");
    expect(fieldsOf(error)).toEqual(["input.projectId"]);
  });

  it("deploying to a block that already has a live worker redeploys it (revision + 1) instead of creating another", async () => {
    const t = await team();
    const first = await deployCode(t);
    const second = await deployCode(t, { code: "def tick(ctx): print(2)", tickIntervalSeconds: 30 });
    expect(second).toMatchObject({ id: first.id, revision: 2, code: "def tick(ctx): print(2)", tickIntervalSeconds: 30, status: "DEPLOYING" });
    const listed = ok(await server.execute(WorkspaceWorkersDocument, { id: t.workspaceId, blockId: t.blockId }, as(t.owner)));
    expect(listed.workspace.workers.totalCount).toBe(1);
    expect((await transitionsOf(first.id)).map((x) => x.action)).toEqual(["deploy", "redeploy"]);

    const byBlock = ok(await server.execute(WorkerByBlockDocument, { workspaceId: t.workspaceId, blockId: t.blockId }, as(t.owner)));
    expect(byBlock.workerByBlock).toMatchObject({ id: first.id, revision: 2 });

    // Once destroyed, the block gets a new worker.
    ok(await server.execute(DestroyWorkerDocument, { id: first.id }, as(t.owner)));
    const third = await deployCode(t);
    expect(third.id).not.toBe(first.id);
    expect(third.revision).toBe(1);
  });

  it("two concurrent deploys to one block make one worker", async () => {
    const t = await team();
    const results = await Promise.all([deployCode(t), deployCode(t), deployCode(t)]);
    expect(new Set(results.map((w) => w.id)).size).toBe(1);
    expect(await prisma().worker.count({ where: { workspaceId: t.workspaceId } })).toBe(1);
    expect((await prisma().worker.findUniqueOrThrow({ where: { id: results[0]!.id } })).revision).toBe(3);
  });

  it("returns the first result for a retried idempotency key", async () => {
    const t = await team();
    const input = { workspaceId: t.workspaceId, kind: "CONTAINER" as const, name: "api", image: "nginx", idempotencyKey: unique("k") };
    const a = ok(await server.execute(DeployWorkerDocument, { input }, as(t.owner))).deployWorker;
    const b = ok(await server.execute(DeployWorkerDocument, { input }, as(t.owner))).deployWorker;
    expect(b.id).toBe(a.id);
    expect(await prisma().worker.count({ where: { workspaceId: t.workspaceId } })).toBe(1);
    const changed = errorOf(await server.execute(DeployWorkerDocument, { input: { ...input, image: "httpd" } }, as(t.owner)));
    expect(changed.code).toBe("CONFLICT");
  });

  it.each([
    ["a tick interval of 0", { tickIntervalSeconds: 0 }, ["input.tickIntervalSeconds"]],
    ["a tick interval over a day", { tickIntervalSeconds: 86401 }, ["input.tickIntervalSeconds"]],
    ["maxErrors 0", { maxErrors: 0 }, ["input.maxErrors"]],
    ["code over 256 KiB", { code: "x".repeat(256 * 1024 + 1) }, ["input.code"]],
    ["no block", { blockId: null }, ["input.blockId"]],
    ["a block the graph does not have", { blockId: "node_missing" }, ["input.blockId"]],
    ["an image on a CODE worker", { image: "nginx" }, ["input.image"]],
    ["env with a number", { env: { PORT: 8080 } }, ["input.env.PORT"]],
    ["env that is not an object", { env: ["a"] }, ["input.env"]],
    ["connectedBlocks that is not an object", { connectedBlocks: "bybit_1" }, ["input.connectedBlocks"]],
    ["connectedBlocks over 64 KiB", { connectedBlocks: { big: "x".repeat(64 * 1024) } }, ["input.connectedBlocks"]],
  ] as [string, Partial<DeployWorkerInput>, string[]][])("refuses %s, naming the field, and creates nothing", async (_what, extra, fields) => {
    const t = await team();
    const res = await server.execute(
      DeployWorkerDocument,
      { input: { workspaceId: t.workspaceId, kind: "CODE", blockId: t.blockId, code: "pass", ...extra } },
      as(t.owner),
    );
    const error = errorOf(res);
    expect(error).toMatchObject({ code: "VALIDATION", status: 400 });
    expect(fieldsOf(error)).toEqual(fields);
    expect(await prisma().worker.count({ where: { workspaceId: t.workspaceId } })).toBe(0);
  });

  it("refuses a CONTAINER worker without image and name, naming both", async () => {
    const t = await team();
    const error = errorOf(await server.execute(DeployWorkerDocument, { input: { workspaceId: t.workspaceId, kind: "CONTAINER" } }, as(t.owner)));
    expect(fieldsOf(error).sort()).toEqual(["input.image", "input.name"]);
  });

  it("answers wrong types with a client error, never a 500", async () => {
    const t = await team();
    const res: GraphQLResponse<unknown> = await server.post(
      {
        query: "mutation($input: DeployWorkerInput!) { deployWorker(input: $input) { id } }",
        variables: { input: { workspaceId: t.workspaceId, kind: "CODE", blockId: t.blockId, code: "pass", tickIntervalSeconds: "ten" } },
      },
      as(t.owner),
    );
    expect(res.errors?.length).toBeGreaterThan(0);
    expect(res.status).toBeLessThan(500);
  });
});

describe(`the worker state machine (${backend})`, () => {
  it("runs a whole life: deploy, running, stop, start, restart, redeploy, destroy, each recorded with who", async () => {
    const t = await team();
    const w = await deployCode(t);
    const report = (status: "RUNNING" | "FAILED", revision: number, reason?: string) =>
      server.execute(ReportWorkerStatusDocument, { input: { workerId: w.id, revision, status, reason } }, asMachine(t.machine));

    expect(ok(await report("RUNNING", 1)).reportWorkerStatus.status).toBe("RUNNING");
    expect(ok(await server.execute(StopWorkerDocument, { id: w.id, reason: "maintenance" }, as(t.owner))).stopWorker.status).toBe("STOPPED");
    expect(ok(await server.execute(StartWorkerDocument, { id: w.id }, as(t.owner))).startWorker.status).toBe("DEPLOYING");
    expect(ok(await report("RUNNING", 1)).reportWorkerStatus.status).toBe("RUNNING");
    expect(ok(await server.execute(RestartWorkerDocument, { id: w.id }, as(t.owner))).restartWorker.status).toBe("DEPLOYING");
    const redeployed = ok(await server.execute(RedeployWorkerDocument, { input: { id: w.id, code: "def tick(ctx): pass # v2" } }, as(t.owner))).redeployWorker;
    expect(redeployed).toMatchObject({ status: "DEPLOYING", revision: 2, code: "def tick(ctx): pass # v2" });

    const stale = errorOf(await report("RUNNING", 1));
    expect(stale.code).toBe("CONFLICT");
    expect(stale.message).toMatch(/revision 2/);
    expect(ok(await report("FAILED", 2, "ImportError: numpy")).reportWorkerStatus).toMatchObject({ status: "FAILED", statusReason: "ImportError: numpy" });
    const destroyed = ok(await server.execute(DestroyWorkerDocument, { id: w.id }, as(t.owner))).destroyWorker;
    expect(destroyed.status).toBe("DESTROYED");
    expect(destroyed.destroyedAt).toBeTruthy();

    const transitions = await transitionsOf(w.id);
    expect(transitions.map((x) => [x.action, x.from, x.to, x.actorType])).toEqual([
      ["deploy", null, "DEPLOYING", "USER"],
      ["running", "DEPLOYING", "RUNNING", "MACHINE"],
      ["stop", "RUNNING", "STOPPED", "USER"],
      ["start", "STOPPED", "DEPLOYING", "USER"],
      ["running", "DEPLOYING", "RUNNING", "MACHINE"],
      ["restart", "RUNNING", "DEPLOYING", "USER"],
      ["redeploy", "DEPLOYING", "DEPLOYING", "USER"],
      ["fail", "DEPLOYING", "FAILED", "MACHINE"],
      ["destroy", "FAILED", "DESTROYED", "USER"],
    ]);
    expect(transitions.find((x) => x.action === "stop")).toMatchObject({ reason: "maintenance", actorId: t.owner.id });
    expect(transitions.find((x) => x.actorType === "MACHINE")?.actorId).toBe(t.machine.id);
    const audit = await prisma().auditEntry.findMany({ where: { targetId: w.id }, orderBy: { at: "asc" } });
    expect(audit.map((a) => a.action)).toEqual([
      "worker.deploy",
      "worker.report",
      "worker.stop",
      "worker.start",
      "worker.report",
      "worker.restart",
      "worker.redeploy",
      "worker.report",
      "worker.destroy",
    ]);
  });

  const userActions = {
    start: (id: string, token: { token: string }) => server.execute(StartWorkerDocument, { id }, token),
    stop: (id: string, token: { token: string }) => server.execute(StopWorkerDocument, { id }, token),
    restart: (id: string, token: { token: string }) => server.execute(RestartWorkerDocument, { id }, token),
    redeploy: (id: string, token: { token: string }) => server.execute(RedeployWorkerDocument, { input: { id } }, token),
    destroy: (id: string, token: { token: string }) => server.execute(DestroyWorkerDocument, { id }, token),
  } satisfies Partial<Record<WorkerAction, unknown>>;

  const illegal = (action: WorkerAction) => WORKER_STATUSES.filter((s) => !(WORKER_ACTIONS[action].from as readonly string[]).includes(s));
  const userCases = (Object.keys(userActions) as (keyof typeof userActions)[]).flatMap((action) =>
    illegal(action).map((status) => [action, status] as const),
  );

  it.each(userCases)("refuses to %s a %s worker: CONFLICT naming both, nothing recorded", async (action, status) => {
    const t = await team();
    const w = await deployCode(t);
    await prisma().worker.update({ where: { id: w.id }, data: { status: status as WorkerStatus } });
    const error = errorOf(await userActions[action](w.id, as(t.owner)));
    expect(error).toMatchObject({ code: "CONFLICT", status: 409, extensions: { status, action } });
    expect(error.message).toContain(`Cannot ${action} worker ${w.id}: it is ${status}`);
    expect((await prisma().worker.findUniqueOrThrow({ where: { id: w.id } })).status).toBe(status);
    expect(await prisma().workerTransition.count({ where: { workerId: w.id } })).toBe(1);
  });

  const machineCases = (["running", "fail"] as const).flatMap((action) =>
    illegal(action)
      .filter((s) => s !== WORKER_ACTIONS[action].to)
      .map((status) => [action, status] as const),
  );

  it.each(machineCases)("refuses the machine report '%s' for a %s worker", async (action, status) => {
    const t = await team();
    const w = await deployCode(t);
    await prisma().worker.update({ where: { id: w.id }, data: { status: status as WorkerStatus } });
    const error = errorOf(
      await server.execute(
        ReportWorkerStatusDocument,
        { input: { workerId: w.id, revision: 1, status: action === "running" ? "RUNNING" : "FAILED" } },
        asMachine(t.machine),
      ),
    );
    expect(error).toMatchObject({ code: "CONFLICT", extensions: { status, action } });
    expect(error.message).toContain(`it is ${status}`);
    expect(await prisma().workerTransition.count({ where: { workerId: w.id } })).toBe(1);
  });

  it("lets exactly one of two concurrent stops win", async () => {
    const t = await team();
    const w = await deployCode(t);
    const answers = await Promise.all([userActions.stop(w.id, as(t.owner)), userActions.stop(w.id, as(t.owner))]);
    const codes = answers.map((a) => (a.errors?.length ? a.errors[0]!.extensions?.code : "ok")).sort();
    expect(codes).toEqual(["CONFLICT", "ok"]);
    expect((await transitionsOf(w.id)).map((x) => x.action)).toEqual(["deploy", "stop"]);
  });

  it("changes settings at once, without a redeploy or a status change", async () => {
    const t = await team();
    const w = await deployCode(t);
    ok(await server.execute(ReportWorkerStatusDocument, { input: { workerId: w.id, revision: 1, status: "RUNNING" } }, asMachine(t.machine)));
    const updated = ok(
      await server.execute(
        UpdateWorkerSettingsDocument,
        { input: { id: w.id, tickIntervalSeconds: 30, maxErrors: 10, autoHeal: false, connectedBlocks: { monitor_node_ids: ["m1"] } } },
        as(t.owner),
      ),
    ).updateWorkerSettings;
    expect(updated).toMatchObject({
      status: "RUNNING",
      revision: 1,
      tickIntervalSeconds: 30,
      maxErrors: 10,
      autoHeal: false,
      connectedBlocks: { monitor_node_ids: ["m1"] },
      code: w.code,
    });
    expect(await prisma().workerTransition.count({ where: { workerId: w.id } })).toBe(2);
    // The machine sees the new settings in what it runs.
    const assigned = ok(await server.execute(AssignedWorkersDocument, {}, asMachine(t.machine))).assignedWorkers;
    expect(assigned).toEqual([expect.objectContaining({ id: w.id, tickIntervalSeconds: 30, autoHeal: false })]);

    const empty = errorOf(await server.execute(UpdateWorkerSettingsDocument, { input: { id: w.id } }, as(t.owner)));
    expect(empty.code).toBe("VALIDATION");
    const bad = errorOf(await server.execute(UpdateWorkerSettingsDocument, { input: { id: w.id, tickIntervalSeconds: -1 } }, as(t.owner)));
    expect(fieldsOf(bad)).toEqual(["input.tickIntervalSeconds"]);

    ok(await server.execute(DestroyWorkerDocument, { id: w.id }, as(t.owner)));
    const gone = errorOf(await server.execute(UpdateWorkerSettingsDocument, { input: { id: w.id, maxErrors: 3 } }, as(t.owner)));
    expect(gone).toMatchObject({ code: "CONFLICT" });
    expect(gone.message).toContain("DESTROYED");
  });

  it("refuses code for a CONTAINER worker and an image for a CODE worker on redeploy", async () => {
    const t = await team();
    const code = await deployCode(t);
    expect(fieldsOf(errorOf(await server.execute(RedeployWorkerDocument, { input: { id: code.id, image: "nginx" } }, as(t.owner))))).toEqual([
      "input.image",
    ]);
    const container = ok(
      await server.execute(DeployWorkerDocument, { input: { workspaceId: t.workspaceId, kind: "CONTAINER", name: "c", image: "nginx" } }, as(t.owner)),
    ).deployWorker;
    expect(fieldsOf(errorOf(await server.execute(RedeployWorkerDocument, { input: { id: container.id, code: "x" } }, as(t.owner))))).toEqual([
      "input.code",
    ]);
    const redeployed = ok(await server.execute(RedeployWorkerDocument, { input: { id: container.id, image: "nginx:2" } }, as(t.owner))).redeployWorker;
    expect(redeployed).toMatchObject({ image: "nginx:2", revision: 2 });
  });
});

describe(`machine reports (${backend})`, () => {
  it("only the worker's own machine may report; another machine gets NOT_FOUND", async () => {
    const t = await team();
    const w = await deployCode(t);
    const other = await createMachineDirect(server, t.workspaceId);
    const foreign = await createMachineDirect(server, (await team({ machine: false })).workspaceId);
    for (const machine of [other, foreign]) {
      const status = errorOf(await server.execute(ReportWorkerStatusDocument, { input: { workerId: w.id, revision: 1, status: "RUNNING" } }, asMachine(machine)));
      expect(status.code).toBe("NOT_FOUND");
      const ticks = errorOf(await server.execute(ReportWorkerTicksDocument, { input: { workerId: w.id, revision: 1, ticks: 1, errors: 0 } }, asMachine(machine)));
      expect(ticks.code).toBe("NOT_FOUND");
      expect(ok(await server.execute(AssignedWorkersDocument, {}, asMachine(machine))).assignedWorkers).toEqual([]);
    }
    const user = errorOf(await server.execute(ReportWorkerStatusDocument, { input: { workerId: w.id, revision: 1, status: "RUNNING" } }, as(t.owner)));
    expect(user.code).toBe("FORBIDDEN");
  });

  it("a repeated report changes nothing; a report for an old revision is a CONFLICT", async () => {
    const t = await team();
    const w = await deployCode(t);
    const input = { workerId: w.id, revision: 1, status: "RUNNING" as const };
    ok(await server.execute(ReportWorkerStatusDocument, { input }, asMachine(t.machine)));
    ok(await server.execute(ReportWorkerStatusDocument, { input }, asMachine(t.machine)));
    expect(await prisma().workerTransition.count({ where: { workerId: w.id } })).toBe(2);
    await deployCode(t, { code: "v2" });
    const stale = errorOf(await server.execute(ReportWorkerStatusDocument, { input }, asMachine(t.machine)));
    expect(stale).toMatchObject({ code: "CONFLICT", extensions: { revision: 2 } });
    const staleTicks = errorOf(await server.execute(ReportWorkerTicksDocument, { input: { workerId: w.id, revision: 1, ticks: 5, errors: 0 } }, asMachine(t.machine)));
    expect(staleTicks.code).toBe("CONFLICT");
  });

  it("adds up ticks and errors, keeps the last CPU and memory figures", async () => {
    const t = await team();
    const w = await deployCode(t, { maxErrors: 10 });
    ok(await server.execute(ReportWorkerStatusDocument, { input: { workerId: w.id, revision: 1, status: "RUNNING" } }, asMachine(t.machine)));
    const lastTickAt = "2026-03-10T12:34:56.000Z";
    ok(await server.execute(ReportWorkerTicksDocument, { input: { workerId: w.id, revision: 1, ticks: 10, errors: 1, cpuPercent: 12.5, memoryBytes: 5e9 } }, asMachine(t.machine)));
    const after = ok(
      await server.execute(ReportWorkerTicksDocument, { input: { workerId: w.id, revision: 1, ticks: 5, errors: 2, memoryBytes: 6e9, lastTickAt } }, asMachine(t.machine)),
    ).reportWorkerTicks;
    expect(after).toMatchObject({ status: "RUNNING", tickCount: 15, errorCount: 3, cpuPercent: 12.5, memoryBytes: 6e9, lastTickAt });
    const bad = errorOf(await server.execute(ReportWorkerTicksDocument, { input: { workerId: w.id, revision: 1, ticks: -1, errors: 0 } }, asMachine(t.machine)));
    expect(fieldsOf(bad)).toEqual(["input.ticks"]);

    ok(await server.execute(StopWorkerDocument, { id: w.id }, as(t.owner)));
    const stopped = errorOf(await server.execute(ReportWorkerTicksDocument, { input: { workerId: w.id, revision: 1, ticks: 1, errors: 0 } }, asMachine(t.machine)));
    expect(stopped.code).toBe("CONFLICT");
    expect(stopped.message).toContain("STOPPED");
  });

  it("fails a worker whose errors reach maxErrors", async () => {
    const t = await team();
    const w = await deployCode(t, { maxErrors: 3, autoHeal: false });
    ok(await server.execute(ReportWorkerStatusDocument, { input: { workerId: w.id, revision: 1, status: "RUNNING" } }, asMachine(t.machine)));
    const failed = ok(await server.execute(ReportWorkerTicksDocument, { input: { workerId: w.id, revision: 1, ticks: 4, errors: 3 } }, asMachine(t.machine))).reportWorkerTicks;
    expect(failed).toMatchObject({ status: "FAILED", errorCount: 3 });
    expect(failed.statusReason).toMatch(/3 errors reached the limit of 3/);
    expect((await transitionsOf(w.id)).map((x) => [x.action, x.to, x.actorType])).toEqual([
      ["deploy", "DEPLOYING", "USER"],
      ["running", "RUNNING", "MACHINE"],
      ["fail", "FAILED", "MACHINE"],
    ]);
  });

  it("auto-heals: FAILED and straight back to DEPLOYING with a fresh error budget, the heal by the system", async () => {
    const t = await team();
    const w = await deployCode(t, { maxErrors: 2, autoHeal: true });
    ok(await server.execute(ReportWorkerStatusDocument, { input: { workerId: w.id, revision: 1, status: "RUNNING" } }, asMachine(t.machine)));
    ok(await server.execute(ReportWorkerTicksDocument, { input: { workerId: w.id, revision: 1, ticks: 3, errors: 1 } }, asMachine(t.machine)));
    const healed = ok(await server.execute(ReportWorkerTicksDocument, { input: { workerId: w.id, revision: 1, ticks: 1, errors: 1 } }, asMachine(t.machine))).reportWorkerTicks;
    expect(healed).toMatchObject({ status: "DEPLOYING", errorCount: 0, tickCount: 4, revision: 1, machineId: t.machine.id });
    const read = ok(await server.execute(WorkerDocument, { id: w.id }, as(t.owner))).worker;
    expect(read.transitions.edges.slice(0, 2).map((e) => [e.node.action, e.node.from, e.node.to, e.node.actorType, e.node.actorId])).toEqual([
      ["heal", "FAILED", "DEPLOYING", "SYSTEM", null],
      ["fail", "RUNNING", "FAILED", "MACHINE", t.machine.id],
    ]);
    const audit = await prisma().auditEntry.findMany({ where: { targetId: w.id, action: "worker.heal" } });
    expect(audit).toHaveLength(1);
  });
});

describe(`placement (${backend})`, () => {
  it("picks the qualifying machine with the fewest live workers, skipping offline, drained, unschedulable, unapproved and decommissioned ones", async () => {
    const t = await team({ machine: false });
    const old = new Date(Date.now() - (server.config.domain.machineOfflineAfterSeconds + 5) * 1000);
    const skipped = {
      offline: await createMachineDirect(server, t.workspaceId),
      drained: await createMachineDirect(server, t.workspaceId),
      unschedulable: await createMachineDirect(server, t.workspaceId),
      pending: await createMachineDirect(server, t.workspaceId),
      decommissioned: await createMachineDirect(server, t.workspaceId),
      neverSeen: await createMachineDirect(server, t.workspaceId),
    };
    await prisma().machine.update({ where: { id: skipped.offline.id }, data: { lastHeartbeatAt: old } });
    await prisma().machine.update({ where: { id: skipped.drained.id }, data: { drainingSince: new Date() } });
    await prisma().machine.update({ where: { id: skipped.unschedulable.id }, data: { schedulable: false } });
    await prisma().machine.update({ where: { id: skipped.pending.id }, data: { approval: "PENDING" } });
    await prisma().machine.update({ where: { id: skipped.decommissioned.id }, data: { decommissionedAt: new Date() } });
    await prisma().machine.update({ where: { id: skipped.neverSeen.id }, data: { lastHeartbeatAt: null } });

    const waiting = ok(
      await server.execute(DeployWorkerDocument, { input: { workspaceId: t.workspaceId, kind: "CONTAINER", name: "w0", image: "nginx" } }, as(t.owner)),
    ).deployWorker;
    expect(waiting).toMatchObject({ status: "DEPLOYING", machineId: null, statusReason: WAITING_FOR_MACHINE });

    const busy = await createMachineDirect(server, t.workspaceId);
    const idle = await createMachineDirect(server, t.workspaceId);
    // busy already runs two workers; idle none; a STOPPED worker does not count as load.
    for (const [machineId, status] of [[busy.id, "RUNNING"], [busy.id, "DEPLOYING"], [idle.id, "STOPPED"]] as const) {
      await prisma().worker.create({ data: { workspaceId: t.workspaceId, kind: "CONTAINER", name: unique("w"), image: "x", status, machineId } });
    }
    const placed = ok(
      await server.execute(DeployWorkerDocument, { input: { workspaceId: t.workspaceId, kind: "CONTAINER", name: "w1", image: "nginx" } }, as(t.owner)),
    ).deployWorker;
    expect(placed).toMatchObject({ machineId: idle.id, statusReason: null });

    // The waiting worker gets a machine once one is there.
    const workers = server.app.services.workers;
    expect(await workers.placeWaiting(t.workspaceId)).toBe(1);
    const now = await prisma().worker.findUniqueOrThrow({ where: { id: waiting.id } });
    expect(now.machineId).toBe(idle.id);
    expect(now.statusReason).toBeNull();
  });

  it("places waiting workers when a machine comes online, and when one is approved", async () => {
    const t = await team({ machine: false });
    const waiting = await deployCode(t);
    expect(waiting).toMatchObject({ status: "DEPLOYING", statusReason: WAITING_FOR_MACHINE, machineId: null });

    // A machine that has never sent a heartbeat is not online; its first heartbeat brings it in.
    const machine = await createMachineDirect(server, t.workspaceId);
    await prisma().machine.update({ where: { id: machine.id }, data: { lastHeartbeatAt: null } });
    ok(await server.execute(MachineHeartbeatDocument, { input: { cpuPercent: 1, memoryPercent: 2, diskPercent: 3 } }, asMachine(machine)));
    expect(await prisma().worker.findUniqueOrThrow({ where: { id: waiting.id } })).toMatchObject({ machineId: machine.id, statusReason: null });

    // A pending machine takes nothing until an admin approves it.
    const t2 = await team({ machine: false });
    const pending = await createMachineDirect(server, t2.workspaceId);
    await prisma().machine.update({ where: { id: pending.id }, data: { approval: "PENDING" } });
    const second = await deployCode(t2);
    expect(second.machineId).toBeNull();
    ok(await server.execute(ApproveMachineDocument, { id: pending.id, approved: true }, as(t2.owner)));
    expect((await prisma().worker.findUniqueOrThrow({ where: { id: second.id } })).machineId).toBe(pending.id);
  });

  it("keeps a worker on its machine when it restarts there, and moves it when that machine is drained", async () => {
    const t = await team();
    const w = await deployCode(t);
    ok(await server.execute(StopWorkerDocument, { id: w.id }, as(t.owner)));
    expect(ok(await server.execute(StartWorkerDocument, { id: w.id }, as(t.owner))).startWorker.machineId).toBe(t.machine.id);
    ok(await server.execute(StopWorkerDocument, { id: w.id }, as(t.owner)));
    const spare = await createMachineDirect(server, t.workspaceId);
    await prisma().machine.update({ where: { id: t.machine.id }, data: { drainingSince: new Date() } });
    expect(ok(await server.execute(StartWorkerDocument, { id: w.id }, as(t.owner))).startWorker.machineId).toBe(spare.id);
  });
});

describe(`reading workers (${backend})`, () => {
  it("filters the workspace's workers by status, kind, project, machine, block and name; destroyed ones only on request", async () => {
    const t = await team();
    const project = await prisma().project.create({ data: { workspaceId: t.workspaceId, key: "API", name: "Api" } });
    const code = await deployCode(t);
    const api = ok(
      await server.execute(
        DeployWorkerDocument,
        { input: { workspaceId: t.workspaceId, kind: "CONTAINER", name: "Billing API", image: "nginx", projectId: project.id } },
        as(t.owner),
      ),
    ).deployWorker;
    const gone = ok(
      await server.execute(DeployWorkerDocument, { input: { workspaceId: t.workspaceId, kind: "CONTAINER", name: "old", image: "nginx" } }, as(t.owner)),
    ).deployWorker;
    ok(await server.execute(DestroyWorkerDocument, { id: gone.id }, as(t.owner)));
    ok(await server.execute(StopWorkerDocument, { id: api.id }, as(t.owner)));

    const ids = async (vars: Record<string, unknown>) =>
      ok(await server.execute(WorkspaceWorkersDocument, { id: t.workspaceId, ...vars }, as(t.owner))).workspace.workers.edges.map((e) => e.node.id).sort();
    expect(await ids({})).toEqual([code.id, api.id].sort());
    expect(await ids({ status: ["DESTROYED"] })).toEqual([gone.id]);
    expect(await ids({ status: ["STOPPED", "DEPLOYING"] })).toEqual([code.id, api.id].sort());
    expect(await ids({ kind: "CODE" })).toEqual([code.id]);
    expect(await ids({ projectId: project.id })).toEqual([api.id]);
    expect(await ids({ machineId: t.machine.id })).toEqual([code.id, api.id].sort());
    expect(await ids({ blockId: t.blockId })).toEqual([code.id]);
    expect(await ids({ search: "billing" })).toEqual([api.id]);
  });

  it("hides workers from strangers (NOT_FOUND like a missing id) and keeps viewers read-only", async () => {
    const t = await team();
    const w = await deployCode(t);
    const stranger = await signedInUser(server);
    const viewer = await signedInUser(server);
    await addMember(server, t.workspaceId, viewer.id, "VIEWER");

    const hidden = errorOf(await server.execute(WorkerDocument, { id: w.id }, as(stranger)));
    const missing = errorOf(await server.execute(WorkerDocument, { id: "00000000-0000-4000-8000-000000000000" }, as(stranger)));
    expect(hidden.code).toBe("NOT_FOUND");
    expect(missing.code).toBe("NOT_FOUND");
    expect(errorOf(await server.execute(WorkerDocument, { id: "not-a-uuid" }, as(t.owner))).code).toBe("NOT_FOUND");
    expect(errorOf(await server.execute(StopWorkerDocument, { id: w.id }, as(stranger))).code).toBe("NOT_FOUND");
    expect(errorOf(await server.execute(WorkerByBlockDocument, { workspaceId: t.workspaceId, blockId: t.blockId }, as(stranger))).code).toBe("NOT_FOUND");
    expect(errorOf(await server.execute(DeployWorkerDocument, { input: { workspaceId: t.workspaceId, kind: "CONTAINER", name: "x", image: "x" } }, as(stranger))).code).toBe("NOT_FOUND");

    expect(ok(await server.execute(WorkerDocument, { id: w.id }, as(viewer))).worker.id).toBe(w.id);
    expect(errorOf(await server.execute(StopWorkerDocument, { id: w.id }, as(viewer))).code).toBe("FORBIDDEN");
    expect(ok(await server.execute(WorkerByBlockDocument, { workspaceId: t.workspaceId, blockId: "node_none" }, as(viewer))).workerByBlock).toBeNull();
  });

  it("runs the same number of SQL statements for 10 and 100 workers with machines and transitions", async () => {
    const t = await team();
    const machines = [t.machine.id, (await createMachineDirect(server, t.workspaceId)).id];
    // Half are CODE workers with a block of their own, so Worker.block is loaded for a list too.
    await prisma().graphBlock.createMany({
      data: Array.from({ length: 55 }, (_, i) => ({ workspaceId: t.workspaceId, id: `node_${i}`, type: "code.worker", label: `block ${i}` })),
    });
    const rows = Array.from({ length: 110 }, (_, i) => ({
      workspaceId: t.workspaceId,
      kind: i % 2 ? ("CONTAINER" as const) : ("CODE" as const),
      name: `w${i}`,
      ...(i % 2 ? { image: "nginx" } : { blockId: `node_${i / 2}`, code: "pass" }),
      machineId: machines[i % 2]!,
      createdAt: new Date(Date.now() - i * 1000),
    }));
    await prisma().worker.createMany({ data: rows });
    const workers = await prisma().worker.findMany({ where: { workspaceId: t.workspaceId }, select: { id: true } });
    await prisma().workerTransition.createMany({
      data: workers.flatMap((w) =>
        (["DEPLOYING", "RUNNING", "STOPPED", "DEPLOYING"] as const).map((to, i) => ({
          workerId: w.id,
          to,
          action: "test",
          actorType: "SYSTEM" as const,
          at: new Date(Date.now() - (10 - i) * 1000),
        })),
      ),
    });

    const count = async (first: number) => {
      const before = server.db.statements.count;
      const data = ok(await server.execute(WorkersNestedDocument, { id: t.workspaceId, first }, as(t.owner)));
      const statements = server.db.statements.count - before;
      expect(data.workspace.workers.edges).toHaveLength(first);
      expect(data.workspace.workers.edges.every((e) => e.node.machine?.name && e.node.transitions.edges.length === 3)).toBe(true);
      expect(data.workspace.workers.edges.filter((e) => e.node.block?.label.startsWith("block ")).length).toBe(first / 2);
      return statements;
    };
    await count(10);
    const ten = await count(10);
    const hundred = await count(100);
    expect(hundred).toBe(ten);
  });
});
